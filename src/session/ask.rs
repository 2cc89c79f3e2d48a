//! The hub as its own client: one request of the hub's own sent on a client
//! session, and its one answer. The probe of `panicIfInvalid`, the
//! `initialize` of a per-client upstream for a 2026-07-28 client, a group's
//! fan-out to a member, a group's one-shot request for the OpenAPI facade and
//! a group relaying a client's call all go through [`ask`].
//!
//! The rule for a server→client request (sampling, elicitation, roots) that
//! arrives during such a request is explicit, and there is one:
//! - [`OnServerRequest::Refuse`]: nobody can answer it (the hub asked for
//!   itself). The server gets a JSON-RPC error at once, saying why, so it
//!   never waits for an answer that cannot come. Progress and log
//!   notifications tied to the request are dropped.
//! - [`OnServerRequest::Forward`]: a client stands behind the request (a
//!   group relaying its call). Everything tied to the request but its answer,
//!   server requests included, goes to the given function, which owns the
//!   reply path; the client's answer comes back through the session.

use super::outbound::{self, Outbound};
use crate::jsonrpc::Message;
use std::future::Future;
use std::time::Duration;

/// Something the hub can send a request on: a session on one server, or a
/// session on a group.
pub trait Asker: Sync {
    /// Sends `msg`; its answer and anything tied to it go to `reply`.
    fn send(&self, msg: Message, reply: &Outbound) -> impl Future<Output = ()> + Send;
    /// Sends a response (to a server request) or a notification.
    fn tell(&self, msg: Message) -> impl Future<Output = ()> + Send;
}

/// What to do with a server→client request that arrives during the hub's own
/// request. See the module doc.
pub enum OnServerRequest<'a> {
    /// Answer it with this error code and a message that says why nobody can.
    Refuse(i64, &'static str),
    /// Hand it, and every other message tied to the request but its answer,
    /// to this function.
    Forward(&'a (dyn Fn(Message) + Send + Sync)),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AskError {
    #[error("the session ended before the server answered")]
    Ended,
    #[error("no answer within {}s", .0.as_secs())]
    Timeout(Duration),
}

/// Sends `msg` on `on` and waits for its answer (within `within`, when
/// given). `label` names the exchange in the bounded queue's logs.
pub async fn ask<A: Asker>(
    on: &A,
    msg: Message,
    rule: OnServerRequest<'_>,
    within: Option<Duration>,
    label: (&str, &str),
) -> Result<Message, AskError> {
    let (tx, mut rx) = outbound::channel(label.0, label.1);
    on.send(msg, &tx).await;
    let wait = async {
        loop {
            let Some(m) = rx.recv().await else {
                return Err(AskError::Ended);
            };
            if m.is_response() {
                return Ok(m);
            }
            match &rule {
                OnServerRequest::Forward(f) => f(m),
                OnServerRequest::Refuse(code, why) => {
                    if let (true, Some(id)) = (m.is_request(), m.id().cloned()) {
                        on.tell(Message::error(Some(id), *code, *why)).await;
                    }
                }
            }
        }
    };
    match within {
        Some(t) => tokio::time::timeout(t, wait)
            .await
            .unwrap_or(Err(AskError::Timeout(t))),
        None => wait.await,
    }
}

/// A request on behalf of a client (a group's fan-out or relay): counted in
/// the metrics like the client's own.
impl Asker for super::Session {
    fn send(&self, msg: Message, reply: &Outbound) -> impl Future<Output = ()> + Send {
        self.request(msg, reply)
    }
    fn tell(&self, msg: Message) -> impl Future<Output = ()> + Send {
        self.notify(msg)
    }
}

/// A request no client asked for (a probe, the hub's own `initialize`): not
/// counted in the metrics.
pub struct Unmetered<'a>(pub &'a super::Session);

impl Asker for Unmetered<'_> {
    fn send(&self, msg: Message, reply: &Outbound) -> impl Future<Output = ()> + Send {
        self.0.request_own(msg, reply)
    }
    fn tell(&self, msg: Message) -> impl Future<Output = ()> + Send {
        self.0.notify(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Id, UPSTREAM_ERROR};
    use std::sync::Mutex;

    /// Answers after asking the client one question, with a progress note first.
    struct Asking {
        told: Mutex<Vec<Message>>,
        answer: bool,
    }

    impl Asker for Asking {
        async fn send(&self, msg: Message, reply: &Outbound) {
            let _ = reply.push(Message::notification(
                "notifications/progress",
                Some(serde_json::json!({"progress": 1})),
            ));
            let _ = reply.push(Message::request(
                Id::from(7u64),
                "elicitation/create",
                serde_json::json!({}),
            ));
            if self.answer {
                let _ = reply.push(Message::response(
                    msg.id().cloned().unwrap(),
                    serde_json::json!({"ok": true}),
                ));
            } else {
                reply.close();
            }
        }
        async fn tell(&self, msg: Message) {
            self.told.lock().unwrap().push(msg);
        }
    }

    fn req() -> Message {
        Message::request(Id::from(1u64), "tools/call", serde_json::json!({}))
    }

    #[tokio::test]
    async fn refuse_answers_the_server_and_drops_the_rest() {
        let a = Asking {
            told: Mutex::default(),
            answer: true,
        };
        let m = ask(
            &a,
            req(),
            OnServerRequest::Refuse(UPSTREAM_ERROR, "nobody"),
            None,
            ("s", "t"),
        )
        .await
        .unwrap();
        assert_eq!(m.result_field::<bool>("ok"), Some(true));
        let told = a.told.lock().unwrap();
        assert_eq!(told.len(), 1, "one refusal, nothing for the progress note");
        assert_eq!(told[0].id(), Some(&Id::from(7u64)));
        assert_eq!(told[0].error_code(), Some(UPSTREAM_ERROR));
    }

    #[tokio::test]
    async fn forward_hands_over_everything_but_the_answer() {
        let a = Asking {
            told: Mutex::default(),
            answer: true,
        };
        let seen = Mutex::new(Vec::new());
        let f = |m: Message| {
            seen.lock()
                .unwrap()
                .push(m.method().unwrap_or("").to_owned())
        };
        ask(&a, req(), OnServerRequest::Forward(&f), None, ("s", "t"))
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["notifications/progress", "elicitation/create"]
        );
        assert!(a.told.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_ended_session_and_a_timeout_are_errors() {
        let a = Asking {
            told: Mutex::default(),
            answer: false,
        };
        let r = ask(
            &a,
            req(),
            OnServerRequest::Refuse(UPSTREAM_ERROR, "x"),
            None,
            ("s", "t"),
        )
        .await;
        assert_eq!(r.unwrap_err(), AskError::Ended);

        struct Silent;
        impl Asker for Silent {
            // The queue stays open, and nothing comes.
            async fn send(&self, _: Message, _: &Outbound) {}
            async fn tell(&self, _: Message) {}
        }
        tokio::time::pause();
        let r = ask(
            &Silent,
            req(),
            OnServerRequest::Refuse(UPSTREAM_ERROR, "x"),
            Some(Duration::from_secs(3)),
            ("s", "t"),
        )
        .await;
        assert_eq!(r.unwrap_err(), AskError::Timeout(Duration::from_secs(3)));
    }
}
