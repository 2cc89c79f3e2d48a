//! Who is attached to a router: clients coming and going (a session's
//! attach and detach, a stateless exchange's end), who each one is, and what
//! leaving takes with it (its exchanges in flight, the server's questions to
//! it, its subscriptions).

use super::{cancelled, err, Effect, Router, Target};
use crate::config::clients::Client;
use crate::jsonrpc::{Id, Message, UPSTREAM_ERROR};
use crate::session::{Downstream, Secret};
use serde_json::json;
use std::sync::Arc;

/// Who a router client is.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub secret: Option<Secret>,
    pub client: Option<Arc<Client>>,
}

impl Caller {
    pub fn of(info: &crate::session::SessionInfo) -> Caller {
        Caller {
            secret: info.secret.clone(),
            client: info.client.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.secret.is_none() && self.client.is_none()
    }
}

impl Router {
    pub fn attach(&mut self, sink: Arc<dyn Downstream>, token: Option<Secret>) -> u64 {
        let caller = Caller {
            secret: token,
            client: None,
        };
        self.attach_as(sink, caller, false)
    }

    /// Attaches a client; `modern`: it speaks 2026-07-28 itself.
    pub fn attach_as(&mut self, sink: Arc<dyn Downstream>, caller: Caller, modern: bool) -> u64 {
        self.next_client += 1;
        self.clients.insert(self.next_client, sink);
        // Era: a 2026-07-28 client's answers keep the modern result shapes
        // (`input_required`), which a 2025 client must not be sent.
        if modern {
            self.modern_clients.insert(self.next_client);
        }
        if !caller.is_empty() {
            self.callers.insert(self.next_client, caller);
        }
        self.next_client
    }

    /// The clients `pred` rejects, with their sinks. `pred` may update the
    /// caller of a client it keeps (a reloaded client's new rules).
    pub fn clients_where(
        &mut self,
        mut pred: impl FnMut(&mut Caller) -> bool,
    ) -> Vec<(u64, Arc<dyn Downstream>)> {
        let mut out = Vec::new();
        for (c, sink) in &self.clients {
            let rejected = match self.callers.get_mut(c) {
                Some(caller) => pred(caller),
                None => pred(&mut Caller::default()),
            };
            if rejected {
                out.push((*c, sink.clone()));
            }
        }
        out
    }

    /// A client left: cancel what it has in flight, refuse what the server
    /// asked it, and drop its subscriptions.
    pub fn detach(&mut self, client: u64) -> Vec<Effect> {
        self.callers.remove(&client);
        self.modern_clients.remove(&client);
        if self.clients.remove(&client).is_none() {
            return Vec::new();
        }
        let mut fx = self.release(client);
        let uris: Vec<String> = self.subs.keys().cloned().collect();
        for uri in uris {
            fx.extend(self.unsubscribe(client, &uri));
        }
        fx
    }

    /// A stateless exchange ended (answered, or its client went away):
    /// cancel it if it is still in flight and refuse what the server asked
    /// it. It had no session, subscriptions or token to drop.
    /// `orig` is its request's id: when it was answered (the common case)
    /// nothing of it is in flight, and the in-flight table is not scanned.
    pub fn end_stateless(&mut self, client: u64, orig: &Id) -> Vec<Effect> {
        self.callers.remove(&client);
        if self.inflight.by_client(client, orig).is_some() {
            return self.release(client);
        }
        if self.server_reqs.is_empty() {
            return Vec::new();
        }
        self.release(client)
    }

    fn release(&mut self, client: u64) -> Vec<Effect> {
        let mut fx = Vec::new();
        for (up, ex) in self.inflight.drain_client(client) {
            if let Some(a) = ex.audit {
                a.finish(&self.server, "cancelled");
            }
            fx.push(Effect::Up(cancelled(up, "client session ended")));
            // A POST still waiting on this exchange gets its answer: the
            // session it belonged to is gone.
            let e = err(
                ex.orig,
                UPSTREAM_ERROR,
                "the session ended before the server answered",
            );
            self.settle(ex.call, &e, false);
            fx.push(Effect::To(
                Target::Stream {
                    out: ex.reply,
                    fallback: None,
                },
                e,
            ));
        }
        let asked: Vec<u64> = self
            .server_reqs
            .iter()
            .filter(|(_, r)| r.client == client)
            .map(|(h, _)| *h)
            .collect();
        for h in asked {
            if let Some(r) = self.server_reqs.remove(&h) {
                fx.push(Effect::Up(err(
                    r.up_id,
                    UPSTREAM_ERROR,
                    "the client session this request went to has ended",
                )));
            }
        }
        fx
    }

    /// Removes one subscription; the upstream's goes with the last subscriber.
    fn unsubscribe(&mut self, client: u64, uri: &str) -> Option<Effect> {
        let set = self.subs.get_mut(uri)?;
        if !set.remove(&client) || !set.is_empty() {
            return None;
        }
        self.subs.remove(uri);
        // Era: a 2026-07-28 upstream has no unsubscribe; the listen carries the set.
        if self.modern_up {
            // Dropped from the next listen; the current one may still carry it.
            return None;
        }
        let id = self.inflight.next_id();
        self.own.insert(id);
        Some(Effect::Up(Message::request(
            id.into(),
            "resources/unsubscribe",
            json!({ "uri": uri }),
        )))
    }
}
