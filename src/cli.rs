//! Command line: `serve` (the default), `check` and `doctor`. Only argument parsing and
//! the `check` report live here; the work is in the modules they call.

use crate::config::{self, Config};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub const DEFAULT_CONFIG: &str = "/etc/mcp-hub/config.json";

#[derive(Debug, Parser)]
#[command(
    name = "mcp-hub",
    version,
    about = "One daemon that serves stdio and remote MCP servers to any MCP client",
    long_about = "mcp-hub supervises stdio MCP servers and serves each one to clients at\n\
                  http://HOST:PORT/<name>/sse (legacy SSE) and /<name>/mcp (streamable HTTP).\n\
                  It reads a TBXark/mcp-proxy or Claude Desktop style config.json."
)]
pub struct Cli {
    /// Config file (JSON with comments; ${VAR} and ${VAR:-default} are expanded)
    #[arg(short, long, global = true, env = "MCP_HUB_CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default when no command is given)
    Serve {
        /// Address to listen on, overriding mcpProxy.addr (e.g. 127.0.0.1:9090, :9090)
        #[arg(short, long)]
        listen: Option<String>,
    },
    /// Validate the config and list its servers and routes; exits non-zero on any error
    Check,
    /// Show what this host can enforce (Landlock, user namespaces, seccomp, cgroup
    /// limits) and whether each server's sandbox profile can be fully enforced;
    /// exits non-zero when one cannot
    Doctor,
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

/// The `check` report: one row per server.
pub fn check_report(cfg: &Config) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "KIND".into(),
        "SESSION".into(),
        "AUTH".into(),
        "ROUTES".into(),
    ]];
    for s in cfg.servers.values() {
        let kind = if s.disabled {
            format!("{} (disabled)", s.upstream.kind())
        } else {
            s.upstream.kind().to_string()
        };
        let auth = if s.auth_tokens.is_empty() {
            "none".to_string()
        } else {
            format!("{} token(s)", s.auth_tokens.len())
        };
        rows.push([
            s.name.clone(),
            kind,
            s.session.as_str().into(),
            auth,
            s.routes().join(" "),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for w in &cfg.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let listen = config::parse_listen_addr(&cfg.hub.addr).unwrap_or_default();
    out.push_str(&format!(
        "config OK: {} server(s), listening on {listen} unless socket-activated\n",
        cfg.servers.len()
    ));
    out
}
