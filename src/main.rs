//! mcp-hub: entry point. Dispatches the sandbox helper before anything else,
//! parses the command line, builds the runtime and handles signals. The hub
//! itself is the library (`src/lib.rs`).

#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use mcp_hub::{cli, daemon, sandbox, systemd};
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
            // Now threads may exist. Dropped at the end of main, after the
            // last line: it writes what is still pending (SIGTERM included).
            let _log = systemd::logwriter::start();
            let result = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")
                .and_then(|rt| {
                    rt.block_on(run(
                        cli.config,
                        listen,
                        activated,
                        watchdog,
                        cli.global.pid_file,
                    ))
                });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        // check, doctor and the operator's commands.
        command => cli::run(cli.config, cli.global, command),
    }
}

/// `install`, `upgrade`, `rollback`: the work is in `sandbox::upgrade`.
/// Runs the hub until SIGTERM, SIGINT or exit-on-idle; SIGHUP reloads.
async fn run(
    config_path: std::path::PathBuf,
    listen: Option<String>,
    activated: systemd::listen::Activated,
    watchdog: Option<std::time::Duration>,
    pid_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed before the hub starts, so a signal during startup is not lost.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let hub = daemon::start(config_path, listen, activated, watchdog, pid_file).await?;
    {
        let idle = hub.idle();
        tokio::pin!(idle);
        loop {
            tokio::select! {
                after = &mut idle => {
                    tracing::info!("no session and no request for {}s: exiting (exitOnIdle)", after.as_secs());
                    break;
                }
                _ = hup.recv() => hub.reload(),
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
    }
    hub.stop().await;
    Ok(())
}
