//! The registry of configured servers: what each route name leads to, its
//! supervisor (for `/status`), for `shared` servers the one driver that owns the
//! upstream, and for `per-client` servers their open sessions.
//!
//! The registry is a snapshot behind a lock: every request takes the current
//! one, and `reload` swaps in a new one built as a per-server diff. A server
//! whose config is unchanged keeps its upstream and sessions (a rotated token
//! alone changes nothing but the token check, from the very next request); a
//! changed or removed server is stopped and its sessions end (clients get 404
//! and initialize again); an added one appears.

use crate::config::{Config, HubSettings, ServerConfig, SessionMode};
use crate::http::origin::Policy;
use crate::session::{passthrough::Passthrough, shared::Shared, Downstream, Session, SessionInfo};
use crate::supervisor::{State, Supervisor};
use indexmap::IndexMap;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub struct Server {
    pub cfg: Arc<ServerConfig>,
    pub sup: Arc<Supervisor>,
    shared: Option<Arc<Shared>>,
    /// Open per-client sessions, so a reload can end them.
    clients: Arc<Mutex<Vec<Weak<Passthrough>>>>,
}

impl Server {
    /// Stops the upstream and ends every session (the server was changed or removed).
    fn retire(&self, why: &str) {
        if let Some(sh) = &self.shared {
            sh.retire(why);
        }
        let clients: Vec<_> = self
            .clients
            .lock()
            .map(|mut c| c.drain(..).collect())
            .unwrap_or_default();
        for p in clients.iter().filter_map(Weak::upgrade) {
            p.end(why);
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
}

/// One consistent view of the configuration in force. A request takes one and
/// routes with it, so a reload never shows it half of each config.
pub struct Snapshot {
    pub settings: HubSettings,
    pub policy: Policy,
    servers: IndexMap<String, Arc<Server>>,
}

impl Snapshot {
    pub fn server(&self, name: &str) -> Option<Arc<Server>> {
        self.servers.get(name).cloned()
    }

    /// Every token any route accepts; `/status` takes any of them.
    pub fn all_tokens(&self) -> Vec<String> {
        let mut all = self.settings.auth_tokens.clone();
        for s in self.servers.values() {
            for t in &s.cfg.auth_tokens {
                if !all.contains(t) {
                    all.push(t.clone());
                }
            }
        }
        all
    }
}

/// What a reload changed, for the log and STATUS=.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub kept: Vec<String>,
    pub changed: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

pub struct Hub {
    current: RwLock<Arc<Snapshot>>,
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
        let snapshot = Snapshot {
            policy: Policy::new(&config.hub),
            settings: config.hub,
            servers,
        };
        Arc::new(Hub {
            current: RwLock::new(Arc::new(snapshot)),
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
            let st = s.sup.snapshot();
            sessions += st.sessions;
            *by_state.entry(st.state.as_str()).or_default() += 1;
        }
        (sessions, by_state)
    }

    /// Applies a new, already validated config as a per-server diff.
    pub fn reload(&self, config: Config) -> ReloadSummary {
        let old = self.current();
        let mut summary = ReloadSummary::default();
        let mut drivers = Vec::new();
        let mut servers = IndexMap::new();
        for (name, cfg) in config.servers {
            let server = match old.servers.get(&name) {
                Some(prev) if same_upstream(&prev.cfg, &cfg) => {
                    summary.kept.push(name.clone());
                    Arc::new(Server {
                        cfg: Arc::new(cfg),
                        sup: prev.sup.clone(),
                        shared: prev.shared.clone(),
                        clients: prev.clients.clone(),
                    })
                }
                Some(_) => {
                    summary.changed.push(name.clone());
                    Arc::new(build(cfg, &mut drivers))
                }
                None => {
                    summary.added.push(name.clone());
                    Arc::new(build(cfg, &mut drivers))
                }
            };
            servers.insert(name, server);
        }
        for name in old.servers.keys().filter(|n| !servers.contains_key(*n)) {
            summary.removed.push(name.clone());
        }
        if old.settings.addr != config.hub.addr {
            tracing::warn!("mcpProxy.addr changed; the listening address changes only on restart");
        }
        let snapshot = Snapshot {
            policy: Policy::new(&config.hub),
            settings: config.hub,
            servers,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        if let Ok(mut d) = self.drivers.lock() {
            d.extend(drivers);
        }
        // Only now, with the new snapshot in place, stop what went away.
        for name in summary.changed.iter().chain(&summary.removed) {
            if let Some(s) = old.servers.get(name) {
                s.retire(&format!(
                    "server {name:?} was changed or removed by a config reload"
                ));
            }
        }
        summary
    }

    /// Opens a client session on a server. `sink` receives what the server sends.
    /// A shared upstream known to be down refuses at once (the route answers 503).
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
        match &server.shared {
            Some(sh) => {
                if let Some(why) = sh.unavailable() {
                    return Err(OpenError::Unavailable(why));
                }
                Ok(Session::Shared(sh.attach(sink, info)))
            }
            None => {
                let p = Passthrough::open(cfg.clone(), server.sup.clone(), sink, info)
                    .await
                    .map_err(OpenError::Start)?;
                if let Ok(mut c) = server.clients.lock() {
                    c.retain(|w| w.strong_count() > 0);
                    c.push(Arc::downgrade(&p));
                }
                Ok(Session::Passthrough(p))
            }
        }
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
                Some(sh) => sh.start_and_wait().await,
                None => crate::session::passthrough::probe(&s.cfg, &s.sup).await,
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

    pub fn status(&self) -> Value {
        let snap = self.current();
        let servers: Vec<Value> = snap
            .servers
            .values()
            .map(|s| {
                let st = s.sup.snapshot();
                json!({
                    "name": s.cfg.name,
                    "kind": s.cfg.upstream.kind(),
                    "session": s.cfg.session.as_str(),
                    "state": st.state,
                    "pid": st.pid,
                    "children": st.children,
                    "restarts": st.restarts,
                    "sessions": st.sessions,
                    "lastError": st.last_error,
                    "uptimeSecs": st.uptime_secs,
                    "sandbox": sandbox_status(&s.cfg.upstream),
                })
            })
            .collect();
        json!({
            "name": snap.settings.name,
            "version": env!("CARGO_PKG_VERSION"),
            "configVersion": snap.settings.version,
            "uptimeSecs": self.started.elapsed().as_secs(),
            "servers": servers,
        })
    }

    /// Stops every upstream gracefully and waits for the drivers, at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        for s in self.current().servers.values() {
            s.retire("the hub is shutting down");
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
    }
}

/// A server's sandbox as `/status` shows it: off (with a warning), or on with
/// its limits and whether the host enforces them.
fn sandbox_status(up: &crate::config::Upstream) -> Value {
    let crate::config::Upstream::Stdio(spec) = up else {
        return Value::Null;
    };
    let Some(p) = &spec.sandbox else {
        return json!({"enabled": false, "warning": "sandbox disabled (\"sandbox\": false): the server runs with the hub's user and file system access"});
    };
    let limits = &p.limits;
    let cgroup = crate::sandbox::cgroup::state();
    let enforced = matches!(cgroup, crate::sandbox::cgroup::State::Delegated { .. });
    json!({
        "enabled": true,
        "network": if p.network == crate::sandbox::profile::Network::None { "none" } else { "host" },
        "memoryMax": limits.memory_max,
        "pidsMax": limits.pids_max,
        "cpuQuotaPercent": limits.cpu_quota,
        "limits": if enforced || !limits.needs_cgroup() { "enforced".to_string() } else { cgroup.describe() },
    })
}

fn build(cfg: ServerConfig, drivers: &mut Vec<JoinHandle<()>>) -> Server {
    let cfg = Arc::new(cfg);
    let initial = if cfg.disabled {
        State::Disabled
    } else {
        State::Stopped
    };
    let sup = Arc::new(Supervisor::new(&cfg.name, initial));
    let shared = (cfg.session == SessionMode::Shared && !cfg.disabled).then(|| {
        let sh = Shared::new(cfg.clone(), sup.clone());
        drivers.push(sh.spawn_driver());
        sh
    });
    Server {
        cfg,
        sup,
        shared,
        clients: Arc::default(),
    }
}

/// True when a reload may keep the running upstream: everything but the tokens
/// (checked per request by the HTTP layer) is the same.
fn same_upstream(old: &ServerConfig, new: &ServerConfig) -> bool {
    let mut probe = old.clone();
    probe.auth_tokens = new.auth_tokens.clone();
    probe == *new
}
