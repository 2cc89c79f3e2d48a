//! The registry of configured servers: what each route name leads to, its
//! supervisor (for `/status`), and for `shared` stdio servers the one driver
//! that owns the child. Reload (a per-server diff) will swap entries here; the
//! HTTP layer looks a server up on every request so it sees the swap at once.

use crate::config::{Config, HubSettings, ServerConfig, SessionMode};
use crate::session::{passthrough::Passthrough, shared::Shared, Downstream, Session};
use crate::supervisor::{State, Supervisor};
use indexmap::IndexMap;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub struct Server {
    pub cfg: Arc<ServerConfig>,
    pub sup: Arc<Supervisor>,
    shared: Option<Arc<Shared>>,
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

pub struct Hub {
    pub settings: HubSettings,
    servers: IndexMap<String, Arc<Server>>,
    drivers: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
}

impl Hub {
    /// Builds the registry and starts a driver for each shared stdio server.
    /// Must run inside the tokio runtime.
    pub fn new(config: Config) -> Arc<Hub> {
        let mut servers = IndexMap::new();
        let mut drivers = Vec::new();
        for (name, cfg) in config.servers {
            let cfg = Arc::new(cfg);
            let initial = if cfg.disabled {
                State::Disabled
            } else {
                State::Stopped
            };
            let sup = Arc::new(Supervisor::new(&name, initial));
            let shared = (cfg.session == SessionMode::Shared && !cfg.disabled).then(|| {
                let sh = Shared::new(cfg.clone(), sup.clone());
                drivers.push(sh.spawn_driver());
                sh
            });
            servers.insert(name, Arc::new(Server { cfg, sup, shared }));
        }
        Arc::new(Hub {
            settings: config.hub,
            servers,
            drivers: Mutex::new(drivers),
            started: Instant::now(),
        })
    }

    pub fn server(&self, name: &str) -> Option<&Arc<Server>> {
        self.servers.get(name)
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

    /// Opens a client session on a server. `sink` receives what the server sends.
    /// A shared upstream known to be down refuses at once (the route answers 503).
    pub async fn open_session(
        &self,
        server: &Server,
        sink: Arc<dyn Downstream>,
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
                Ok(Session::Shared(sh.attach(sink)))
            }
            None => Passthrough::open(cfg.clone(), server.sup.clone(), sink)
                .await
                .map(Session::Passthrough)
                .map_err(OpenError::Start),
        }
    }

    /// `panicIfInvalid`: connects and initializes every server that asks for it,
    /// and says which failed and why. The hub refuses to start then.
    pub async fn check_required(&self) -> Result<(), String> {
        for s in self
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
        let servers: Vec<Value> = self
            .servers
            .values()
            .map(|s| {
                let snap = s.sup.snapshot();
                json!({
                    "name": s.cfg.name,
                    "kind": s.cfg.upstream.kind(),
                    "session": s.cfg.session.as_str(),
                    "state": snap.state,
                    "pid": snap.pid,
                    "children": snap.children,
                    "restarts": snap.restarts,
                    "sessions": snap.sessions,
                    "lastError": snap.last_error,
                    "uptimeSecs": snap.uptime_secs,
                })
            })
            .collect();
        json!({
            "name": self.settings.name,
            "version": env!("CARGO_PKG_VERSION"),
            "configVersion": self.settings.version,
            "uptimeSecs": self.started.elapsed().as_secs(),
            "servers": servers,
        })
    }

    /// Stops every shared child gracefully and waits for the drivers, at most `timeout`.
    /// Per-client children are stopped by their sessions closing.
    pub async fn shutdown(&self, timeout: Duration) {
        for s in self.servers.values() {
            if let Some(sh) = &s.shared {
                sh.shutdown();
            }
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
