//! `logs`: a server's journal entries. The hub logs every line about a server,
//! its child's stderr included, with `MCP_SERVER=<name>`; this is
//! `journalctl -u mcp-hub MCP_SERVER=<name>` with the usual -f and -n.

use super::ctx::Ctx;
use anyhow::{bail, Context};
use clap::Args;
use std::path::Path;

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub name: String,
    /// Keep printing new entries
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the latest entries to show
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: u32,
}

pub fn logs(ctx: &Ctx, a: LogsArgs) -> anyhow::Result<bool> {
    let journal = ["/run/systemd/journal", "/var/log/journal"]
        .iter()
        .any(|d| Path::new(d).is_dir());
    let have_journalctl = std::process::Command::new("journalctl")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !journal || !have_journalctl {
        bail!(
            "no systemd journal on this machine{}: a hub not run by systemd logs to its stderr \
             (every line about {} carries mcp_server={}); look wherever that goes",
            if have_journalctl {
                ""
            } else {
                " (journalctl is not installed)"
            },
            a.name,
            a.name
        );
    }
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(["-u", "mcp-hub", "--no-pager", "-n"])
        .arg(a.lines.to_string())
        .arg(format!("MCP_SERVER={}", a.name));
    if a.follow {
        cmd.arg("-f");
    }
    if ctx.json() {
        cmd.args(["-o", "json"]);
    }
    let status = cmd.status().context("cannot run journalctl")?;
    Ok(status.success())
}
