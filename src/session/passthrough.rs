//! `per-client` sessions: one child per client session, messages forwarded
//! verbatim, the client's own `initialize` included. For stateful servers (a
//! browser, a REPL) that must not be shared.
//!
//! The hub still keeps two promises here: `toolFilter` applies, and every request
//! in flight is answered with an error when the child dies or does not answer in
//! time. When the child dies the session ends; the client gets 404 on its next
//! request and initializes again, which starts a fresh child.

use super::{blocked_call, filter_tool_list, Audit, Downstream, SessionInfo};
use crate::config::ServerConfig;
use crate::jsonrpc::{Id, Kind, Message, TIMEOUT_ERROR, UPSTREAM_ERROR};
use crate::supervisor::{reap_child, stop_child, Supervisor};
use crate::upstream::{Outbox, Upstream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct InFlight {
    deadline: Instant,
    tool_list: bool,
    method: String,
    audit: Option<Audit>,
}

pub struct Passthrough {
    cfg: Arc<ServerConfig>,
    sup: Arc<Supervisor>,
    tx: Outbox,
    inflight: Mutex<HashMap<Id, InFlight>>,
    sink: Arc<dyn Downstream>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    info: Arc<SessionInfo>,
}

impl Passthrough {
    pub async fn open(
        cfg: Arc<ServerConfig>,
        sup: Arc<Supervisor>,
        sink: Arc<dyn Downstream>,
        info: SessionInfo,
    ) -> Result<Arc<Passthrough>, String> {
        let child = sup
            .start_per_client(&cfg)
            .await
            .map_err(|e| format!("server {:?}: {e}", cfg.name))?;
        tracing::info!(mcp_server = %cfg.name, pid = child.pid().unwrap_or(0), "started per-client upstream");
        let (stop_tx, stop_rx) = oneshot::channel();
        let p = Arc::new(Passthrough {
            cfg,
            sup: sup.clone(),
            tx: child.tx.clone(),
            inflight: Mutex::new(HashMap::new()),
            sink,
            stop: Mutex::new(Some(stop_tx)),
            info: Arc::new(info),
        });
        sup.session_opened();
        tokio::spawn(p.clone().pump(child, stop_rx));
        Ok(p)
    }

    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<Id, InFlight>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn send(&self, msg: Message) {
        if let Ok(Kind::Request { id, method }) = msg.kind() {
            if let Some(err) = blocked_call(self.cfg.tool_filter.as_ref(), &id, &msg) {
                self.sink.deliver(err);
                return;
            }
            let entry = InFlight {
                deadline: Instant::now() + self.cfg.request_timeout,
                tool_list: method == "tools/list",
                method: method.to_string(),
                audit: Audit::start(&self.cfg, &msg, &self.info),
            };
            self.inflight().insert(id.clone(), entry);
            if self.tx.send(&msg).await.is_err() && self.inflight().remove(&id).is_some() {
                let e = format!("server {:?}: the child has exited", self.cfg.name);
                self.sink
                    .deliver(Message::error(Some(id), UPSTREAM_ERROR, e));
            }
            return;
        }
        let _ = self.tx.send(&msg).await;
    }

    /// Ends the session from the hub's side (reload, shutdown): requests in flight
    /// get an error naming `why`, the transport ends the session, the child stops.
    pub fn end(&self, why: &str) {
        self.fail_inflight(why);
        self.sink.closed(why);
        self.close();
    }

    /// Ends the session: the child is stopped gracefully.
    pub fn close(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }

    fn on_upstream(&self, mut msg: Message) {
        if let Ok(Kind::Response { id }) = msg.kind() {
            let Some(entry) = self.inflight().remove(&id) else {
                return; // answered already (timed out): never answer twice
            };
            if let Some(a) = entry.audit {
                a.finish(&self.cfg.name, Audit::outcome_of(&msg));
            }
            if entry.tool_list {
                if let (Some(f), Some(r)) = (&self.cfg.tool_filter, msg.result_mut()) {
                    filter_tool_list(f, r);
                }
            }
        }
        self.sink.deliver(msg);
    }

    fn fail_inflight(&self, why: &str) {
        let all: Vec<(Id, InFlight)> = self.inflight().drain().collect();
        for (id, f) in all {
            if let Some(a) = f.audit {
                a.finish(&self.cfg.name, "lost");
            }
            self.sink.deliver(Message::error(
                Some(id),
                UPSTREAM_ERROR,
                format!("{why}; the request was lost"),
            ));
        }
    }

    fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<(Id, InFlight)> = {
            let mut map = self.inflight();
            let ids: Vec<Id> = map
                .iter()
                .filter(|(_, f)| f.deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| map.remove(&id).map(|f| (id, f)))
                .collect()
        };
        for (id, f) in expired {
            if let Some(a) = f.audit {
                a.finish(&self.cfg.name, "timeout");
            }
            let secs = self.cfg.request_timeout.as_secs_f64();
            let e = format!(
                "server {:?} did not answer {} within {secs}s",
                self.cfg.name, f.method
            );
            let params =
                serde_json::json!({"requestId": id.to_value(), "reason": "timed out in mcp-hub"});
            self.tx.send_detached(Message::notification(
                "notifications/cancelled",
                Some(params),
            ));
            self.sink
                .deliver(Message::error(Some(id), TIMEOUT_ERROR, e));
        }
    }

    async fn pump(self: Arc<Self>, mut child: Upstream, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let exited = loop {
            tokio::select! {
                st = crate::upstream::exited(&mut child.process) => break Some(st),
                m = child.rx.recv() => match m {
                    Some(m) => self.on_upstream(m),
                    None => break None,
                },
                _ = tick.tick() => self.sweep(),
                _ = &mut stop => {
                    self.sup.session_closed();
                    stop_child(&self.cfg.name, child).await;
                    self.sup.per_client_exited(None);
                    return;
                }
            }
        };
        let why = reap_child(&self.cfg.name, child, exited).await;
        tracing::warn!(mcp_server = %self.cfg.name, "per-client child {why}; ending its session");
        self.fail_inflight(&format!("server {:?}: the child {why}", self.cfg.name));
        self.sink.closed(&why);
        self.sup.session_closed();
        self.sup.per_client_exited(Some(why));
    }
}

/// `panicIfInvalid` for a per-client server: connect, initialize, stop.
pub async fn probe(cfg: &ServerConfig, sup: &Supervisor) -> Result<(), String> {
    let mut up = sup.start_per_client(cfg).await.map_err(|e| e.to_string())?;
    let init = Message::request(
        Id::Str("mcp-hub-probe".into()),
        "initialize",
        serde_json::json!({"protocolVersion": crate::session::LATEST_PROTOCOL, "capabilities": {},
                           "clientInfo": {"name": "mcp-hub", "version": env!("CARGO_PKG_VERSION")}}),
    );
    let outcome = async {
        up.tx
            .send(&init)
            .await
            .map_err(|_| "the upstream closed".to_string())?;
        loop {
            match up.recv().await {
                Some(m) if m.is_response() && m.id() == init.id() => {
                    return match m.0.get("error") {
                        Some(e) => Err(format!("initialize failed: {e}")),
                        None => Ok(()),
                    };
                }
                Some(_) => {}
                None => {
                    return Err(up
                        .last_error()
                        .unwrap_or_else(|| "the upstream closed".into()))
                }
            }
        }
    };
    let r = tokio::time::timeout(cfg.init_timeout, outcome)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "did not answer initialize within {}s",
                cfg.init_timeout.as_secs()
            ))
        });
    stop_child(&cfg.name, up).await;
    sup.per_client_exited(r.as_ref().err().cloned());
    r
}
