//! The registry of configured servers and groups: what each route name leads to, its
//! supervisor (for `/status`), for `shared` servers the one driver that owns the
//! upstream, and for `per-client` servers their open sessions.
//!
//! The registry is a snapshot behind a lock: every request takes the current
//! one, and `reload` swaps in a new one built as a per-server diff. A server
//! whose config is unchanged keeps its upstream and sessions (a rotated token
//! alone changes nothing but the token check, from the very next request); a
//! changed or removed server is stopped and its sessions end (clients get 404
//! and initialize again); an added one appears. Groups ([`GroupEntry`]) are
//! diffed the same way: an unchanged group keeps its sessions, a changed or
//! removed one ends them.

use crate::config::{Config, GroupConfig, HubSettings, ServerConfig};
use crate::http::origin::Policy;
use crate::session::{Downstream, Session, SessionInfo, Upstream};
use crate::supervisor::Supervisor;
use crate::upstream::link::{Kind, LinkState};
use indexmap::IndexMap;
use serde_json::json;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

mod reload;
mod status;

use reload::build;
pub use reload::ReloadSummary;

pub struct Server {
    pub cfg: Arc<ServerConfig>,
    pub sup: Arc<Supervisor>,
    shared: Option<Arc<Upstream>>,
    /// Live per-client upstreams, for the `maxClients` cap, eviction and reload.
    clients: Arc<Mutex<Vec<Arc<Upstream>>>>,
}

impl Server {
    /// Stops the upstream and ends every session (the server was changed or removed).
    fn retire(&self, why: &str) {
        self.retire_within(why, crate::supervisor::STOP_GRACE);
    }

    /// [`Server::retire`] with each step of a child's stop bounded by `grace`.
    fn retire_within(&self, why: &str, grace: Duration) {
        if let Some(sh) = &self.shared {
            sh.link.retire_within(why, grace);
        }
        let clients: Vec<_> = self
            .clients
            .lock()
            .map(|mut c| c.drain(..).collect())
            .unwrap_or_default();
        for p in clients {
            p.link.retire_within(why, grace);
        }
    }

    /// The state `/status` shows: the shared link's, or for a per-client
    /// server "ready" while any of its upstreams is.
    pub fn state(&self) -> &'static str {
        if self.cfg.disabled {
            return "disabled";
        }
        match &self.shared {
            Some(sh) => sh.link.state().as_str(),
            None => {
                let any = self
                    .live_clients()
                    .iter()
                    .any(|p| p.link.state() == LinkState::Ready);
                if any {
                    "ready"
                } else {
                    "stopped"
                }
            }
        }
    }

    /// The upstream all clients share, for a request that needs no session
    /// (2026-07-28): refused as a session would be while it is disabled or
    /// between restarts. `None` for a per-client server.
    pub fn shared_upstream(&self) -> Result<Arc<Upstream>, OpenError> {
        if self.cfg.disabled {
            return Err(OpenError::Disabled(self.cfg.name.clone()));
        }
        let sh = self.shared.as_ref().ok_or_else(|| {
            OpenError::Unavailable(format!("server {:?} has no shared upstream", self.cfg.name))
        })?;
        match sh.link.unavailable() {
            Some(why) => Err(OpenError::Unavailable(why)),
            None => Ok(sh.clone()),
        }
    }

    /// How many times the shared upstream said its tool list changed (0 for
    /// a per-client server, whose upstreams each live one session).
    pub fn tool_list_generation(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |sh| sh.tool_list_generation())
    }

    /// The shared upstream's state as it changes (a group watches its
    /// members to drop and restore their tools); `None` for per-client servers.
    pub fn watch_state(&self) -> Option<tokio::sync::watch::Receiver<LinkState>> {
        self.shared.as_ref().map(|sh| sh.link.watch_state())
    }

    /// Why the server cannot take requests now (between restarts, or in a
    /// crash loop), for a group that leaves it out meanwhile.
    pub fn down(&self) -> Option<String> {
        if self.cfg.disabled {
            return Some(format!("server {:?} is disabled", self.cfg.name));
        }
        match self.shared.as_ref().map(|sh| sh.link.state()) {
            Some(LinkState::Backoff(e)) => Some(format!(
                "server {:?} is down (restarting after: {e})",
                self.cfg.name
            )),
            Some(LinkState::Failed(e)) => {
                Some(format!("server {:?} is down (failing: {e})", self.cfg.name))
            }
            _ => None,
        }
    }

    fn live_clients(&self) -> Vec<Arc<Upstream>> {
        let mut c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|p| p.link.state() != LinkState::Stopped);
        c.clone()
    }

    /// Makes room for one more per-client upstream: at `maxClients`, stops the
    /// least recently used idle one; refuses when every one is busy.
    fn make_room(&self) -> Result<(), OpenError> {
        let live = self.live_clients();
        if live.len() < self.cfg.max_clients {
            return Ok(());
        }
        let victim = live
            .iter()
            .filter(|p| !p.busy())
            .min_by_key(|p| p.last_used());
        match victim {
            Some(v) => {
                tracing::info!(mcp_server = %self.cfg.name, "maxClients ({}) reached: stopping the least recently used idle per-client upstream", self.cfg.max_clients);
                v.link.retire(&format!(
                    "server {:?}: stopped to make room for a new session (maxClients {})",
                    self.cfg.name, self.cfg.max_clients
                ));
                if let Ok(mut c) = self.clients.lock() {
                    c.retain(|p| !Arc::ptr_eq(p, v));
                }
                Ok(())
            }
            None => Err(OpenError::Full(format!(
                "server {:?} already runs maxClients ({}) per-client upstreams and all are busy; try again later or raise mcpServers.{}.maxClients",
                self.cfg.name, self.cfg.max_clients, self.cfg.name
            ))),
        }
    }
}

/// A configured group, as the registry holds it: its config, its route key,
/// and the roster of its live sessions, so that a reload that changes or
/// removes it can end them. What a group session is and does belongs to
/// `views::group`, which builds its sessions on this entry.
pub struct GroupEntry {
    pub cfg: Arc<GroupConfig>,
    /// `g/<name>`: the transports' key for its sessions (no server name has a `/`).
    pub route: String,
    roster: Mutex<Vec<Weak<dyn Retire>>>,
}

/// Something a reload can end: a group's session.
pub trait Retire: Send + Sync {
    fn retire(&self, why: &str);
}

impl GroupEntry {
    pub fn new(cfg: GroupConfig) -> GroupEntry {
        GroupEntry {
            route: format!("g/{}", cfg.name),
            cfg: Arc::new(cfg),
            roster: Mutex::default(),
        }
    }

    /// Puts a live session on the roster (the ones that ended are dropped).
    pub fn enroll(&self, session: Weak<dyn Retire>) {
        let mut all = self.roster.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(session);
    }

    /// Sessions on the roster that are still alive.
    pub fn live_sessions(&self) -> usize {
        let all = self.roster.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|w| w.strong_count() > 0).count()
    }

    /// Ends every session of this group (a reload changed or removed it).
    pub fn retire(&self, why: &str) {
        let all: Vec<_> = self
            .roster
            .lock()
            .map(|mut s| s.drain(..).collect())
            .unwrap_or_default();
        for s in all.iter().filter_map(Weak::upgrade) {
            s.retire(why);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("server {0:?} is disabled in the config")]
    Disabled(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Start(String),
    #[error("{0}")]
    Full(String),
    /// A named client is at its own `maxSessions`: its least recently used
    /// idle session may make room.
    #[error("{0}")]
    ClientFull(String),
}

/// One consistent view of the configuration in force. A request takes one and
/// routes with it, so a reload never shows it half of each config.
pub struct Snapshot {
    pub settings: HubSettings,
    pub policy: Policy,
    /// The identity provider, when `mcpProxy.options.oidc` is set.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    servers: IndexMap<String, Arc<Server>>,
    groups: IndexMap<String, Arc<GroupEntry>>,
}

impl Snapshot {
    pub fn server(&self, name: &str) -> Option<Arc<Server>> {
        self.servers.get(name).cloned()
    }

    pub fn group(&self, name: &str) -> Option<Arc<GroupEntry>> {
        self.groups.get(name).cloned()
    }

    /// Every configured group, in config order.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<GroupEntry>> {
        self.groups.values()
    }

    /// Groups are configured: `/g/…` routes to them.
    pub fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }

    /// Every configured server, in config order.
    pub fn servers(&self) -> impl Iterator<Item = &Arc<Server>> {
        self.servers.values()
    }

    /// Every token any route accepts; `/status` takes any of them.
    pub fn all_tokens(&self) -> Vec<String> {
        let mut all = self.settings.auth_tokens.clone();
        let servers = self.servers.values().map(|s| &s.cfg.auth_tokens);
        let groups = self.groups.values().map(|g| &g.cfg.auth_tokens);
        for t in servers.chain(groups).flatten() {
            if !all.contains(t) {
                all.push(t.clone());
            }
        }
        all
    }
}

pub struct Hub {
    current: RwLock<Arc<Snapshot>>,
    per_token: crate::session::TokenCounts,
    /// When each named client last made a request, for `/status`.
    seen: papaya::HashMap<Arc<str>, std::sync::atomic::AtomicU64>,
    drivers: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
}

impl Hub {
    /// Builds the registry and starts a driver for each shared server.
    /// Must run inside the tokio runtime.
    pub fn new(config: Config) -> Arc<Hub> {
        let mut drivers = Vec::new();
        let servers = config
            .servers
            .into_iter()
            .map(|(name, cfg)| (name, Arc::new(build(cfg, &mut drivers))))
            .collect();
        let groups = config
            .groups
            .into_iter()
            .map(|(name, g)| (name, Arc::new(GroupEntry::new(g))))
            .collect();
        let snapshot = Snapshot {
            policy: Policy::new(&config.hub),
            oidc: config
                .hub
                .oidc
                .clone()
                .map(|o| crate::oidc::Oidc::new(o, None)),
            settings: config.hub,
            servers,
            groups,
        };
        Arc::new(Hub {
            current: RwLock::new(Arc::new(snapshot)),
            per_token: Default::default(),
            seen: Default::default(),
            drivers: Mutex::new(drivers),
            started: Instant::now(),
        })
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Open client sessions over all servers, and servers by state: for
    /// exit-on-idle and the STATUS= line.
    pub fn counts(&self) -> (usize, std::collections::BTreeMap<&'static str, usize>) {
        let mut sessions = 0;
        let mut by_state = std::collections::BTreeMap::new();
        for s in self.current().servers.values() {
            sessions += s.sup.snapshot().sessions;
            *by_state.entry(s.state()).or_default() += 1;
        }
        (sessions, by_state)
    }

    /// A slot for one more session of the caller `info` names. A named
    /// client's sessions count against its own cap, so one client can never
    /// use up another's; a plain token's against `maxSessionsPerToken`; a
    /// caller with no token against its address's `maxSessionsPerAddress`;
    /// and all of them against `maxSessions`.
    fn session_slot(
        &self,
        info: &SessionInfo,
    ) -> Result<Arc<crate::session::TokenSlot>, OpenError> {
        let s = &self.current().settings;
        let (key, max, which): (Arc<str>, usize, String) = match (&info.client, &info.secret, info.peer) {
            (Some(c), _, _) => (
                c.caller_key().into(),
                c.max_sessions,
                format!("client {} already has {} sessions open ({}.maxSessions)", c.name, c.max_sessions, c.policy),
            ),
            (None, Some(t), _) => (
                t.0.clone(),
                s.max_sessions_per_token,
                format!("this token already has maxSessionsPerToken ({}) sessions open (mcpProxy.options.maxSessionsPerToken)", s.max_sessions_per_token),
            ),
            (None, None, Some(ip)) => (
                format!("addr:{ip}").into(),
                s.max_sessions_per_address,
                format!("{ip} already has {} sessions open (mcpProxy.options.maxSessionsPerAddress)", s.max_sessions_per_address),
            ),
            (None, None, None) => ("-".into(), usize::MAX, String::new()),
        };
        self.per_token
            .take(&key, max, s.max_sessions)
            .map_err(|full| match full {
                crate::session::Full::Caller if info.client.is_some() => {
                    OpenError::ClientFull(format!("{which}; close some or raise it"))
                }
                crate::session::Full::Caller => {
                    OpenError::Full(format!("{which}; close some or raise it"))
                }
                crate::session::Full::Total => OpenError::Full(format!(
                    "the hub has {} sessions open (mcpProxy.options.maxSessions); try again later",
                    s.max_sessions
                )),
            })
    }

    /// Opens a client session on a server. `sink` receives what the server
    /// sends that belongs to no request. A shared upstream between restarts
    /// refuses at once (the route answers 503); a failed one gets an attempt.
    pub async fn open_session(
        &self,
        server: &Server,
        sink: Arc<dyn Downstream>,
        info: SessionInfo,
    ) -> Result<Session, OpenError> {
        let cfg = &server.cfg;
        if cfg.disabled {
            return Err(OpenError::Disabled(cfg.name.clone()));
        }
        let mut info = info;
        info.slot = Some(self.session_slot(&info)?);
        if server.shared.is_some() {
            return Ok(server.shared_upstream()?.attach(sink, info, &server.sup));
        }
        server.make_room()?;
        let (up, task) = Upstream::spawn(cfg.clone(), server.sup.clone(), Kind::PerClient);
        if let Ok(mut d) = self.drivers.lock() {
            d.retain(|t| !t.is_finished());
            d.push(task);
        }
        // Listed before it is ready, so a shutdown meanwhile stops it too.
        if let Ok(mut c) = server.clients.lock() {
            c.push(up.clone());
        }
        let session = up.attach(sink, info, &server.sup);
        if let Err(e) = up.link.ready().await {
            return Err(OpenError::Start(e));
        }
        tracing::info!(mcp_server = %cfg.name, pid = server.sup.snapshot().pid.unwrap_or(0), "started per-client upstream");
        Ok(session)
    }

    /// `panicIfInvalid`: connects and initializes every server that asks for it,
    /// and says which failed and why. The hub refuses to start then.
    pub async fn check_required(&self) -> Result<(), String> {
        let snap = self.current();
        for s in snap
            .servers
            .values()
            .filter(|s| s.cfg.panic_if_invalid && !s.cfg.disabled)
        {
            let r = match &s.shared {
                Some(sh) => sh.link.start_and_wait().await,
                None => probe(&s.cfg, &s.sup).await,
            };
            r.map_err(|e| {
                format!(
                    "server {:?} is invalid and panicIfInvalid is set: {e}",
                    s.cfg.name
                )
            })?;
        }
        Ok(())
    }

    /// A named client made a request now.
    pub fn seen(&self, client: &Arc<str>) {
        // Per request, so lock-free and to the second.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let m = self.seen.pin();
        match m.get(client) {
            Some(t) => t.store(now, std::sync::atomic::Ordering::Relaxed),
            None => {
                m.get_or_insert_with(client.clone(), || now.into());
            }
        }
    }

    /// Stops every upstream gracefully (stdin EOF, SIGTERM, SIGKILL, the steps
    /// fitted into `timeout`) and waits for the drivers at most `timeout`; then
    /// kills whatever process group is left, so nothing outlives the hub.
    pub async fn shutdown(&self, timeout: Duration) {
        let grace = timeout * 2 / 5;
        for s in self.current().servers.values() {
            s.retire_within("the hub is shutting down", grace);
        }
        let drivers: Vec<_> = self
            .drivers
            .lock()
            .map(|mut d| d.drain(..).collect())
            .unwrap_or_default();
        let all = futures_util::future::join_all(drivers);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("some children did not stop within {}s", timeout.as_secs());
        }
        let left = crate::upstream::stdio::kill_all_groups();
        if left > 0 {
            tracing::warn!("killed {left} process group(s) still running at exit");
        }
    }
}

/// `panicIfInvalid` for a per-client server: connect, initialize, stop.
async fn probe(cfg: &Arc<ServerConfig>, sup: &Arc<Supervisor>) -> Result<(), String> {
    let (up, task) = Upstream::spawn(cfg.clone(), sup.clone(), Kind::PerClient);
    struct Quiet;
    impl Downstream for Quiet {
        fn deliver(&self, _: crate::jsonrpc::Message) {}
        fn closed(&self, _: &str) {}
    }
    let session = up.attach(Arc::new(Quiet), SessionInfo::default(), sup);
    let r = async {
        up.link.ready().await?;
        let init = crate::jsonrpc::Message::request(
            crate::jsonrpc::Id::Str("mcp-hub-probe".into()),
            "initialize",
            crate::mcp::hub_initialize(json!({})),
        );
        let m = crate::session::ask(
            &crate::session::Unmetered(&session),
            init,
            crate::session::OnServerRequest::Refuse(
                crate::jsonrpc::UPSTREAM_ERROR,
                "mcp-hub is only checking that this server starts; nobody can answer",
            ),
            Some(cfg.init_timeout),
            (&cfg.name, "probe"),
        )
        .await
        .map_err(|e| format!("initialize: {e}"))?;
        match m.error_raw() {
            Some(e) => Err(format!("initialize failed: {}", e.get())),
            None => Ok(()),
        }
    }
    .await;
    drop(session);
    let _ = task.await;
    r
}
