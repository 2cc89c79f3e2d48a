//! Command line: `serve` (the default), `check`, `doctor`, and the operator's
//! commands. This file holds the clap definitions and the dispatch; each
//! command group lives in its own file and does its work through the modules
//! the hub itself uses (`config` for loading, validating and editing files,
//! `sandbox::grant` for path checks). The operator's commands talk to a
//! running hub over HTTP only (`hubapi`), the way any client does.
//!
//! Output: a human table by default, one JSON document with `--json`. Every
//! failure is one `error: …` line (or `{"error": …}` with `--json`) and a
//! non-zero exit.

mod check;
mod client;
mod clients;
mod ctx;
mod edit;
mod hubapi;
mod inspect;
mod lock;
mod logs;
mod openwebui;
mod openwebui_api;
mod out;
mod reload;
mod restore;

pub use check::check_report;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

pub const DEFAULT_CONFIG: &str = "/etc/mcp-hub/config.json";

#[derive(Debug, Parser)]
#[command(
    name = "mcp-hub",
    version,
    about = "One daemon that serves stdio and remote MCP servers to any MCP client",
    long_about = "mcp-hub supervises stdio MCP servers and serves each one to clients at\n\
                  http://HOST:PORT/<name>/sse (legacy SSE) and /<name>/mcp (streamable HTTP).\n\
                  It reads a TBXark/mcp-proxy or Claude Desktop style config.json, plus\n\
                  conf.d/*.json beside it (each holding mcpServers or named clients), which\n\
                  `mcp-hub add` and `mcp-hub client add` write."
)]
pub struct Cli {
    /// Config file (JSON with comments; ${VAR} and ${VAR:-default} are expanded).
    /// Drop-ins are read from conf.d/*.json beside it.
    #[arg(short, long, global = true, env = "MCP_HUB_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every operator command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print one JSON document instead of a table
    #[arg(long, global = true)]
    pub json: bool,
    /// The running hub's base URL (default: the config's listen address on loopback)
    #[arg(
        long = "hub-url",
        global = true,
        env = "MCP_HUB_URL",
        value_name = "URL"
    )]
    pub hub_url: Option<String>,
    /// Bearer token for the running hub (default: the config's own; needed when the
    /// config reads it from a systemd credential only the service can see)
    #[arg(long, global = true, env = "MCP_HUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The hub's pid file: `serve` writes it, the commands send SIGHUP to it to
    /// reload a hub that systemd does not run (default: $RUNTIME_DIRECTORY/mcp-hub.pid)
    #[arg(long, global = true, env = "MCP_HUB_PID_FILE", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default when no command is given)
    Serve {
        /// Address to listen on, overriding mcpProxy.addr (e.g. 127.0.0.1:9090, :9090)
        #[arg(short, long)]
        listen: Option<String>,
    },
    /// Validate the config with its drop-ins, list the servers and routes, and test
    /// each sandbox grant as the user the server runs as; exits non-zero on any error
    Check(check::GrantUser),
    /// Show what this host can enforce (Landlock, user namespaces, seccomp, cgroup
    /// limits), whether each server's sandbox profile can be fully enforced, and
    /// whether its granted paths are usable; exits non-zero when one is not
    Doctor(check::GrantUser),
    /// Add a server as conf.d/NAME.json, reload the hub and test the server.
    ///
    /// stdio:  mcp-hub add fetch -- uvx mcp-server-fetch
    /// remote: mcp-hub add pg --url http://127.0.0.1:8686/sse
    ///
    /// The whole merged config is validated before anything is written; a file
    /// it replaces (--force) is backed up first (see `mcp-hub restore`).
    #[command(verbatim_doc_comment)]
    Add(Box<edit::AddArgs>),
    /// Remove a server (its drop-in, or its entry in the file that defines it),
    /// with a backup, reload the hub and check that its routes answer 404
    Remove(edit::RemoveArgs),
    /// Enable a disabled server (options.disabled in the file that defines it) and reload
    Enable(edit::ToggleArgs),
    /// Disable a server (options.disabled: its routes answer 404) and reload
    Disable(edit::ToggleArgs),
    /// List the backups the commands keep, or restore one, validate the result and reload
    Restore(restore::RestoreArgs),
    /// List servers: live state from the running hub's /status, else the config only
    List(inspect::ListArgs),
    /// One server's effective config with secrets masked, the file it comes from,
    /// its URLs and its sandbox as resolved
    Show(inspect::NameArg),
    /// Through the running hub: initialize and tools/list on /NAME/mcp and/or
    /// /NAME/sse, each step timed; exits 0 only if every step passed
    Test(inspect::TestArgs),
    /// List a server's tools through the running hub
    Tools(inspect::NameArg),
    /// Call one tool through the running hub and print the result
    Call(inspect::CallArgs),
    /// A server's log lines from the journal (journalctl -u mcp-hub MCP_SERVER=NAME)
    Logs(logs::LogsArgs),
    /// Named clients (mcpProxy.options.clients): add, list, revoke, rotate
    ///
    ///   TOKEN=$(mcp-hub client add laptop --servers fs,fetch)
    ///   mcp-hub client list
    ///   NEW=$(mcp-hub client rotate laptop --grace 1h)
    ///   mcp-hub client revoke laptop
    ///
    /// A new token is printed once, on stdout; the config keeps only its SHA-256.
    #[command(verbatim_doc_comment)]
    Client(client::ClientArgs),
    /// Print (or --write into the client's own file) the config snippet an MCP
    /// client needs for the hub's servers; tokens go in as environment references
    #[command(name = "client-config")]
    ClientConfig(clients::ClientArgs),
    /// Install a package-runner server's package (npx, uvx, pipx run) ahead of its
    /// first start, or again from its lockfile
    Install { name: String },
    /// Install the newest versions of a server's package beside the current ones,
    /// test them, and switch to them
    Upgrade { name: String },
    /// Switch a server back to its previous install
    Rollback { name: String },
    /// The sandbox helper the hub runs for each stdio server (internal)
    #[command(name = "sandbox-exec", hide = true)]
    SandboxExec,
}

/// `--transport` of `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Http,
    Sse,
    Both,
}

/// `install`, `upgrade`, `rollback`: the package of a package-runner server.
fn pkg(ctx: &ctx::Ctx, name: &str, op: crate::sandbox::upgrade::Op) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    let line = crate::sandbox::upgrade::run(&cfg, name, op)?;
    println!("{line}");
    Ok(true)
}

/// Runs an operator command (everything but `serve` and `sandbox-exec`).
pub fn run(config: PathBuf, global: Global, command: Command) -> ExitCode {
    let json = global.json;
    let ctx = ctx::Ctx::new(config, global);
    let result = match command {
        Command::Check(u) => check::check(&ctx, &u),
        Command::Doctor(u) => check::doctor(&ctx, &u),
        Command::Add(a) => edit::add(&ctx, *a),
        Command::Remove(a) => edit::remove(&ctx, a),
        Command::Enable(a) => edit::toggle(&ctx, a, false),
        Command::Disable(a) => edit::toggle(&ctx, a, true),
        Command::Restore(a) => restore::restore(&ctx, a),
        Command::List(a) => inspect::list(&ctx, a),
        Command::Show(a) => inspect::show(&ctx, a),
        Command::Test(a) => inspect::test(&ctx, a),
        Command::Tools(a) => inspect::tools(&ctx, a),
        Command::Call(a) => inspect::call(&ctx, a),
        Command::Logs(a) => logs::logs(&ctx, a),
        Command::ClientConfig(a) => clients::client_config(&ctx, a),
        Command::Client(a) => client::client(&ctx, a),
        Command::Install { name } => pkg(&ctx, &name, crate::sandbox::upgrade::Op::Install),
        Command::Upgrade { name } => pkg(&ctx, &name, crate::sandbox::upgrade::Op::Upgrade),
        Command::Rollback { name } => pkg(&ctx, &name, crate::sandbox::upgrade::Op::Rollback),
        Command::Serve { .. } | Command::SandboxExec => {
            unreachable!("dispatched by main")
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            out::error(json, &e);
            ExitCode::FAILURE
        }
    }
}
