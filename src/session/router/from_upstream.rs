//! What comes down from the server: its answers and progress to the
//! exchanges they name, its notifications to the clients they concern, and
//! its own requests to the one client they can be attributed to, or refused.

use super::*;

impl Router {
    /// One message from the upstream.
    pub fn from_upstream(&mut self, mut msg: Message) -> Vec<Effect> {
        match msg.kind() {
            Ok(Kind::Response { id }) => {
                let Some(up) = id.as_u64() else { return vec![] };
                if self.ping.is_some_and(|(p, _)| p == up) {
                    self.ping = None;
                    return vec![];
                }
                if self.own.remove(&up) {
                    return vec![];
                }
                let Some(ex) = self.inflight.complete(up) else {
                    return vec![]; // answered already (timed out or cancelled)
                };
                // Era: a 2026-07-28 answer may be `input_required`, which a
                // 2025 client cannot receive: the hub drives those rounds itself.
                if self.modern_up && !ex.client_modern && msg.result_raw().is_some() {
                    let kind: Option<String> = msg.result_field("resultType");
                    match kind.as_deref() {
                        Some("input_required") => return self.mrtr_round(up, ex, &msg),
                        None | Some("complete") => {
                            if let Some(r) = msg.result_raw().and_then(crate::mcp::legacy_result) {
                                msg.set_result_raw(r);
                            }
                        }
                        Some(other) => {
                            let e = err(
                                ex.orig.clone(),
                                -32603,
                                format!("server {:?} answered with resultType {other:?}, which a 2025-era client cannot receive", self.server),
                            );
                            self.settle(ex.call, &e, true);
                            return vec![Effect::To(self.stream(ex.client, &ex.reply), e)];
                        }
                    }
                }
                if let Some(a) = ex.audit {
                    a.finish(&self.server, Audit::outcome_of(&msg));
                }
                if &*ex.method == "tools/list" {
                    let rule = self.rule_of(ex.client).map(|(_, _, f)| f);
                    let server = self.tool_filter.as_ref();
                    if let (true, Some(r)) = (server.is_some() || rule.is_some(), msg.result_raw())
                    {
                        let keep = |n: &str| {
                            server.is_none_or(|f| f.allows(n)) && rule.is_none_or(|f| f.allows(n))
                        };
                        if let Some(kept) = retain_named(r, "tools", keep) {
                            msg.set_result_raw(kept);
                        }
                    }
                }
                if &*ex.method == "tools/list" {
                    // The names a tools/call may carry as a metrics label.
                    self.meter.listed_tools(&msg);
                }
                self.settle(ex.call, &msg, true);
                msg.set_id(ex.orig);
                vec![Effect::To(self.stream(ex.client, &ex.reply), msg)]
            }
            Ok(Kind::Request { id, method: "ping" }) => {
                vec![Effect::Up(Message::response(id, json!({})))]
            }
            Ok(Kind::Request { id, method }) => self.server_request(id, method.to_string(), msg),
            Ok(Kind::Notification {
                method: "notifications/progress",
            }) => {
                let Some(up) = msg.param::<u64>("progressToken") else {
                    return vec![];
                };
                let Some(ex) = self.inflight.get(up) else {
                    return vec![];
                };
                let Some(token) = ex.progress.clone() else {
                    return vec![];
                };
                let target = self.stream(ex.client, &ex.reply);
                msg.set_param("progressToken", &token);
                vec![Effect::To(target, msg)]
            }
            Ok(Kind::Notification {
                method: "notifications/cancelled",
            }) => {
                let Some(up_id) = msg
                    .param::<serde_json::Value>("requestId")
                    .and_then(|v| Id::from_value(&v))
                else {
                    return vec![];
                };
                let Some(h) = self
                    .server_reqs
                    .iter()
                    .find(|(_, r)| r.up_id == up_id)
                    .map(|(h, _)| *h)
                else {
                    return vec![];
                };
                let Some(r) = self.server_reqs.remove(&h) else {
                    return vec![];
                };
                msg.set_param("requestId", &to_raw(&h));
                match self.clients.get(&r.client) {
                    Some(s) => vec![Effect::To(Target::Session(s.clone()), msg)],
                    None => vec![],
                }
            }
            Ok(Kind::Notification {
                method: "notifications/resources/updated",
            }) => {
                let uri: Option<String> = msg.param("uri");
                let subscribers = uri.and_then(|u| self.subs.get(&u));
                subscribers
                    .into_iter()
                    .flatten()
                    .filter_map(|c| self.clients.get(c))
                    .map(|s| Effect::To(Target::Session(s.clone()), msg.clone()))
                    .collect()
            }
            Ok(Kind::Notification { .. }) => self
                .clients
                .values()
                .map(|s| Effect::To(Target::Session(s.clone()), msg.clone()))
                .collect(),
            Err(_) => vec![],
        }
    }

    /// A server request that came on the stream of the hub's request `on`
    /// (a streamable-HTTP upstream says which request it belongs to): to the
    /// client of that request, exactly, however many others wait. Anything
    /// else, or a request whose exchange is gone, is routed as usual.
    pub fn from_upstream_on(&mut self, msg: Message, on: &Id) -> Vec<Effect> {
        let (Ok(Kind::Request { id, .. }), Some(up)) = (msg.kind(), on.as_u64()) else {
            return self.from_upstream(msg);
        };
        let Some(ex) = self.inflight.get_mut(up) else {
            return self.from_upstream(msg);
        };
        ex.asked = true;
        let (client, out) = (ex.client, ex.reply.clone());
        let target = self.stream(client, &out);
        self.hand_over(client, Some(up), id, msg, target)
    }

    /// Gives a server's question to `client` (on `target`, for the exchange
    /// `ex` when there is one) under a hub id, remembering whose it is.
    fn hand_over(
        &mut self,
        client: u64,
        ex: Option<u64>,
        up_id: Id,
        mut msg: Message,
        target: Target,
    ) -> Vec<Effect> {
        let h = self.inflight.next_id();
        self.server_reqs.insert(
            h,
            ServerRequest {
                client,
                ex,
                up_id,
                mrtr: None,
            },
        );
        msg.set_id(h.into());
        vec![Effect::To(target, msg)]
    }

    /// A server→client request: to the one client it provably belongs to, or
    /// refused with the reason.
    fn server_request(&mut self, up_id: Id, method: String, msg: Message) -> Vec<Effect> {
        let target = match self.inflight.sole_client() {
            Some((client, newest)) => {
                let ex = self.inflight.get_mut(newest).map(|e| {
                    e.asked = true;
                    e.reply.clone()
                });
                ex.map(|out| (client, Some(newest), self.stream(client, &out)))
            }
            // A per-client upstream has one client, waiting or not.
            None if !self.shared && self.inflight.is_empty() => self
                .clients
                .iter()
                .next()
                .map(|(c, s)| (*c, None, Target::Session(s.clone()))),
            None => None,
        };
        let Some((client, ex, target)) = target else {
            let why = match self.inflight.clients_waiting() {
                0 => "no client request is in flight to attribute it to".to_string(),
                n => format!(
                    "{n} clients have requests in flight: ambiguous in shared mode; use per-client"
                ),
            };
            if let Some(held) = crate::ratelimit::allow(&format!("attribution:{}", self.server)) {
                tracing::warn!(mcp_server = %self.server, "refused the server's {method}: {why}{}",
                    if held > 0 { format!(" ({held} more suppressed)") } else { String::new() });
            }
            return vec![Effect::Up(err(
                up_id,
                UPSTREAM_ERROR,
                format!("mcp-hub cannot route {method} to a client: {why}"),
            ))];
        };
        self.hand_over(client, ex, up_id, msg, target)
    }
}
