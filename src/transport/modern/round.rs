//! The rest of a modern call after it went up: what the upstream says for
//! it goes to the client's stream, and a question it asks turns the answer
//! into `input_required`, with the call held until the client's retry.

use super::*;

/// The rest of one modern call after it was sent up.
pub(super) struct Round {
    pub(super) ctx: Arc<Ctx>,
    pub(super) server: String,
    pub(super) id: Id,
    pub(super) method: String,
    pub(super) progress: Option<Value>,
    pub(super) caps: Value,
    pub(super) log: bool,
    pub(super) token: Option<crate::session::Secret>,
    pub(super) binding: u64,
}

impl Round {
    /// Moves what the upstream says for this call to the client's stream,
    /// turning questions into `input_required` and holding the call.
    pub(super) async fn pump(
        self,
        session: Carrier,
        mut rx: Inbound,
        out: Outbound,
        first: Option<Message>,
    ) {
        let mut first = Some(first);
        loop {
            let m = tokio::select! {
                m = async { match first.take() { Some(f) => f, None => rx.recv().await } } => m,
                _ = out.closed() => {
                    // The client hung up: that is how a modern client cancels.
                    session.cancel(&self.id, "the client closed the stream").await;
                    return;
                }
            };
            let Some(mut m) = m else {
                let _ = out.push(Message::error(
                    Some(self.id.clone()),
                    UPSTREAM_ERROR,
                    "the upstream ended before it answered",
                ));
                out.close();
                return;
            };
            match m.kind() {
                Ok(Kind::Response { .. }) => {
                    m.set_id(self.id.clone());
                    let _ = out.push(self.modernize(m));
                    out.close();
                    return;
                }
                Ok(Kind::Notification {
                    method: "notifications/progress",
                }) => {
                    if let Some(t) = &self.progress {
                        m.set_param("progressToken", &to_raw(t));
                        let _ = out.push(m);
                    }
                }
                Ok(Kind::Request { id, method }) => {
                    let method = method.to_string();
                    if !self.may_ask(&method) {
                        session
                            .answer(Message::error(
                                Some(id),
                                METHOD_NOT_FOUND,
                                format!("the client did not declare the capability {method} needs"),
                            ))
                            .await;
                        continue;
                    }
                    // Gather the questions already queued into one round.
                    let mut asked = vec![(id, method, m.params_value())];
                    while let (Some(next), _) = rx.try_recv() {
                        match next.kind() {
                            Ok(Kind::Request { id, method }) if self.may_ask(method) => {
                                asked.push((id, method.to_string(), next.params_value()))
                            }
                            _ => {}
                        }
                    }
                    let mut requests = serde_json::Map::new();
                    let mut pending = vec![];
                    for (id, method, params) in asked {
                        let key = id.to_string();
                        let mut r = json!({"method": method});
                        if let Some(p) = params {
                            r["params"] = p;
                        }
                        requests.insert(key.clone(), r);
                        pending.push(key);
                    }
                    let held = Held::new(
                        session,
                        rx,
                        self.token.clone(),
                        &self.server,
                        self.binding,
                        pending,
                        self.caps.clone(),
                        self.log,
                    );
                    let answer = match self.ctx.live.holds.hold(held) {
                        Ok(handle) => Message::response(
                            self.id.clone(),
                            json!({"resultType": "input_required",
                                   "inputRequests": requests,
                                   "requestState": handle}),
                        ),
                        Err(e) => {
                            Message::error(Some(self.id.clone()), UPSTREAM_ERROR, e.to_string())
                        }
                    };
                    let _ = out.push(answer);
                    out.close();
                    return;
                }
                _ => {}
            }
        }
    }

    /// Whether this request's capabilities let the server ask `method`.
    fn may_ask(&self, method: &str) -> bool {
        let cap = match method {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            "roots/list" => "roots",
            _ => return false,
        };
        self.caps.get(cap).is_some()
    }

    /// A legacy answer as a modern one: `resultType` and cache hints on
    /// results; the retired error codes mapped to their modern meaning.
    pub(super) fn modernize(&self, mut m: Message) -> Message {
        if let Some(r) = m.result_raw() {
            if let Some(r) = mcp::modernize_result(&self.method, r) {
                m.set_result_raw(r);
            }
            return m;
        }
        match m.error_code() {
            // Resource not found is invalid params now.
            Some(-32002) => {
                let msg = m
                    .error_raw()
                    .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
                    .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| "resource not found".into());
                Message::error(Some(self.id.clone()), INVALID_PARAMS, msg)
            }
            _ => m,
        }
    }
}
