//! mcp-hub: entry point. Parses the command line, sets up logging, builds the
//! runtime and runs the chosen command. Everything else lives in the modules.

// Unsafe code is denied everywhere; only the sandbox helper (`sandbox::exec`)
// allows it, for the system calls no safe wrapper covers, each with a SAFETY note.
#![deny(unsafe_code)]
// The HTTP layer returns a finished response as its error value: the refusal *is*
// the response, and it is built at most once per request.
#![allow(clippy::result_large_err)]

mod cli;
mod config;
mod http;
mod hub;
mod jsonrpc;
mod sandbox;
mod session;
mod supervisor;
mod systemd;
mod transport;
mod upstream;

use anyhow::Context;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The sandbox helper runs before anything else exists: no runtime, no
    // threads, no logging setup, no argument parsing that could allocate a
    // thread pool. It never returns.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandbox::HELPER_ARG)
    {
        sandbox::exec::main();
    }
    let cli = cli::Cli::parse();
    match cli.command.unwrap_or(cli::Command::Serve { listen: None }) {
        cli::Command::Check => match config::load(&cli.config) {
            Ok(cfg) => {
                print!("{}", cli::check_report(&cfg));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        cli::Command::Doctor => {
            let cfg = match config::load(&cli.config) {
                Ok(cfg) => Some(cfg),
                Err(e) => {
                    eprintln!("note: no servers checked: {e}");
                    None
                }
            };
            let host = sandbox::probe::Host::probe();
            let (report, ok) = sandbox::probe::report(&host, cfg.as_ref());
            print!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        // Dispatched at the top of main; clap only knows it for --help.
        cli::Command::SandboxExec => sandbox::exec::main(),
        cli::Command::Serve { listen } => {
            systemd::journal::init();
            // Before any thread exists: taking the sockets clears LISTEN_* from the environment.
            let activated = match systemd::listen::take_activated() {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let watchdog = systemd::notify::watchdog_interval();
            let result = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| rt.block_on(serve(cli.config, listen, activated, watchdog)));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(
    config_path: std::path::PathBuf,
    listen: Option<String>,
    activated: systemd::listen::Activated,
    watchdog: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    use systemd::{listen as sock, notify};
    let cfg = config::load(&config_path)?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    sandbox_report(&cfg);
    sock::raise_fd_limit();
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hub = hub::Hub::new(cfg);
    let drain = hub.current().settings.shutdown_timeout;
    if let Err(e) = hub.check_required().await {
        hub.shutdown(drain).await;
        anyhow::bail!(e);
    }
    let app = http::App::new(hub.clone(), stop_rx);
    let idle = idle_watch(app.clone(), hub.current().settings.exit_on_idle);
    let server = tokio::spawn(http::serve(
        app,
        listeners.into_iter().map(|(_, l)| l).collect(),
        drain,
    ));
    notify::ready(&notify::summary(&hub));
    notify::spawn_watchdog(hub.clone(), watchdog);

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::pin!(idle);
    loop {
        tokio::select! {
            after = &mut idle => {
                tracing::info!("no session and no request for {}s: exiting (exitOnIdle)", after.as_secs());
                break;
            }
            _ = hup.recv() => reload(&hub, &config_path),
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
        }
    }
    notify::stopping();
    let _ = stop_tx.send(true);
    hub.shutdown(drain).await;
    let _ = tokio::time::timeout(drain, server).await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: re-read the config; keep the running one if the new one is invalid.
fn reload(hub: &hub::Hub, config_path: &std::path::Path) {
    use systemd::notify;
    notify::reloading();
    match config::load(config_path) {
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
