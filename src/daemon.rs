//! Running the hub: load the config, take or bind the sockets, start the
//! registry and the HTTP server, report readiness, and apply SIGHUP reloads.
//! The signal loop itself stays in `main.rs`.
//!
//! A reload runs off the signal loop, so SIGTERM is honoured whatever a reload
//! is doing: one reloader task applies reloads one at a time, and the files
//! are read on a thread of their own (reading is blocking I/O on whatever
//! `conf.d` holds). SIGHUPs that arrive during a reload are coalesced into one
//! more reload after it, which reads the files as they are by then.

use crate::{config, http, hub, sandbox, systemd};
/// A running hub: the registry, the HTTP server and what stops them.
pub struct Running {
    hub: std::sync::Arc<hub::Hub>,
    app: std::sync::Arc<http::App>,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    drain: std::time::Duration,
    /// Wakes the reloader task (`Notify` keeps at most one pending wake-up,
    /// which is the coalescing).
    reload: std::sync::Arc<tokio::sync::Notify>,
    reloader: tokio::task::JoinHandle<()>,
    /// Held while a reload changes the hub, and by `stop`, so a reload that
    /// finishes reading during shutdown starts nothing.
    applying: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Removed when the hub stops (dropped with `Running`).
    _pid_file: Option<systemd::pidfile::PidFile>,
}

/// Loads the config, takes (or binds) the sockets, starts the registry and
/// the HTTP server, and tells systemd the hub is ready.
pub async fn start(
    config_path: std::path::PathBuf,
    listen: Option<String>,
    activated: systemd::listen::Activated,
    watchdog: Option<std::time::Duration>,
    pid_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Running> {
    use systemd::{listen as sock, notify};
    let cfg = config::load(&config_path)?;
    // For `mcp-hub add` & co. to find a hub systemd does not run (SIGHUP).
    // Written before the sockets are announced, so whoever waits for those
    // finds it; removed again if the start fails.
    let _pid_file = systemd::pidfile::path(pid_file.as_deref()).and_then(|p| {
        systemd::pidfile::PidFile::write(&p)
            .inspect_err(|e| tracing::warn!("cannot write the pid file {}: {e}", p.display()))
            .ok()
    });
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    sandbox_report(&cfg);
    sock::raise_fd_limit();
    notify::init();
    let servers = cfg.servers.len();
    let listeners = if activated.is_empty() {
        let addr = listen.unwrap_or_else(|| cfg.hub.addr.clone());
        vec![("configured".to_string(), sock::bind(&addr).await?)]
    } else {
        if listen.is_some() {
            tracing::warn!("--listen is ignored: systemd passed the sockets");
        }
        activated.into_listeners()?
    };
    for (name, l) in &listeners {
        let how = if name == "configured" {
            String::new()
        } else {
            format!(" (socket-activated: {name})")
        };
        tracing::info!(
            "listening on {}{how} with {servers} server(s) from {}",
            l.describe(),
            config_path.display()
        );
    }
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let hub = hub::Hub::new(cfg);
    let drain = hub.current().settings.shutdown_timeout;
    if let Err(e) = hub.check_required().await {
        hub.shutdown(drain).await;
        anyhow::bail!(e);
    }
    if let Some(addr) = hub.current().settings.metrics.listen.clone() {
        let l = match sock::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                hub.shutdown(drain).await;
                anyhow::bail!("mcpProxy.options.metricsListen: {e}");
            }
        };
        tracing::info!("serving /metrics without a token on {}", l.describe());
        tokio::spawn(http::metrics::serve_plain(hub.clone(), l, stop_rx.clone()));
    }
    let app = http::App::new(hub.clone(), stop_rx);
    let server = tokio::spawn(http::serve(
        app.clone(),
        listeners.into_iter().map(|(_, l)| l).collect(),
        drain,
    ));
    notify::ready(&notify::summary(&hub));
    notify::spawn_watchdog(hub.clone(), watchdog);
    let reload = std::sync::Arc::new(tokio::sync::Notify::new());
    let applying = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    let reloader = tokio::spawn(reloader(
        hub.clone(),
        config_path,
        reload.clone(),
        applying.clone(),
    ));
    Ok(Running {
        reloader,
        applying,
        _pid_file,
        hub,
        app,
        server,
        stop,
        drain,
        reload,
    })
}

impl Running {
    /// SIGHUP: asks the reloader to re-read the config (keeping the running
    /// one if the new one is invalid). Returns at once.
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// Resolves once the hub has had no session and no request for
    /// `exitOnIdle`; never when that is unset.
    pub async fn idle(&self) -> std::time::Duration {
        idle_watch(self.app.clone(), self.hub.current().settings.exit_on_idle).await
    }

    /// Stops accepting, stops every upstream, and drains open connections,
    /// each within `shutdownTimeout`.
    pub async fn stop(self) {
        systemd::notify::stopping();
        self.reloader.abort();
        let _no_more_reloads = self.applying.lock().await;
        let _ = self.stop.send(true);
        self.hub.shutdown(self.drain).await;
        let _ = tokio::time::timeout(self.drain, self.server).await;
        tracing::info!("stopped");
    }
}

/// Applies reloads one at a time, for as long as the hub runs.
async fn reloader(
    hub: std::sync::Arc<hub::Hub>,
    config_path: std::path::PathBuf,
    wake: std::sync::Arc<tokio::sync::Notify>,
    applying: std::sync::Arc<tokio::sync::Mutex<()>>,
) {
    loop {
        wake.notified().await;
        reload(&hub, &config_path, &applying).await;
    }
}

/// Re-reads the config; keeps the running one if the new one is invalid.
async fn reload(hub: &hub::Hub, config_path: &std::path::Path, applying: &tokio::sync::Mutex<()>) {
    use systemd::notify;
    notify::reloading();
    // A plain thread, not `spawn_blocking`: the runtime waits for its blocking
    // tasks when it shuts down, and a read that never ends must not hold up
    // the exit. The files are read with bounds (`config::dropin::read_file`);
    // this is the second line of defence.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = config_path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("config-reload".into())
        .spawn(move || {
            let _ = tx.send(config::load(&path));
        });
    let loaded = match spawned {
        Ok(_) => rx.await.ok(),
        Err(e) => {
            tracing::error!(
                "reload failed; still running the previous config: cannot start a thread: {e}"
            );
            None
        }
    };
    let Some(loaded) = loaded else {
        notify::ready(&notify::summary(hub));
        return;
    };
    let _applying = applying.lock().await;
    match loaded {
        Err(e) => {
            tracing::error!("reload failed; still running the previous config: {e}");
            notify::ready(&format!("reload failed, running the previous config: {e}"));
        }
        Ok(cfg) => {
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            let s = hub.reload(cfg);
            tracing::info!(
                "reloaded {}: kept {:?}, changed {:?}, added {:?}, removed {:?}",
                config_path.display(),
                s.kept,
                s.changed,
                s.added,
                s.removed
            );
            notify::ready(&notify::summary(hub));
        }
    }
}

/// Resolves once the hub has had no session and no request for `after`
/// (`mcpProxy.options.exitOnIdle`); never when that is unset.
async fn idle_watch(
    app: std::sync::Arc<http::App>,
    after: Option<std::time::Duration>,
) -> std::time::Duration {
    let Some(after) = after else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval((after / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(10),
    ));
    loop {
        tick.tick().await;
        if app.idle_for().is_some_and(|d| d >= after) {
            return after;
        }
    }
}

/// Claims the delegated cgroup (if any) before the first child starts, and
/// says whether the servers' memory and CPU limits will be enforced.
fn sandbox_report(cfg: &config::Config) {
    use sandbox::cgroup::State;
    let state = sandbox::cgroup::state();
    let limited: Vec<&str> = cfg
        .servers
        .values()
        .filter(|s| match &s.upstream {
            config::Upstream::Stdio(spec) => spec
                .sandbox
                .as_ref()
                .is_some_and(|p| p.limits.needs_cgroup()),
            _ => false,
        })
        .map(|s| s.name.as_str())
        .collect();
    match state {
        State::Delegated { .. } => tracing::info!("sandbox: cgroup limits {}", state.describe()),
        State::NotEnforced(_) if limited.is_empty() => tracing::debug!(
            "sandbox: memoryMax/cpuQuota would not be enforced here: {}",
            state.describe()
        ),
        State::NotEnforced(_) => tracing::warn!(
            "sandbox: memoryMax/cpuQuota of {}: {}",
            limited.join(", "),
            state.describe()
        ),
    }
}
