//! One client's session on an upstream: what a session adds to the routed
//! exchange (the cached `initialize` of a shared upstream, a 2025 client's
//! details remembered for a 2026-07-28 upstream, its envelope) and its end.

use super::outbound::Outbound;
use super::router::Effect;
use super::{Audit, SessionInfo, Upstream, PROTOCOL_VERSIONS};
use crate::config::ServerConfig;
use crate::jsonrpc::{to_raw, Message, UPSTREAM_ERROR};
use crate::supervisor::Supervisor;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// One client session on an upstream.
pub struct Session {
    pub(super) opened: Instant,
    pub(super) up: Arc<Upstream>,
    pub(super) client: u64,
    pub(super) info: Arc<SessionInfo>,
    pub(super) sup: Arc<Supervisor>,
    pub(super) closed: std::sync::atomic::AtomicBool,
    /// What a 2025 client said once that a 2026-07-28 upstream needs on
    /// every request: its capabilities, its info, its log level.
    pub(super) legacy: Mutex<LegacyClient>,
}

#[derive(Default)]
pub(super) struct LegacyClient {
    caps: Option<serde_json::Value>,
    info: Option<serde_json::Value>,
    log_level: Option<String>,
}

impl Session {
    /// One request from the client; its answer, progress and any server
    /// request tied to it go to `reply`.
    pub async fn request(&self, msg: Message, reply: &Outbound) {
        self.request_metered(msg, reply, true).await
    }

    /// A request the hub makes itself on this session (the `initialize` of a
    /// per-client upstream for a 2026-07-28 client, a probe): routed like a
    /// client's, but no client asked, so the metrics do not count it.
    pub async fn request_own(&self, msg: Message, reply: &Outbound) {
        self.request_metered(msg, reply, false).await
    }

    async fn request_metered(&self, msg: Message, reply: &Outbound, metered: bool) {
        let core = &self.up.core;
        let link = &self.up.link;
        let Some(id) = msg.id().cloned() else { return };
        core.touch();
        let call = metered.then(|| core.start_call(&msg, &self.info));
        // An answer the hub gives itself, without the upstream.
        let answer = |m: Message| {
            if let Some(c) = &call {
                core.meter
                    .server_op(c, crate::metrics::ErrorType::of(&m, false));
            }
            let _ = reply.push(m);
        };
        let mut msg = msg;
        if core.shared {
            // Era: remembered from every 2025 client (only it sends an
            // initialize), since the upstream's era is known only once it is up.
            if !self.info.modern && msg.method() == Some("initialize") {
                self.remember(&msg);
            }
            match msg.method() {
                Some("initialize") => {
                    let m = match link.ready().await {
                        Ok(()) => {
                            let mut m = Message::response_raw(
                                id,
                                link.init_result().unwrap_or_else(|| {
                                    serde_json::value::RawValue::NULL.to_owned()
                                }),
                            );
                            let asked: Option<String> = msg.param("protocolVersion");
                            if let Some(v) =
                                asked.filter(|v| PROTOCOL_VERSIONS.contains(&v.as_str()))
                            {
                                m.set_result_field("protocolVersion", &to_raw(&v));
                            }
                            m
                        }
                        Err(e) => Message::error(Some(id), UPSTREAM_ERROR, e),
                    };
                    answer(m);
                    return;
                }
                Some("ping") => {
                    answer(Message::response(id, serde_json::json!({})));
                    return;
                }
                _ => {
                    if let Err(e) = link.ready().await {
                        answer(Message::error(Some(id), UPSTREAM_ERROR, e));
                        return;
                    }
                    // Era: a 2025 client of a 2026-07-28 upstream says once
                    // what that upstream needs on every request.
                    if link.is_modern() && !self.info.modern {
                        if msg.method() == Some("logging/setLevel") {
                            if let Ok(mut l) = self.legacy.lock() {
                                l.log_level = msg.param("level");
                            }
                            answer(Message::response(id, serde_json::json!({})));
                            return;
                        }
                        self.envelope(&mut msg);
                    }
                }
            }
        }
        // A 2026-07-28 client's envelope goes up only to an upstream that
        // speaks 2026-07-28; a legacy one must never see the modern keys.
        // Decided here, after the link negotiated: a lazily started server's
        // era is known only once it is up, so the first request after a
        // start, an idle stop or a crash restart is decided like every other.
        // A per-client upstream is always initialized in the 2025 era.
        if self.info.modern && !(core.shared && link.is_modern()) {
            msg = super::strip_modern(msg).await;
        }
        let cfg = core.cfg();
        let audit = Audit::start(&cfg, &msg, &self.info);
        let fx = core
            .router()
            .request_with(self.client, msg, reply, Instant::now(), audit, call);
        self.carry(fx, &cfg).await;
    }

    /// What a 2025 client's `initialize` says that every 2026-07-28 request
    /// must repeat: its capabilities (those the hub can relay: questions on
    /// this client's stream) and its info.
    fn remember(&self, init: &Message) {
        let p = init.params_value().unwrap_or_default();
        let caps = p.get("capabilities").cloned().unwrap_or_default();
        let mut keep = serde_json::Map::new();
        for k in ["sampling", "elicitation", "roots"] {
            if let Some(v) = caps.get(k) {
                keep.insert(k.into(), v.clone());
            }
        }
        // 2025-06-18's `elicitation: {}` is form mode, which 2026-07-28 names.
        if let Some(e) = keep.get_mut("elicitation") {
            if e.as_object().is_some_and(|o| o.is_empty()) {
                *e = serde_json::json!({"form": {}});
            }
        }
        if let Ok(mut l) = self.legacy.lock() {
            l.caps = Some(serde_json::Value::Object(keep));
            l.info = p.get("clientInfo").cloned();
        }
    }

    /// The per-request `_meta` a 2026-07-28 upstream needs, made from what
    /// this 2025 client said in its `initialize` (unknown `_meta` keys stay).
    fn envelope(&self, msg: &mut Message) {
        let l = self.legacy.lock().unwrap_or_else(|e| e.into_inner());
        let hub = crate::mcp::hub_meta(
            l.caps.as_ref().unwrap_or(&serde_json::json!({})),
            l.info.as_ref(),
            l.log_level.as_deref(),
        );
        let mut meta = crate::mcp::request_meta(msg).unwrap_or_default();
        if let serde_json::Value::Object(h) = hub {
            meta.extend(h);
        }
        if msg.params_raw().is_none() {
            *msg = Message::request(
                msg.id().cloned().unwrap_or(0u64.into()),
                msg.method().unwrap_or(""),
                serde_json::json!({}),
            );
        }
        msg.set_param("_meta", &to_raw(&meta));
    }

    /// A notification or a response (to a server request) from the client.
    pub async fn notify(&self, msg: Message) {
        let fx = self.up.core.router().from_client(self.client, msg);
        self.carry(fx, &self.up.core.cfg()).await;
    }

    async fn carry(&self, fx: Vec<Effect>, cfg: &ServerConfig) {
        self.up.carry(fx, cfg).await
    }

    /// The client left (DELETE, closed stream, expiry).
    pub fn close(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let fx = self.up.core.router().detach(self.client);
        // Era: as at attach, a modern client's transient session is not counted.
        if !self.info.modern {
            self.up
                .core
                .meter
                .session_closed(self.info.transport, self.opened.elapsed());
        }
        self.up.core.touch();
        self.up.carry_dropped(fx);
        self.sup.session_closed();
        if !self.up.core.shared {
            self.up.link.retire("the client session ended");
        }
        self.up.link.wake();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}
