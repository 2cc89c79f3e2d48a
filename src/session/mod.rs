//! Sessions: how a client's messages reach an upstream and back.
//!
//! Every server's traffic is routed by one [`router::Router`] over one
//! [`Link`] per upstream: a `shared` server has one link for all its clients
//! (the hub initializes it once, answers each client's `initialize` from the
//! cache, and rewrites ids so clients never see each other's traffic); a
//! `per-client` server has a link per client session, whose own `initialize`
//! goes through. Each client request is an exchange with its own reply stream
//! (`inflight`); traffic tied to no request goes to the session-wide
//! [`Downstream`]. Every request gets exactly one answer: the upstream's, or
//! an error when the upstream dies, times out, is cancelled or cannot start.

pub mod ask;
mod audit;
mod caller;
mod client;
pub mod hold;
pub mod inflight;
pub mod outbound;
pub mod router;
pub mod stateless;
use crate::config::clients::Client;
use crate::config::ServerConfig;
use crate::jsonrpc::Message;
use crate::supervisor::Supervisor;
use crate::upstream::link::{self, Handler, Link};
use crate::upstream::{Outbox, Received};
pub use audit::Audit;
pub use caller::{Full, Peer, Secret, SessionInfo, Token, TokenCounts, TokenSlot};
use client::LegacyClient;
pub use client::Session;
use router::{Effect, Router};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
// tokio's clock, so tests can pause it.
use tokio::time::Instant;

/// A 128-bit random id in hex, from the OS's CSPRNG: for sessions, and for
/// the handles of held calls.
pub fn new_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source is available");
    let mut s = String::with_capacity(32);
    for x in b {
        s.push(HEX[(x >> 4) as usize] as char);
        s.push(HEX[(x & 15) as usize] as char);
    }
    s
}

/// `msg` without the modern keys of its `_meta`, for a 2025 upstream
/// (`mcp::strip_modern_meta`); a large message's off the async workers, as
/// its parse was.
pub async fn strip_modern(mut msg: Message) -> Message {
    if msg.params_raw().map_or(0, |p| p.get().len()) <= crate::offload::INLINE {
        crate::mcp::strip_modern_meta(&mut msg);
        return msg;
    }
    crate::offload::run(move || {
        crate::mcp::strip_modern_meta(&mut msg);
        msg
    })
    .await
}

/// Whether a session opened as `caller` may stay under `cfg`'s tokens and
/// the reloaded `clients`: a named client's session stays while a client of
/// its name still holds its token (and takes that client's new rules).
fn still_valid(cfg: &ServerConfig, clients: &[Arc<Client>], caller: &mut router::Caller) -> bool {
    if let Some(old) = &caller.client {
        // Signed in through the identity provider: not among `clients`; its
        // token is checked again on every request.
        if old.subject.is_some() {
            return true;
        }
        let now = std::time::SystemTime::now();
        let held = caller
            .secret
            .as_ref()
            .map(|s| crate::config::clients::sha256(&s.0));
        let Some(new) = clients
            .iter()
            .find(|c| c.name == old.name && held.is_some_and(|h| c.holds(&h, now)))
        else {
            return false;
        };
        caller.client = Some(new.clone());
        return true;
    }
    cfg.auth_tokens.is_empty()
        || caller
            .secret
            .as_ref()
            .is_some_and(|s| cfg.auth_tokens.iter().any(|t| *t == *s.0))
}

/// The tool a `tools/call` names: read on every call for the metrics, so
/// found once per message (a large one's off the async workers).
fn tool_name(msg: &Message) -> Option<std::borrow::Cow<'_, str>> {
    msg.param::<String>("name").map(std::borrow::Cow::Owned)
}

/// Where a session sends messages for its client.
pub trait Downstream: Send + Sync {
    fn deliver(&self, msg: Message);
    /// The session's upstream is gone for good; the client must re-initialize.
    fn closed(&self, reason: &str);
}

/// One server's routing: the link's handler, shared by every session on it.
pub struct Core {
    router: Mutex<Router>,
    /// The config in force (a reload updates the parts that apply in place).
    cfg: Mutex<Arc<ServerConfig>>,
    /// When a client last left (shared) or last sent a request (per-client).
    last_used: Mutex<Instant>,
    shared: bool,
    /// Stateless exchanges under way: they keep a lazily started upstream
    /// wanted and busy as a session would, without being one.
    stateless: std::sync::atomic::AtomicUsize,
    /// Counts the upstream's `notifications/tools/list_changed`: a view that
    /// caches the tool list (the OpenAPI facade) knows it is stale, whether
    /// or not a session of its own heard it.
    tool_lists: std::sync::atomic::AtomicU64,
    /// The server's metrics, resolved once.
    meter: Arc<crate::metrics::ServerMetrics>,
}

impl Core {
    fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cfg(&self) -> Arc<ServerConfig> {
        self.cfg
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The metrics of one client request, started as it arrives.
    fn start_call(&self, msg: &Message, info: &SessionInfo) -> crate::metrics::Call {
        let method = msg.method().unwrap_or("");
        let tool = (method == "tools/call").then(|| tool_name(msg)).flatten();
        if let Some(c) = &info.client {
            crate::metrics::global().client(&c.label, crate::metrics::ClientOutcome::Admitted);
        }
        crate::metrics::Call::start(
            &self.meter,
            method,
            tool.as_deref(),
            info.transport,
            crate::metrics::Era::of(info.modern),
        )
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }

    /// Carries out effects from code that cannot wait: upstream-bound ones are
    /// sent from their own task.
    fn carry_detached(&self, fx: Vec<Effect>, tx: &Outbox) {
        for e in fx {
            if let Some(m) = e.deliver() {
                tx.send_detached(m);
            }
        }
    }
}

impl Handler for Core {
    fn received(&self, r: Received, tx: &Outbox) {
        if let Received::Msg(m) = &r {
            if m.method() == Some("notifications/tools/list_changed") {
                self.tool_lists
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let fx = match r {
            Received::Msg(m) => self.router().from_upstream(m),
            Received::OnRequest { msg, request } => self.router().from_upstream_on(msg, &request),
            Received::Garbage { id: Some(id), why } => self.router().unparseable(&id, &why),
            Received::Garbage { id: None, .. } => vec![],
        };
        self.carry_detached(fx, tx);
    }

    fn up(&self, tx: &Outbox, modern: bool) {
        let fx = {
            let mut r = self.router();
            r.set_modern(modern);
            r.resubscribe()
        };
        self.carry_detached(fx, tx);
    }

    fn down(&self, why: &str) {
        let fx = self.router().fail_all(why);
        for e in fx {
            e.deliver();
        }
    }

    fn ended(&self, why: &str) {
        let sinks = self.router().sinks();
        for s in sinks {
            s.closed(why);
        }
    }

    fn tick(&self, now: Instant, tx: &Outbox) {
        let fx = {
            let mut r = self.router();
            if r.soonest_deadline().is_none_or(|d| d > now) {
                return;
            }
            r.expire(now)
        };
        self.carry_detached(fx, tx);
    }

    fn wanted(&self) -> bool {
        self.stateless.load(std::sync::atomic::Ordering::Relaxed) > 0 || self.router().clients() > 0
    }

    fn idle_for(&self, now: Instant) -> Option<Duration> {
        let r = self.router();
        let busy = if self.shared {
            r.clients() > 0 || self.stateless.load(std::sync::atomic::Ordering::Relaxed) > 0
        } else {
            r.in_flight() > 0
        };
        drop(r);
        if busy {
            return None;
        }
        let last = self.last_used.lock().map(|t| *t).unwrap_or(now);
        Some(now.saturating_duration_since(last))
    }

    fn ping(&self, now: Instant, every: Duration) -> Result<Message, String> {
        self.router().ping(now, every)
    }
}

/// An upstream and its routing: one for a shared server, one per session of
/// a per-client server.
pub struct Upstream {
    pub core: Arc<Core>,
    pub link: Arc<Link>,
}

impl Upstream {
    /// Creates the routing and starts the link's driver.
    pub fn spawn(
        cfg: Arc<ServerConfig>,
        sup: Arc<Supervisor>,
        kind: link::Kind,
    ) -> (Arc<Upstream>, tokio::task::JoinHandle<()>) {
        Self::spawn_with(cfg, sup, kind, None)
    }

    /// Like [`Upstream::spawn`], reaching the upstream through `connect`.
    pub fn spawn_with(
        cfg: Arc<ServerConfig>,
        sup: Arc<Supervisor>,
        kind: link::Kind,
        connect: Option<link::Connector>,
    ) -> (Arc<Upstream>, tokio::task::JoinHandle<()>) {
        let shared = kind == link::Kind::Shared;
        let mut router = Router::with_meter(
            &cfg.name,
            shared,
            cfg.tool_filter.clone(),
            cfg.request_timeout,
            crate::metrics::global().server(&cfg.name),
        );
        router.set_upstream_kind(crate::metrics::UpstreamKind::of(&cfg.upstream));
        let core = Arc::new(Core {
            meter: router.meter().clone(),
            router: Mutex::new(router),
            cfg: Mutex::new(cfg.clone()),
            last_used: Mutex::new(Instant::now()),
            shared,
            stateless: Default::default(),
            tool_lists: Default::default(),
        });
        let (link, task) = Link::spawn(cfg, sup, kind, core.clone(), connect);
        (Arc::new(Upstream { core, link }), task)
    }

    /// A reload changed settings that apply in place (tool filter, timeout,
    /// audit logging, tokens). Sessions opened with a token that is no longer
    /// valid end now: their streams close and their clients must come back
    /// with a valid one.
    pub fn update(&self, cfg: Arc<ServerConfig>, clients: &[Arc<Client>]) {
        let (revoked, fx) = {
            let mut r = self.core.router();
            r.set_policy(cfg.tool_filter.clone(), cfg.request_timeout);
            let gone = r.clients_where(|caller| !still_valid(&cfg, clients, caller));
            let mut fx = Vec::new();
            let mut sinks = Vec::new();
            for (c, sink) in gone {
                fx.extend(r.detach(c));
                sinks.push(sink);
            }
            (sinks, fx)
        };
        if let Ok(mut c) = self.core.cfg.lock() {
            *c = cfg.clone();
        }
        if revoked.is_empty() {
            return;
        }
        tracing::info!(mcp_server = %cfg.name, "ending {} session(s) whose token a reload revoked", revoked.len());
        if let Some(tx) = self.link.outbox() {
            self.core.carry_detached(fx, &tx);
        }
        for s in revoked {
            s.closed("its token was revoked by a config reload");
        }
        if !self.core.shared {
            self.link.retire("its token was revoked by a config reload");
        }
    }

    pub fn attach(
        self: &Arc<Self>,
        sink: Arc<dyn Downstream>,
        info: SessionInfo,
        sup: &Arc<Supervisor>,
    ) -> Session {
        let client = self
            .core
            .router()
            .attach_as(sink, router::Caller::of(&info), info.modern);
        sup.session_opened();
        // Era: a modern client's transient session (a per-client upstream or
        // a listen stream) is no session the client sees, so it is not one
        // in the session metrics.
        if !info.modern {
            self.core.meter.session_opened(info.transport);
        }
        self.core.touch();
        self.link.wake();
        Session {
            opened: Instant::now(),
            up: self.clone(),
            client,
            info: Arc::new(info),
            sup: sup.clone(),
            closed: std::sync::atomic::AtomicBool::new(false),
            legacy: Mutex::new(LegacyClient::default()),
        }
    }

    /// Carries out effects; upstream-bound messages are sent here, bounded by
    /// the request timeout so a child that stopped reading its stdin cannot
    /// hold a caller past its deadline.
    async fn carry(&self, fx: Vec<Effect>, cfg: &ServerConfig) {
        for e in fx {
            let Some(m) = e.deliver() else { continue };
            let up_id = m.is_request().then(|| m.id().cloned()).flatten();
            let sent = match self.link.outbox() {
                Some(tx) => tokio::time::timeout(cfg.request_timeout, tx.send(m))
                    .await
                    .map_err(|_| "did not read its input in time")
                    .and_then(|r| r.map_err(|_| "went away before the request was sent")),
                None => Err("is restarting; try again"),
            };
            if let (Err(why), Some(id)) = (sent, up_id) {
                let why = format!("server {:?} {why}", cfg.name);
                let fx = self.core.router().fail_one(&id, &why);
                for e in fx {
                    e.deliver();
                }
            }
        }
    }

    /// How many times the upstream said its tool list changed.
    pub fn tool_list_generation(&self) -> u64 {
        self.core
            .tool_lists
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Carries out what a client that went away leaves behind, from code
    /// that cannot wait: client-bound effects (answers to requests still in
    /// flight) are delivered whether or not the upstream is there; what goes
    /// up (cancellations, refusals) is sent from its own task.
    fn carry_dropped(&self, fx: Vec<Effect>) {
        let tx = self.link.outbox();
        for e in fx {
            if let (Some(m), Some(tx)) = (e.deliver(), &tx) {
                tx.send_detached(m);
            }
        }
    }

    /// Requests in flight: an idle per-client upstream may be evicted.
    /// A request that only waits for its client's answer to a question (a
    /// held 2026-07-28 call) does not count: the upstream is idle capacity
    /// that another client may take, and the held call gets an error then.
    pub fn busy(&self) -> bool {
        self.core.router().working()
    }

    pub fn last_used(&self) -> Instant {
        self.core
            .last_used
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }
}

pub use crate::mcp::{LATEST_LEGACY as LATEST_PROTOCOL, LEGACY_VERSIONS as PROTOCOL_VERSIONS};
pub use ask::{ask, AskError, OnServerRequest, Unmetered};

#[cfg(test)]
mod tests;
