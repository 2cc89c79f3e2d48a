//! The router's half of 2026-07-28 upstreams for 2025 clients: a call that
//! comes back `input_required` becomes questions on the client's stream
//! (`mrtr_round`), their answers are gathered (`mrtr_answer`) and the call
//! is sent again (`mrtr_retry`); and the one `subscriptions/listen` kept open
//! per upstream (`relisten`).

use super::*;

impl Router {
    /// A 2026-07-28 upstream needs input for a 2025 client's call: ask the
    /// client each question as a request on the call's stream, and keep the
    /// call in flight until the answers are in.
    pub(super) fn mrtr_round(&mut self, up: u64, mut ex: Exchange, msg: &Message) -> Vec<Effect> {
        let rounds = ex.mrtr.as_ref().map_or(0, |m| m.rounds) + 1;
        let stream = self.stream(ex.client, &ex.reply);
        if rounds > MRTR_ROUNDS {
            let e = err(
                ex.orig,
                UPSTREAM_ERROR,
                format!(
                    "server {:?} still asked for input after {MRTR_ROUNDS} rounds",
                    self.server
                ),
            );
            self.settle(ex.call, &e, true);
            return vec![Effect::To(stream, e)];
        }
        let requests: indexmap::IndexMap<String, serde_json::Value> =
            msg.result_field("inputRequests").unwrap_or_default();
        let state: Option<Box<serde_json::value::RawValue>> = msg.result_field("requestState");
        let mut fx = Vec::new();
        let mut pending = Vec::new();
        for (key, req) in requests {
            let method = req.get("method").and_then(|m| m.as_str()).unwrap_or("");
            if !matches!(
                method,
                "sampling/createMessage" | "elicitation/create" | "roots/list"
            ) {
                let e = err(
                    ex.orig,
                    UPSTREAM_ERROR,
                    format!(
                        "server {:?} asked for {method:?}, which mcp-hub cannot relay",
                        self.server
                    ),
                );
                self.settle(ex.call, &e, true);
                return vec![Effect::To(stream, e)];
            }
            let h = self.inflight.next_id();
            self.server_reqs.insert(
                h,
                ServerRequest {
                    client: ex.client,
                    ex: None,
                    up_id: Id::Str(key.as_str().into()),
                    mrtr: Some(up),
                },
            );
            let params = req.get("params").cloned().unwrap_or(json!({}));
            fx.push(Effect::To(
                Target::Stream {
                    out: ex.reply.clone(),
                    fallback: self.clients.get(&ex.client).cloned(),
                },
                Message::request(h.into(), method, params),
            ));
            pending.push(key);
        }
        ex.mrtr = Some(Mrtr {
            state,
            pending,
            answers: Default::default(),
            rounds,
        });
        let ready = ex.mrtr.as_ref().is_some_and(|m| m.pending.is_empty());
        self.inflight.put(up, ex);
        if ready {
            // Only state came back ("try again"): retry at once.
            fx.extend(self.mrtr_retry(up));
        }
        fx
    }

    /// A 2025 client answered one question of an MRTR round.
    pub(super) fn mrtr_answer(&mut self, up: u64, key: Id, msg: Message) -> Vec<Effect> {
        let Id::Str(key) = key else { return vec![] };
        let Some(ex) = self.inflight.get_mut(up) else {
            return vec![];
        };
        if msg.is_error() {
            // The client refused: the call ends with its error.
            let Some(ex) = self.inflight.complete(up) else {
                return vec![];
            };
            let mut e = msg;
            e.set_id(ex.orig.clone());
            self.settle(ex.call, &e, true);
            return vec![Effect::To(self.stream(ex.client, &ex.reply), e)];
        }
        let Some(round) = ex.mrtr.as_mut() else {
            return vec![];
        };
        round.pending.retain(|k| **k != *key);
        if let Some(r) = msg.result_raw() {
            round.answers.insert(key.to_string(), r.to_owned());
        }
        if round.pending.is_empty() {
            return self.mrtr_retry(up);
        }
        vec![]
    }

    /// Sends the call again with the client's answers, under a new id.
    pub(super) fn mrtr_retry(&mut self, up: u64) -> Vec<Effect> {
        let Some(mut ex) = self.inflight.complete(up) else {
            return vec![];
        };
        let Some(mut m) = ex.retry.clone() else {
            return vec![];
        };
        let round = ex.mrtr.take().unwrap_or_default();
        let rounds = round.rounds;
        let has_progress = ex.progress.is_some();
        let Ok(new_up) = self.inflight.begin(ex) else {
            return vec![];
        };
        m.set_id(new_up.into());
        if has_progress {
            m.set_progress_token(&to_raw(&new_up));
        }
        m.set_param("inputResponses", &to_raw(&round.answers));
        match &round.state {
            Some(s) => m.set_param("requestState", s),
            None => m.remove_param("requestState"),
        }
        if let Some(ex) = self.inflight.get_mut(new_up) {
            ex.retry = Some(m.clone());
            ex.mrtr = Some(Mrtr {
                rounds,
                ..Default::default()
            });
        }
        vec![Effect::Up(m)]
    }

    /// The hub's one `subscriptions/listen` toward a modern upstream, asked
    /// again when the set of URIs clients subscribed to changes.
    pub(super) fn relisten(&mut self) -> Vec<Effect> {
        // Era: only a 2026-07-28 upstream has `subscriptions/listen`.
        if !self.modern_up {
            return vec![];
        }
        let mut fx = Vec::new();
        if let Some(old) = self.listen.take() {
            self.own.remove(&old);
            fx.push(Effect::Up(cancelled(old, "mcp-hub renews its listen")));
        }
        let id = self.inflight.next_id();
        self.own.insert(id);
        self.listen = Some(id);
        let uris: Vec<&String> = self.subs.keys().collect();
        let mut notifications = json!({
            "toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true,
        });
        if !uris.is_empty() {
            notifications["resourceSubscriptions"] = json!(uris);
        }
        fx.push(Effect::Up(Message::request(
            id.into(),
            "subscriptions/listen",
            json!({"notifications": notifications, "_meta": crate::mcp::hub_meta(&json!({}), None, None)}),
        )));
        fx
    }
}
