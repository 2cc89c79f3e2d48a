//! `shared` sessions: one upstream (a child, or a remote session) serves every
//! client of a server.
//!
//! The hub initializes the upstream once, with its own client info, and answers each
//! client's `initialize` from the cached result. Requests get hub-owned numeric ids
//! on the way up and their own ids back on the way down, so twenty clients can use
//! id 1 at once. The same goes for progress tokens (replaced by the upstream id of
//! the request that carries them), `notifications/cancelled` in both directions, and
//! server→client requests (sampling, elicitation), which go to the client
//! with the most recent request in flight: stdio gives no better hint. Notifications
//! that belong to no request (list_changed, logging) go to every client.
//!
//! One driver task per server owns the upstream: it starts it when the first client
//! arrives (or at boot when `start` is `eager`), restarts it after a crash with the
//! supervisor's backoff, stops it when idle, and fails every request in flight the
//! moment the child's stdout closes or the remote connection drops. A remote
//! upstream is also pinged every `pingInterval`; one that does not answer counts
//! as dead.

mod client;
mod route;

use super::{Audit, Downstream, SessionInfo, LATEST_PROTOCOL};
use crate::config::ServerConfig;
use crate::jsonrpc::{Id, Message};
use crate::supervisor::{reap_child, stop_child, State, Supervisor};
use crate::upstream::{Outbox, Upstream};
pub use client::Client;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Readiness of the upstream as clients see it.
#[derive(Clone, Debug, PartialEq)]
enum Ready {
    Idle,
    Starting,
    Up,
    /// Crashed; restarting after the backoff.
    Down(String),
    Failed(String),
    Stopped,
}

struct Pending {
    client: u64,
    orig: Id,
    progress: Option<Value>,
    tool_list: bool,
    method: String,
    deadline: Instant,
    audit: Option<Audit>,
}

struct Inner {
    clients: HashMap<u64, Arc<dyn Downstream>>,
    next_client: u64,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    by_client: HashMap<(u64, Id), u64>,
    /// Hub id toward a client → (client, the upstream's own id).
    server_reqs: HashMap<u64, (u64, Id)>,
    tx: Option<Outbox>,
    init_result: Option<Value>,
    last_session_end: Instant,
    /// The liveness ping in flight: its id and when it went out.
    ping: Option<(u64, Instant)>,
}

pub struct Shared {
    cfg: Arc<ServerConfig>,
    sup: Arc<Supervisor>,
    inner: Mutex<Inner>,
    wake: Notify,
    ready: watch::Sender<Ready>,
    stop: watch::Sender<bool>,
    /// Held true by `panicIfInvalid`'s start-up check.
    required: std::sync::atomic::AtomicBool,
    /// Why the driver was told to stop, for the errors its clients get.
    retired: Mutex<Option<String>>,
}

enum Outcome {
    Crashed(String),
    Idle,
    Stopped,
}

impl Shared {
    pub fn new(cfg: Arc<ServerConfig>, sup: Arc<Supervisor>) -> Arc<Shared> {
        Arc::new(Shared {
            cfg,
            sup,
            inner: Mutex::new(Inner {
                clients: HashMap::new(),
                next_client: 1,
                next_id: 1,
                pending: HashMap::new(),
                by_client: HashMap::new(),
                server_reqs: HashMap::new(),
                tx: None,
                init_result: None,
                last_session_end: Instant::now(),
                ping: None,
            }),
            wake: Notify::new(),
            ready: watch::Sender::new(Ready::Idle),
            stop: watch::Sender::new(false),
            required: std::sync::atomic::AtomicBool::new(false),
            retired: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn attach(self: &Arc<Self>, sink: Arc<dyn Downstream>, info: SessionInfo) -> Client {
        let id = {
            let mut i = self.lock();
            let id = i.next_client;
            i.next_client += 1;
            i.clients.insert(id, sink);
            id
        };
        self.sup.session_opened();
        self.wake.notify_one();
        Client {
            id,
            shared: self.clone(),
            info: Arc::new(info),
        }
    }

    /// Starts the driver task. It runs until [`Shared::shutdown`].
    pub fn spawn_driver(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run().await })
    }

    /// Stops the upstream gracefully and ends the driver: requests in flight get
    /// an error naming `why`, and every client session ends (its client gets 404
    /// and initializes again, reaching whatever replaced this server).
    pub fn retire(&self, why: &str) {
        if let Ok(mut r) = self.retired.lock() {
            r.get_or_insert_with(|| why.to_string());
        }
        self.stop.send_replace(true);
    }

    fn retired_reason(&self) -> String {
        self.retired
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "the hub is shutting down".into())
    }

    /// The driver's last act: fail what is in flight and end every session.
    fn finish(&self) {
        let why = self.retired_reason();
        self.fail_all(&why);
        let sinks: Vec<_> = self.lock().clients.drain().map(|(_, s)| s).collect();
        for s in sinks {
            s.closed(&why);
        }
        self.ready.send_replace(Ready::Stopped);
        self.sup.stopped();
    }

    fn wanted(&self) -> bool {
        self.cfg.eager
            || self.required.load(std::sync::atomic::Ordering::Relaxed)
            || !self.lock().clients.is_empty()
    }

    /// Why new sessions are refused right now: the upstream crashed or is failing.
    pub fn unavailable(&self) -> Option<String> {
        match &*self.ready.borrow() {
            Ready::Down(e) => Some(format!(
                "server {:?} is restarting after: {e}",
                self.cfg.name
            )),
            Ready::Failed(e) => Some(format!("server {:?} is failing: {e}", self.cfg.name)),
            _ => None,
        }
    }

    /// Starts the upstream now and waits for the outcome of that first attempt.
    pub async fn start_and_wait(&self) -> Result<(), String> {
        self.required
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let r = self.ensure_ready().await;
        self.required
            .store(false, std::sync::atomic::Ordering::Relaxed);
        r
    }

    async fn run(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            while !self.wanted() {
                if !matches!(*self.ready.borrow(), Ready::Failed(_)) {
                    self.ready.send_replace(Ready::Idle);
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    break;
                }
            }
            if *stop.borrow() {
                self.finish();
                return;
            }
            self.ready.send_replace(Ready::Starting);
            match self.run_once(&mut stop).await {
                Outcome::Stopped => {
                    self.finish();
                    return;
                }
                Outcome::Idle => {
                    tracing::info!(mcp_server = %self.cfg.name, "stopped idle child");
                    self.sup.stopped();
                }
                Outcome::Crashed(err) => {
                    let msg = format!("server {:?}: {err}", self.cfg.name);
                    self.fail_all(&msg);
                    let delay = self.sup.crashed(err.clone());
                    let failed = self.sup.state() == State::Failed;
                    tracing::warn!(mcp_server = %self.cfg.name, "{err}; restarting in {}s{}", delay.as_secs(),
                        if failed { " (crash loop: marked failed)" } else { "" });
                    self.ready.send_replace(if failed {
                        Ready::Failed(err)
                    } else {
                        Ready::Down(err)
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// The hub's own `initialize` toward a shared upstream. It offers sampling and
    /// elicitation (routed to the client whose request is in flight) but not
    /// roots: roots are one client's local paths, and a shared server (e.g.
    /// server-filesystem, which swaps its allowed directories for the client's
    /// roots) must not be repointed by whichever client connected first.
    fn init_params(&self) -> Value {
        json!({
            "protocolVersion": LATEST_PROTOCOL,
            "capabilities": {"sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "mcp-hub", "version": env!("CARGO_PKG_VERSION")}
        })
    }

    async fn run_once(&self, stop: &mut watch::Receiver<bool>) -> Outcome {
        let mut child = match self.sup.start_shared(&self.cfg).await {
            Ok(c) => c,
            Err(e) => return Outcome::Crashed(e.to_string()),
        };
        match child.pid() {
            Some(pid) => tracing::info!(mcp_server = %self.cfg.name, pid, "started"),
            None => {
                tracing::info!(mcp_server = %self.cfg.name, "connecting to {} upstream", self.cfg.upstream.kind())
            }
        }
        let init_id = {
            let mut i = self.lock();
            i.next_id += 1;
            i.next_id - 1
        };
        let _ = child
            .tx
            .send(&Message::request(
                init_id.into(),
                "initialize",
                self.init_params(),
            ))
            .await;
        let deadline = tokio::time::Instant::now() + self.cfg.init_timeout;
        let result = loop {
            tokio::select! {
                st = crate::upstream::exited(&mut child.process) => return self.reap(child, Some(st)).await,
                m = child.rx.recv() => match m {
                    None => return self.reap(child, None).await,
                    Some(m) if m.is_response() && m.id().and_then(|i| i.as_u64()) == Some(init_id) => {
                        if let Some(err) = m.0.get("error") {
                            stop_child(&self.cfg.name, child).await;
                            return Outcome::Crashed(format!("initialize failed: {err}"));
                        }
                        break m.result().cloned().unwrap_or(Value::Null);
                    }
                    Some(other) => self.on_upstream(other, &child.tx),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    stop_child(&self.cfg.name, child).await;
                    return Outcome::Crashed(format!("did not answer initialize within {}s", self.cfg.init_timeout.as_secs()));
                }
                _ = stop.changed() => {
                    stop_child(&self.cfg.name, child).await;
                    return Outcome::Stopped;
                }
            }
        };
        let _ = child
            .tx
            .send(&Message::notification("notifications/initialized", None))
            .await;
        {
            let mut i = self.lock();
            i.init_result = Some(result);
            i.tx = Some(child.tx.clone());
        }
        self.sup.ready();
        self.ready.send_replace(Ready::Up);
        tracing::info!(mcp_server = %self.cfg.name, "ready");

        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut next_ping = self.cfg.ping_interval.map(|d| Instant::now() + d);
        self.lock().ping = None;
        let exited = loop {
            tokio::select! {
                // A grandchild may hold stdout open after the server died: watch both.
                st = crate::upstream::exited(&mut child.process) => break Some(st),
                m = child.rx.recv() => match m {
                    Some(m) => self.on_upstream(m, &child.tx),
                    None => break None,
                },
                _ = tick.tick() => {
                    self.sweep_deadlines();
                    if let (Some(at), Some(every)) = (next_ping, self.cfg.ping_interval) {
                        if Instant::now() >= at {
                            next_ping = Some(Instant::now() + every);
                            if let Some(why) = self.ping(&child.tx, every) {
                                self.lock().tx = None;
                                stop_child(&self.cfg.name, child).await;
                                return Outcome::Crashed(why);
                            }
                        }
                    }
                    if self.idle_expired() {
                        self.lock().tx = None;
                        stop_child(&self.cfg.name, child).await;
                        return Outcome::Idle;
                    }
                }
                _ = stop.changed() => {
                    self.lock().tx = None;
                    stop_child(&self.cfg.name, child).await;
                    return Outcome::Stopped;
                }
            }
        };
        self.lock().tx = None;
        self.reap(child, exited).await
    }

    /// The child exited or closed its stdout: describe why, and make sure nothing
    /// of its process group is left.
    async fn reap(
        &self,
        child: Upstream,
        exited: Option<std::io::Result<std::process::ExitStatus>>,
    ) -> Outcome {
        Outcome::Crashed(reap_child(&self.cfg.name, child, exited).await)
    }

    /// Sends a liveness ping, or reports the previous one unanswered after `every`.
    fn ping(&self, tx: &Outbox, every: Duration) -> Option<String> {
        let mut i = self.lock();
        if let Some((_, sent)) = i.ping {
            return Some(format!(
                "did not answer an MCP ping within {}s",
                sent.elapsed().min(every).as_secs()
            ));
        }
        let id = i.next_id;
        i.next_id += 1;
        i.ping = Some((id, Instant::now()));
        drop(i);
        tx.send_detached(Message::request(id.into(), "ping", json!({})));
        None
    }

    fn idle_expired(&self) -> bool {
        let Some(idle) = self.cfg.idle_timeout else {
            return false;
        };
        let i = self.lock();
        !self.cfg.eager && i.clients.is_empty() && i.last_session_end.elapsed() >= idle
    }

    /// Waits until the upstream is initialized, starting it if needed. If the start
    /// attempt it waited for fails, says why at once rather than at the deadline.
    async fn ensure_ready(&self) -> Result<(), String> {
        if *self.ready.borrow() == Ready::Up {
            return Ok(());
        }
        let mut rx = self.ready.subscribe();
        // The driver gives up on initialize at init_timeout; leave it room to say why.
        let deadline = tokio::time::Instant::now() + self.cfg.init_timeout + Duration::from_secs(5);
        let mut saw_attempt = false;
        loop {
            match &*rx.borrow_and_update() {
                Ready::Up => return Ok(()),
                Ready::Failed(e) => {
                    return Err(format!("server {:?} is failing: {e}", self.cfg.name))
                }
                Ready::Down(e) if saw_attempt => {
                    return Err(format!("server {:?} failed to start: {e}", self.cfg.name))
                }
                Ready::Stopped => return Err(format!("server {:?} is stopped", self.cfg.name)),
                Ready::Idle | Ready::Starting => saw_attempt = true,
                Ready::Down(_) => {}
            }
            self.wake.notify_one();
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(format!(
                    "server {:?} did not become ready within {}s",
                    self.cfg.name,
                    self.cfg.init_timeout.as_secs()
                ));
            }
        }
    }
}
