//! A 2026-07-28 request on a shared upstream: an exchange with no client
//! session. It is an entry in the router's one in-flight table under a
//! client id of its own, so its answer, progress and any question the server
//! asks during it reach this request's stream, and a question is attributed
//! exactly, as a session's would be. What a session costs and a stateless
//! request does not need is left out: no attach or detach, no token slot, no
//! supervisor count, no session-wide sink, no made-up session id in the
//! audit line.
//!
//! Whether the client's `_meta` envelope goes up is decided here, after the
//! link negotiated: a lazily started server's era is known only once it is
//! up. A per-client server or a group still takes a transient session (its
//! upstream, or its members, need an `initialize`).

use super::{Audit, SessionInfo, Upstream};
use crate::jsonrpc::{Id, Message, UPSTREAM_ERROR};
use crate::session::outbound::Outbound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::time::Instant;

/// One stateless exchange. Dropping it before the answer came cancels the
/// request upstream and refuses what the server asked it.
pub struct Stateless {
    up: Arc<Upstream>,
    /// Its client id in the router (0 until the request went up).
    client: u64,
    /// Its request's id.
    id: Option<Id>,
}

impl Stateless {
    /// Sends one modern request. Its answer (or an error saying why there is
    /// none), progress and server requests go to `reply`.
    pub async fn start(
        up: &Arc<Upstream>,
        mut msg: Message,
        reply: &Outbound,
        info: &Arc<SessionInfo>,
    ) -> Stateless {
        let core = &up.core;
        let link = &up.link;
        // Counted from here: a lazily started upstream is wanted while this waits.
        core.stateless.fetch_add(1, Ordering::Relaxed);
        let mut me = Stateless {
            up: up.clone(),
            client: 0,
            id: msg.id().cloned(),
        };
        let Some(id) = me.id.clone() else {
            return me;
        };
        core.touch();
        // `info.modern` is set: counted in the modern era.
        let call = core.start_call(&msg, info);
        if let Err(e) = link.ready().await {
            let m = Message::error(Some(id), UPSTREAM_ERROR, e);
            core.meter
                .server_op(&call, crate::metrics::ErrorType::of(&m, false));
            let _ = reply.push(m);
            return me;
        }
        // Era: a 2025 upstream rejects the modern `_meta` keys; decided only
        // now, once the link negotiated (the first-contact case).
        if !link.is_modern() {
            msg = super::strip_modern(msg).await;
        }
        let cfg = core.cfg();
        let audit = Audit::start(&cfg, &msg, info);
        let (client, fx) = core.router().request_stateless(
            msg,
            reply,
            Instant::now(),
            audit,
            Some(call),
            super::router::Caller::of(info),
        );
        me.client = client;
        up.carry(fx, &cfg).await;
        me
    }

    /// A response from the client to a question the server asked during
    /// this request (the retry of an `input_required`).
    pub async fn answer(&self, msg: Message) {
        let fx = self.up.core.router().from_client(self.client, msg);
        self.up.carry(fx, &self.up.core.cfg()).await;
    }
}

impl Drop for Stateless {
    fn drop(&mut self) {
        let core = &self.up.core;
        core.stateless.fetch_sub(1, Ordering::Relaxed);
        core.touch();
        let (client, Some(id)) = (self.client, &self.id) else {
            return;
        };
        if client == 0 {
            return;
        }
        let fx = core.router().end_stateless(client, id);
        if fx.is_empty() {
            return;
        }
        self.up.carry_dropped(fx);
        self.up.link.wake();
    }
}
