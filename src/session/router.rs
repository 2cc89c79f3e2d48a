//! Routing over one upstream: what the clients send goes up with hub-owned
//! ids, and what comes down goes to exactly the place it belongs.
//!
//! - A response, a progress notification and a cancellation go to the
//!   exchange they name (its reply stream), with the client's own id or token.
//! - A server→client request (sampling, elicitation, roots) goes to a client
//!   only when it can be attributed exactly: on a per-client upstream, to its
//!   one client; on a shared one, when exactly one client has requests in
//!   flight. Otherwise the hub answers the server with an error ("ambiguous in
//!   shared mode; use per-client") and never guesses: a wrong guess shows one
//!   user's prompt to another.
//! - `resources/updated` goes to the clients that subscribed to that URI; the
//!   upstream subscription is made by the first subscriber and dropped with the
//!   last one.
//! - Any other notification (list_changed, logging) goes to every client.
//!
//! The router is sans-IO: each call returns [`Effect`]s that the caller carries
//! out after releasing its lock, so it is tested as plain data.

use super::inflight::{Duplicate, Exchange, InFlight, Mrtr};
use super::outbound::{Outbound, Refused};
use super::{Audit, Downstream};
use crate::config::ToolFilter;
use crate::jsonrpc::{
    retain_named, to_raw, Id, Kind, Message, CANCELLED, INVALID_PARAMS, INVALID_REQUEST,
    TIMEOUT_ERROR, UPSTREAM_ERROR,
};
use crate::metrics::{Call, Era, ErrorType, ServerMetrics, UpstreamKind};
pub use clients::Caller;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
// tokio's clock, so tests can pause it.
use tokio::time::Instant;

/// Where a message for a client goes.
pub enum Target {
    /// One exchange's reply stream; if it has closed, a non-response falls
    /// back to the client's session stream.
    Stream {
        out: Outbound,
        fallback: Option<Arc<dyn Downstream>>,
    },
    /// The client's session-wide stream.
    Session(Arc<dyn Downstream>),
}

pub enum Effect {
    To(Target, Message),
    Up(Message),
}

impl Effect {
    /// Carries out a client-bound effect; returns an upstream-bound message.
    pub fn deliver(self) -> Option<Message> {
        match self {
            Effect::Up(m) => Some(m),
            Effect::To(Target::Session(s), m) => {
                s.deliver(m);
                None
            }
            Effect::To(Target::Stream { out, fallback }, m) => {
                if let Err(Refused::Closed(m)) = out.push(m) {
                    if let (false, Some(s)) = (m.is_response(), fallback) {
                        s.deliver(m);
                    }
                }
                None
            }
        }
    }
}

/// A server→client request on its way to a client.
struct ServerRequest {
    client: u64,
    /// The exchange it was attributed to, which waits for its answer.
    ex: Option<u64>,
    up_id: Id,
    /// For an MRTR question: the exchange it belongs to (`up_id` is its key).
    mrtr: Option<u64>,
}

/// How many "input required" rounds the hub drives for one call.
const MRTR_ROUNDS: u32 = 10;

pub struct Router {
    server: Arc<str>,
    shared: bool,
    tool_filter: Option<ToolFilter>,
    timeout: Duration,
    clients: HashMap<u64, Arc<dyn Downstream>>,
    /// Who each client is: its token, to end its session when a reload
    /// revokes it, and the named client whose tool rules apply to it.
    callers: HashMap<u64, Caller>,
    next_client: u64,
    inflight: InFlight,
    /// By the hub id the client sees.
    server_reqs: HashMap<u64, ServerRequest>,
    /// URI → subscribed clients.
    subs: BTreeMap<String, BTreeSet<u64>>,
    /// Requests the hub itself sent (pings, re-subscriptions): their answers stop here.
    own: HashSet<u64>,
    ping: Option<(u64, Instant)>,
    /// The upstream speaks 2026-07-28.
    modern_up: bool,
    /// Clients that speak 2026-07-28 themselves.
    modern_clients: HashSet<u64>,
    /// The hub's `subscriptions/listen` toward a modern upstream.
    listen: Option<u64>,
    meter: Arc<ServerMetrics>,
    upstream_kind: UpstreamKind,
}

fn err(id: Id, code: i64, msg: impl Into<String>) -> Message {
    Message::error(Some(id), code, msg)
}

/// A call a named client's rule refuses.
pub const POLICY_DENIED: i64 = -32003;

impl Router {
    /// The named client's rule for this server's tools, if it has one:
    /// the client's name, where its policy is written, and the rule.
    fn rule_of(&self, client: u64) -> Option<(&str, &str, &ToolFilter)> {
        let c = self.callers.get(&client)?.client.as_ref()?;
        Some((&c.name, &c.policy, c.tools.get(&*self.server)?))
    }

    /// A router counting into series of its own (tests).
    pub fn new(
        server: &str,
        shared: bool,
        tool_filter: Option<ToolFilter>,
        timeout: Duration,
    ) -> Router {
        let meter = Arc::new(ServerMetrics::new(server));
        Router::with_meter(server, shared, tool_filter, timeout, meter)
    }

    /// A router counting into `meter`, the server's series.
    pub fn with_meter(
        server: &str,
        shared: bool,
        tool_filter: Option<ToolFilter>,
        timeout: Duration,
        meter: Arc<ServerMetrics>,
    ) -> Router {
        Router {
            server: server.into(),
            shared,
            tool_filter,
            timeout,
            clients: HashMap::new(),
            callers: HashMap::new(),
            next_client: 0,
            inflight: InFlight::default(),
            server_reqs: HashMap::new(),
            subs: BTreeMap::new(),
            own: HashSet::new(),
            ping: None,
            modern_up: false,
            modern_clients: HashSet::new(),
            listen: None,
            meter,
            upstream_kind: UpstreamKind::default(),
        }
    }

    /// What the upstream speaks, for the client-side metrics.
    pub fn set_upstream_kind(&mut self, kind: UpstreamKind) {
        self.upstream_kind = kind;
    }

    /// The server's metrics.
    pub fn meter(&self) -> &Arc<ServerMetrics> {
        &self.meter
    }

    /// An exchange ends and its client gets `answer`: the server-side
    /// duration, and with `upstream` (the upstream answered, or the hub gave
    /// up on it) the client-side one.
    fn settle(&self, call: Option<Call>, answer: &Message, upstream: bool) {
        let Some(call) = call else { return };
        let e = ErrorType::of(answer, call.is_tool_call());
        self.meter.server_op(&call, e);
        if upstream {
            self.meter
                .client_op(&call, self.upstream_kind, Era::of(self.modern_up), e);
        }
    }

    /// Which era the (re)connected upstream speaks.
    pub fn set_modern(&mut self, modern: bool) {
        self.modern_up = modern;
        self.listen = None;
    }

    /// Settings a reload may change in place.
    pub fn set_policy(&mut self, tool_filter: Option<ToolFilter>, timeout: Duration) {
        self.tool_filter = tool_filter;
        self.timeout = timeout;
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Some request in flight is not just waiting for its client's answer.
    pub fn working(&self) -> bool {
        self.inflight.working()
    }

    pub fn sinks(&self) -> Vec<Arc<dyn Downstream>> {
        self.clients.values().cloned().collect()
    }

    fn stream(&self, client: u64, out: &Outbound) -> Target {
        Target::Stream {
            out: out.clone(),
            fallback: self.clients.get(&client).cloned(),
        }
    }

    /// One request from a client, with the stream its answer goes to.
    pub fn request(
        &mut self,
        client: u64,
        msg: Message,
        reply: &Outbound,
        now: Instant,
        audit: Option<Audit>,
    ) -> Vec<Effect> {
        self.request_with(client, msg, reply, now, audit, None)
    }

    /// [`Router::request`], with the metrics of the call.
    pub fn request_with(
        &mut self,
        client: u64,
        msg: Message,
        reply: &Outbound,
        now: Instant,
        audit: Option<Audit>,
        call: Option<Call>,
    ) -> Vec<Effect> {
        let modern = self.modern_clients.contains(&client);
        self.begin(client, msg, reply, now, audit, call, modern)
    }

    /// A 2026-07-28 request with no client session: an in-flight entry under
    /// a client id of its own (so a server request during it is attributed
    /// exactly, as a session's would be), which no session holds. Returns
    /// that id, for [`Router::from_client`] and [`Router::end_stateless`].
    pub fn request_stateless(
        &mut self,
        msg: Message,
        reply: &Outbound,
        now: Instant,
        audit: Option<Audit>,
        call: Option<Call>,
        caller: Caller,
    ) -> (u64, Vec<Effect>) {
        self.next_client += 1;
        let client = self.next_client;
        if caller.client.is_some() {
            self.callers.insert(client, caller);
        }
        (
            client,
            self.begin(client, msg, reply, now, audit, call, true),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        client: u64,
        mut msg: Message,
        reply: &Outbound,
        now: Instant,
        audit: Option<Audit>,
        call: Option<Call>,
        client_modern: bool,
    ) -> Vec<Effect> {
        let Ok(Kind::Request { id, method }) = msg.kind() else {
            return vec![];
        };
        let method: Box<str> = method.into();
        let mut call = call;
        // The hub answers itself, without the upstream.
        let answer = |r: &Self, call: &mut Option<Call>, m: Message| {
            r.settle(call.take(), &m, false);
            vec![Effect::To(r.stream(client, reply), m)]
        };
        if &*method == "tools/call" {
            let rule = self.rule_of(client);
            if self.tool_filter.is_some() || rule.is_some() {
                let name: String = msg.param("name").unwrap_or_default();
                if self.tool_filter.as_ref().is_some_and(|f| !f.allows(&name)) {
                    // A blocked tool is indistinguishable from one that does not exist.
                    return answer(
                        self,
                        &mut call,
                        err(id, INVALID_PARAMS, format!("Unknown tool: {name}")),
                    );
                }
                if let Some((who, policy, _)) = rule.filter(|(_, _, f)| !f.allows(&name)) {
                    // The operator's rule, named, so the caller's admin can find it.
                    let why = format!(
                        "tool {name:?} is not allowed for client {who} ({policy}.tools.{})",
                        self.server
                    );
                    if let Some(c) = self.callers.get(&client).and_then(|c| c.client.as_ref()) {
                        crate::metrics::global()
                            .client(&c.label, crate::metrics::ClientOutcome::Denied);
                    }
                    match audit {
                        Some(a) => a.finish(&self.server, "denied"),
                        // A refusal is audited even where calls are not.
                        None => tracing::warn!(
                            target: "mcp_hub::audit",
                            mcp_server = &*self.server,
                            mcp_client = who,
                            mcp_method = "tools/call",
                            mcp_tool = %crate::logsafe::Escaped(&name),
                            outcome = "denied",
                            "tools/call {name:?}: denied by {policy}.tools.{}",
                            self.server
                        ),
                    }
                    return answer(self, &mut call, err(id, POLICY_DENIED, why));
                }
            }
        }
        if matches!(&*method, "resources/subscribe" | "resources/unsubscribe") {
            let Some(uri) = msg.param::<String>("uri") else {
                return answer(
                    self,
                    &mut call,
                    err(id, INVALID_PARAMS, "params.uri must be a string"),
                );
            };
            if self.modern_up {
                // 2026-07-28 has no subscribe: the hub's listen carries the URIs.
                let before = self.subs.len();
                if &*method == "resources/subscribe" {
                    self.subs.entry(uri).or_default().insert(client);
                } else if let Some(s) = self.subs.get_mut(&uri) {
                    s.remove(&client);
                    if s.is_empty() {
                        self.subs.remove(&uri);
                    }
                }
                let mut fx = answer(self, &mut call, Message::response(id, json!({})));
                if self.subs.len() != before {
                    fx.extend(self.relisten());
                }
                return fx;
            }
            if &*method == "resources/subscribe" {
                let set = self.subs.entry(uri).or_default();
                let first = set.is_empty();
                set.insert(client);
                if !first {
                    return answer(self, &mut call, Message::response(id, json!({})));
                }
            } else {
                // The upstream hears of it only when the last subscriber leaves.
                let last = self
                    .subs
                    .get(&uri)
                    .is_some_and(|s| s.len() == 1 && s.contains(&client));
                if !last {
                    if let Some(s) = self.subs.get_mut(&uri) {
                        s.remove(&client);
                    }
                    return answer(self, &mut call, Message::response(id, json!({})));
                }
                self.subs.remove(&uri);
            }
        }
        let progress = msg.progress_token();
        let ex = Exchange {
            client,
            orig: id.clone(),
            progress,
            method,
            deadline: now + self.timeout,
            reply: reply.clone(),
            audit,
            call: call.map(|mut c| {
                c.sent();
                c
            }),
            client_modern,
            retry: None,
            mrtr: None,
            asked: false,
        };
        let up = match self.inflight.begin(ex) {
            Ok(up) => up,
            Err(Duplicate(ex)) => {
                let msg =
                    format!("request id {id} is already in flight on this session; use a new id");
                let mut call = ex.call;
                return answer(self, &mut call, err(id, INVALID_REQUEST, msg));
            }
        };
        msg.set_id(up.into());
        if self.inflight.get(up).is_some_and(|e| e.progress.is_some()) {
            msg.set_progress_token(&to_raw(&up));
        }
        // Era: a 2025 client's request to a 2026-07-28 upstream needs the
        // envelope the upstream wants on every request, which it did not send.
        if self.modern_up && !client_modern {
            if let Some(ex) = self.inflight.get_mut(up) {
                ex.retry = Some(msg.clone());
            }
        }
        vec![Effect::Up(msg)]
    }

    /// A notification or a response from a client.
    pub fn from_client(&mut self, client: u64, mut msg: Message) -> Vec<Effect> {
        match msg.kind() {
            Ok(Kind::Response { id }) => {
                let Some(h) = id.as_u64() else { return vec![] };
                match self.server_reqs.get(&h) {
                    Some(r) if r.client == client => {}
                    _ => return vec![],
                }
                let Some(r) = self.server_reqs.remove(&h) else {
                    return vec![];
                };
                if let Some(e) = r.ex.and_then(|up| self.inflight.get_mut(up)) {
                    e.asked = false;
                }
                if let Some(up) = r.mrtr {
                    return self.mrtr_answer(up, r.up_id, msg);
                }
                msg.set_id(r.up_id);
                vec![Effect::Up(msg)]
            }
            Ok(Kind::Notification {
                method: "notifications/cancelled",
            }) => {
                let Some(orig) = msg
                    .param::<serde_json::Value>("requestId")
                    .and_then(|v| Id::from_value(&v))
                else {
                    return vec![];
                };
                let Some(up) = self.inflight.by_client(client, &orig) else {
                    return vec![];
                };
                let Some(ex) = self.inflight.complete(up) else {
                    return vec![];
                };
                if let Some(a) = ex.audit {
                    a.finish(&self.server, "cancelled");
                }
                msg.set_param("requestId", &to_raw(&up));
                let e = err(ex.orig, CANCELLED, "request cancelled by the client");
                self.settle(ex.call, &e, false);
                vec![
                    Effect::Up(msg),
                    Effect::To(self.stream(client, &ex.reply), e),
                ]
            }
            // The hub initialized a shared upstream itself.
            Ok(Kind::Notification {
                method: "notifications/initialized",
            }) if self.shared => vec![],
            // 2026-07-28 has no client notifications but cancellation.
            Ok(Kind::Notification { .. }) if self.modern_up => vec![],
            Ok(Kind::Notification { .. }) => vec![Effect::Up(msg)],
            _ => vec![],
        }
    }
}

fn cancelled(up: u64, reason: &str) -> Message {
    Message::notification(
        "notifications/cancelled",
        Some(json!({"requestId": up, "reason": reason})),
    )
}

mod clients;
mod from_upstream;
mod lifecycle;
mod mrtr;
#[cfg(test)]
mod tests;
