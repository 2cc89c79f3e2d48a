//! One upstream's lifecycle: connect → handshake → ready → liveness → idle
//! stop → backoff → failed, as one [`LinkState`] on a `watch` that `/status`
//! and waiting requests read.
//!
//! A shared server has one link for its whole life, restarted after a crash
//! with the supervisor's backoff. A per-client session has its own link that
//! is not restarted: when its upstream dies the session ends. `failed` (a
//! crash loop) is not terminal: the link keeps retrying at the longest
//! backoff, and a new request or a reload asks for an attempt at once, so a
//! recovered cause (a restarted database, a fixed binary) is picked up.
//!
//! The handshake (`initialize` toward a shared upstream) is one function,
//! [`Link::handshake`]; routing is the [`Handler`]'s business, so this module
//! knows nothing of clients.

use super::{Outbox, Received, Upstream};
use crate::config::ServerConfig;
use crate::jsonrpc::Message;
use crate::metrics::RestartReason;
use crate::supervisor::{reap_child, stop_child, stop_child_within, Supervisor, STOP_GRACE};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
// tokio's clock, so tests can pause it.
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How often the driver expires deadlines and checks liveness and idleness.
const TICK: Duration = Duration::from_millis(250);

/// Where an upstream is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not running: nobody needs it yet, or it stopped when idle.
    Idle,
    Starting,
    Ready,
    /// Crashed or failed to start; the next attempt follows the backoff.
    Backoff(String),
    /// A crash loop; still retried at the longest backoff.
    Failed(String),
    /// Retired (reload, shutdown) or, per-client, ended.
    Stopped,
}

impl LinkState {
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkState::Idle | LinkState::Stopped => "stopped",
            LinkState::Starting => "starting",
            LinkState::Ready => "ready",
            LinkState::Backoff(_) => "backoff",
            LinkState::Failed(_) => "failed",
        }
    }
}

/// Who an upstream is, in its own era's words.
#[derive(Clone, Debug)]
pub enum UpstreamInfo {
    /// Its answer to `initialize`.
    Legacy(Box<RawValue>),
    /// Its `server/discover` result.
    Modern(Box<RawValue>),
}

impl UpstreamInfo {
    /// An `initialize` result for a 2025 client.
    pub fn init_result(&self) -> Box<RawValue> {
        match self {
            UpstreamInfo::Legacy(r) => r.clone(),
            UpstreamInfo::Modern(d) => crate::mcp::init_from_discover(d),
        }
    }
}

/// What the routing layer does with a link's traffic and events.
pub trait Handler: Send + Sync + 'static {
    /// Every message (or unparseable line) from the upstream, in order.
    fn received(&self, r: Received, tx: &Outbox);
    /// A connection is ready (after the handshake); `modern`: it speaks 2026-07-28.
    fn up(&self, tx: &Outbox, modern: bool);
    /// The connection is gone; what is in flight fails with `why`.
    fn down(&self, why: &str);
    /// The link ended for good; its clients' sessions end with `why`.
    fn ended(&self, why: &str);
    /// Expire deadlines.
    fn tick(&self, now: Instant, tx: &Outbox);
    /// Whether the upstream should run (clients attached, …).
    fn wanted(&self) -> bool;
    /// How long the upstream has been unused; `None` while in use.
    fn idle_for(&self, now: Instant) -> Option<Duration>;
    /// A liveness ping to send, or why the last one counts as unanswered.
    fn ping(&self, now: Instant, every: Duration) -> Result<Message, String>;
}

/// How a link behaves: a shared server's, or one client's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Restarted after a crash; the hub does the handshake once for all.
    Shared,
    /// Ends with its upstream; the client's own initialize goes through.
    PerClient,
}

enum Outcome {
    /// What happened, and the cause as `mcphub_upstream_restarts_total` counts it.
    Crashed(String, RestartReason),
    Idle,
    Stopped,
}

/// How a link reaches its upstream: the configured command or URL, or (in
/// tests) an in-memory pair.
pub type Connector = Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, Result<Upstream, super::ConnectError>>
        + Send
        + Sync,
>;

pub struct Link {
    cfg: Arc<ServerConfig>,
    connect: Option<Connector>,
    sup: Arc<Supervisor>,
    kind: Kind,
    handler: Arc<dyn Handler>,
    state: watch::Sender<LinkState>,
    tx: Mutex<Option<Outbox>>,
    info: Mutex<Option<UpstreamInfo>>,
    wake: Notify,
    /// Set by a request or a reload: skip the rest of the backoff.
    retry_now: AtomicBool,
    stop: watch::Sender<bool>,
    retired: Mutex<Option<String>>,
    /// How long each step of the graceful stop may take (shorter at shutdown).
    grace: Mutex<Duration>,
    /// Held by `panicIfInvalid`'s start-up check.
    required: AtomicBool,
}

impl Link {
    pub fn spawn(
        cfg: Arc<ServerConfig>,
        sup: Arc<Supervisor>,
        kind: Kind,
        handler: Arc<dyn Handler>,
        connect: Option<Connector>,
    ) -> (Arc<Link>, tokio::task::JoinHandle<()>) {
        let link = Arc::new(Link {
            cfg,
            connect,
            sup,
            kind,
            handler,
            state: watch::Sender::new(LinkState::Idle),
            tx: Mutex::new(None),
            info: Mutex::new(None),
            wake: Notify::new(),
            retry_now: AtomicBool::new(false),
            stop: watch::Sender::new(false),
            retired: Mutex::new(None),
            grace: Mutex::new(STOP_GRACE),
            required: AtomicBool::new(false),
        });
        let me = link.clone();
        let task = tokio::spawn(async move { me.run().await });
        (link, task)
    }

    pub fn cfg(&self) -> &Arc<ServerConfig> {
        &self.cfg
    }

    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Follows the state as it changes.
    pub fn watch_state(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    pub fn outbox(&self) -> Option<Outbox> {
        self.tx.lock().ok().and_then(|t| t.clone())
    }

    /// Who the upstream is, from the last handshake (shared links).
    pub fn info(&self) -> Option<UpstreamInfo> {
        self.info.lock().ok().and_then(|i| i.clone())
    }

    /// What a 2025 client's `initialize` is answered with: the upstream's own
    /// answer, or one made from its `server/discover` result.
    pub fn init_result(&self) -> Option<Box<RawValue>> {
        self.info().map(|i| i.init_result())
    }

    /// Whether the upstream speaks 2026-07-28.
    pub fn is_modern(&self) -> bool {
        matches!(self.info(), Some(UpstreamInfo::Modern(_)))
    }

    /// Something changed that may make the upstream wanted.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Try again now, whatever the backoff says (a request, a reload).
    pub fn retry_now(&self) {
        self.retry_now.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Stops the upstream gracefully and ends the link; its clients' sessions
    /// end with `why`.
    pub fn retire(&self, why: &str) {
        if let Ok(mut r) = self.retired.lock() {
            r.get_or_insert_with(|| why.to_string());
        }
        self.stop.send_replace(true);
    }

    /// [`Link::retire`], giving each step of the child's stop at most `grace`.
    pub fn retire_within(&self, why: &str, grace: Duration) {
        if let Ok(mut g) = self.grace.lock() {
            *g = grace.min(STOP_GRACE);
        }
        self.retire(why);
    }

    fn retired_reason(&self) -> String {
        self.retired
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "the hub is shutting down".into())
    }

    fn wanted(&self) -> bool {
        self.kind == Kind::PerClient
            || self.cfg.eager
            || self.required.load(Ordering::Relaxed)
            || self.handler.wanted()
    }

    /// Why new sessions are refused right now (the upstream is between restarts).
    pub fn unavailable(&self) -> Option<String> {
        match &*self.state.borrow() {
            LinkState::Backoff(e) => Some(format!(
                "server {:?} is restarting after: {e}",
                self.cfg.name
            )),
            _ => None,
        }
    }

    /// Starts the upstream now and waits for the outcome of that attempt.
    pub async fn start_and_wait(&self) -> Result<(), String> {
        self.required.store(true, Ordering::Relaxed);
        let r = self.ready().await;
        self.required.store(false, Ordering::Relaxed);
        r
    }

    /// Waits until the upstream is ready, starting it if needed; a failed
    /// upstream gets an attempt at once. If the attempt it waited for fails,
    /// says why at once rather than at the deadline.
    pub async fn ready(&self) -> Result<(), String> {
        if *self.state.borrow() == LinkState::Ready {
            return Ok(());
        }
        let mut rx = self.state.subscribe();
        let deadline = tokio::time::Instant::now() + self.cfg.init_timeout + Duration::from_secs(5);
        let mut saw_attempt = false;
        if matches!(*rx.borrow(), LinkState::Failed(_)) {
            self.retry_now();
        }
        loop {
            match &*rx.borrow_and_update() {
                LinkState::Ready => return Ok(()),
                LinkState::Failed(e) if saw_attempt => {
                    return Err(format!("server {:?} is failing: {e}", self.cfg.name))
                }
                LinkState::Backoff(e) if saw_attempt => {
                    return Err(format!("server {:?} failed to start: {e}", self.cfg.name))
                }
                LinkState::Stopped => {
                    return Err(format!(
                        "server {:?}: {}",
                        self.cfg.name,
                        self.retired_reason()
                    ))
                }
                LinkState::Idle | LinkState::Starting => saw_attempt = true,
                LinkState::Backoff(_) | LinkState::Failed(_) => {}
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

    async fn run(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            while !self.wanted() && !*stop.borrow() {
                if !matches!(*self.state.borrow(), LinkState::Failed(_)) {
                    self.state.send_replace(LinkState::Idle);
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
            if *stop.borrow() {
                return self.finish();
            }
            self.retry_now.store(false, Ordering::Relaxed);
            self.state.send_replace(LinkState::Starting);
            match self.run_once(&mut stop).await {
                Outcome::Stopped => {
                    self.sup.stopped();
                    return self.finish();
                }
                Outcome::Idle => {
                    tracing::info!(mcp_server = %self.cfg.name, "stopped idle upstream");
                    self.sup.stopped();
                    if self.kind == Kind::PerClient {
                        self.retire(&format!(
                            "server {:?}: the per-client upstream stopped after its idleTimeout",
                            self.cfg.name
                        ));
                        return self.finish();
                    }
                }
                Outcome::Crashed(err, reason) => {
                    let msg = format!("server {:?}: {err}", self.cfg.name);
                    self.handler.down(&msg);
                    let (delay, failed) = self.sup.crashed(err.clone());
                    if self.kind == Kind::PerClient {
                        tracing::warn!(mcp_server = %self.cfg.name, "per-client upstream {err}; ending its session");
                        self.retire(&err);
                        return self.finish();
                    }
                    // Counted where a restart follows: a per-client session just ends.
                    crate::metrics::global()
                        .server(&self.cfg.name)
                        .restarted(reason);
                    tracing::warn!(mcp_server = %self.cfg.name, "{err}; restarting in {}s{}", delay.as_secs(),
                        if failed { " (crash loop: marked failed, retried on the next request)" } else { "" });
                    self.state.send_replace(if failed {
                        LinkState::Failed(err)
                    } else {
                        LinkState::Backoff(err)
                    });
                    let sleep = tokio::time::sleep(delay);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            _ = stop.changed() => break,
                            _ = self.wake.notified() => {
                                if self.retry_now.load(Ordering::Relaxed) { break }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The link's last act: fail what is in flight and end every session.
    fn finish(&self) {
        let why = self.retired_reason();
        self.handler.down(&why);
        self.handler.ended(&why);
        self.state.send_replace(LinkState::Stopped);
    }

    /// The hub's own `initialize` toward a shared upstream. It offers sampling and
    /// elicitation (routed to a client only when attributable) but not roots:
    /// roots are one client's local paths, and a shared server (e.g.
    /// server-filesystem, which swaps its allowed directories for the client's
    /// roots) must not be repointed by whichever client connected first.
    fn init_params() -> Value {
        crate::mcp::hub_initialize(json!({"sampling": {}, "elicitation": {}}))
    }

    /// Sends one request of the hub's own and waits for its answer; what
    /// arrives meanwhile is routed as usual. `Err(Ok(_))`: the link should end
    /// that way; `Err(Err(_))`: the child went away.
    async fn ask(
        &self,
        child: &mut Upstream,
        stop: &mut watch::Receiver<bool>,
        request: Message,
        within: Duration,
    ) -> Result<Message, Result<Outcome, Option<std::io::Result<std::process::ExitStatus>>>> {
        let id = request.id().cloned();
        let what = request.method().unwrap_or("").to_string();
        let _ = child.tx.send(request).await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            tokio::select! {
                st = super::exited(&mut child.process) => return Err(Err(Some(st))),
                m = child.rx.recv() => match m {
                    None => return Err(Err(None)),
                    Some(Received::Msg(m) | Received::OnRequest { msg: m, .. })
                        if m.is_response() && m.id() == id.as_ref() =>
                    {
                        return Ok(m)
                    }
                    Some(other) => self.handler.received(other, &child.tx),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Ok(Outcome::Crashed(format!(
                        "did not answer {what} within {}s",
                        within.as_secs()
                    ), RestartReason::Connect)));
                }
                _ = stop.changed() => return Err(Ok(Outcome::Stopped)),
            }
        }
    }

    /// The one handshake: which era the upstream speaks, and who it is.
    /// `auto` probes `server/discover` (the 2026-07-28 way to ask) and falls
    /// back to `initialize` on anything but a modern answer; a legacy SSE
    /// upstream is asked nothing but `initialize`.
    async fn negotiate(
        &self,
        child: &mut Upstream,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<UpstreamInfo, Result<Outcome, Option<std::io::Result<std::process::ExitStatus>>>>
    {
        use crate::config::Protocol;
        let probe = self.cfg.protocol != Protocol::Legacy
            && !matches!(self.cfg.upstream, crate::config::Upstream::Sse { .. });
        if probe {
            let discover = Message::request(
                crate::jsonrpc::Id::Str("mcp-hub-discover".into()),
                "server/discover",
                json!({"_meta": crate::mcp::hub_meta(&json!({"sampling": {}, "elicitation": {}}), None, None)}),
            );
            // A legacy server answers an unknown method at once; one that says
            // nothing is given a short while, not the whole initTimeout.
            let within = self.cfg.init_timeout.min(Duration::from_secs(10));
            match self.ask(child, stop, discover, within).await {
                Ok(m) if crate::mcp::is_modern_discover(&m) => {
                    tracing::info!(mcp_server = %self.cfg.name, "upstream speaks 2026-07-28");
                    return Ok(UpstreamInfo::Modern(
                        m.result_raw()
                            .map(|r| r.to_owned())
                            .unwrap_or_else(|| RawValue::NULL.to_owned()),
                    ));
                }
                Ok(m) if self.cfg.protocol == Protocol::Modern => {
                    return Err(Ok(Outcome::Crashed(
                        format!(
                            "\"protocol\": \"2026-07-28\" but server/discover answered {}",
                            String::from_utf8_lossy(&m.to_bytes())
                        ),
                        RestartReason::Connect,
                    )))
                }
                Ok(_) => {}
                Err(Err(e)) => return Err(Err(e)),
                Err(Ok(Outcome::Crashed(why, r))) if self.cfg.protocol == Protocol::Modern => {
                    return Err(Ok(Outcome::Crashed(why, r)))
                }
                Err(Ok(Outcome::Crashed(..))) => {}
                Err(Ok(o)) => return Err(Ok(o)),
            }
        }
        let init = Message::request(
            crate::jsonrpc::Id::Str("mcp-hub-initialize".into()),
            "initialize",
            Self::init_params(),
        );
        let m = self.ask(child, stop, init, self.cfg.init_timeout).await?;
        if let Some(err) = m.error_raw() {
            return Err(Ok(Outcome::Crashed(
                format!("initialize failed: {}", err.get()),
                RestartReason::Connect,
            )));
        }
        let _ = child
            .tx
            .send(Message::notification("notifications/initialized", None))
            .await;
        Ok(UpstreamInfo::Legacy(
            m.result_raw()
                .map(|r| r.to_owned())
                .unwrap_or_else(|| RawValue::NULL.to_owned()),
        ))
    }

    /// Keeps a failed child's last stderr lines for `/status`, once its
    /// reader is done, without holding up the failure of what is in flight.
    fn keep_stderr(&self, tail: Option<super::StderrTail>) {
        let sup = self.sup.clone();
        tokio::spawn(async move { sup.failed_with(tail).await });
    }

    async fn run_once(&self, stop: &mut watch::Receiver<bool>) -> Outcome {
        let started = match &self.connect {
            Some(c) => self.sup.record_start(c().await),
            None => self.sup.start(&self.cfg).await,
        };
        let mut child = match started {
            Ok(c) => c,
            Err(e) => return Outcome::Crashed(e.to_string(), RestartReason::Connect),
        };
        match child.pid() {
            Some(pid) => tracing::info!(mcp_server = %self.cfg.name, pid, "started"),
            None => {
                tracing::info!(mcp_server = %self.cfg.name, "connecting to {} upstream", self.cfg.upstream.kind())
            }
        }
        if self.kind == Kind::Shared {
            match self.negotiate(&mut child, stop).await {
                Ok(info) => {
                    if let Ok(mut i) = self.info.lock() {
                        *i = Some(info);
                    }
                }
                Err(Ok(outcome)) => {
                    let tail = child.stderr_tail();
                    stop_child(&self.cfg.name, child).await;
                    self.keep_stderr(tail);
                    return outcome;
                }
                Err(Err(exited)) => {
                    let tail = child.stderr_tail();
                    let (why, reason) = reap_child(&self.cfg.name, child, exited).await;
                    self.keep_stderr(tail);
                    return Outcome::Crashed(why, reason);
                }
            }
        }
        if let Ok(mut t) = self.tx.lock() {
            *t = Some(child.tx.clone());
        }
        self.sup.ready();
        self.state.send_replace(LinkState::Ready);
        self.handler.up(&child.tx, self.is_modern());
        tracing::info!(mcp_server = %self.cfg.name, "ready");

        let mut tick = tokio::time::interval(TICK);
        let mut next_ping = self.cfg.ping_interval.map(|d| Instant::now() + d);
        let outcome = loop {
            tokio::select! {
                // A grandchild may hold stdout open after the server died: watch both.
                st = super::exited(&mut child.process) => break Err(Some(st)),
                m = child.rx.recv() => match m {
                    Some(r) => self.handler.received(r, &child.tx),
                    None => break Err(None),
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    self.handler.tick(now, &child.tx);
                    if let (Some(at), Some(every)) = (next_ping, self.cfg.ping_interval) {
                        if now >= at {
                            next_ping = Some(now + every);
                            match self.handler.ping(now, every) {
                                Ok(p) => child.tx.send_detached(p),
                                Err(why) => break Ok(Outcome::Crashed(why, RestartReason::Ping)),
                            }
                        }
                    }
                    let idle = self.cfg.idle_timeout.filter(|_| !self.cfg.eager);
                    if idle.is_some_and(|limit| self.handler.idle_for(now).is_some_and(|d| d >= limit)) {
                        break Ok(Outcome::Idle);
                    }
                }
                _ = stop.changed() => break Ok(Outcome::Stopped),
            }
        };
        if let Ok(mut t) = self.tx.lock() {
            *t = None;
        }
        match outcome {
            Ok(o) => {
                let grace = self.grace.lock().map(|g| *g).unwrap_or(STOP_GRACE);
                stop_child_within(&self.cfg.name, child, grace).await;
                o
            }
            Err(exited) => {
                let tail = child.stderr_tail();
                let (why, reason) = reap_child(&self.cfg.name, child, exited).await;
                self.keep_stderr(tail);
                Outcome::Crashed(why, reason)
            }
        }
    }
}
