//! Making a running hub read its config again after a command changed it.
//!
//! In order: an explicit `--pid-file` gets SIGHUP; else, when systemd runs
//! the `mcp-hub` unit, `systemctl reload mcp-hub` (the unit's ExecReload sends
//! SIGHUP); else the pid in `$RUNTIME_DIRECTORY/mcp-hub.pid` gets SIGHUP. No
//! running hub is not an error: a socket-activated hub reads the new config
//! when it next starts.

use super::ctx::Ctx;
use crate::systemd::pidfile;
use std::path::Path;

#[derive(Debug)]
pub enum Reloaded {
    Systemd,
    Signal(i32),
    /// Why nothing was reloaded.
    NotRunning(String),
}

impl Reloaded {
    pub fn describe(&self) -> String {
        match self {
            Reloaded::Systemd => "reloaded (systemctl reload mcp-hub)".into(),
            Reloaded::Signal(pid) => format!("reloaded (SIGHUP to pid {pid})"),
            Reloaded::NotRunning(why) => {
                format!("no running hub to reload ({why}); it reads the change when it starts")
            }
        }
    }

    pub fn running(&self) -> bool {
        !matches!(self, Reloaded::NotRunning(_))
    }
}

const UNIT: &str = "mcp-hub.service";

fn systemd_active() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", UNIT])
            .status()
            .is_ok_and(|s| s.success())
}

fn hup(pid: i32) -> anyhow::Result<Reloaded> {
    use nix::sys::signal::{kill, Signal};
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP)
        .map_err(|e| anyhow::anyhow!("cannot send SIGHUP to the hub (pid {pid}): {e}"))?;
    Ok(Reloaded::Signal(pid))
}

pub fn reload(ctx: &Ctx) -> anyhow::Result<Reloaded> {
    if let Some(p) = &ctx.g.pid_file {
        return match pidfile::read_live(p) {
            Ok(pid) => hup(pid),
            Err(why) => Ok(Reloaded::NotRunning(why)),
        };
    }
    if systemd_active() {
        let out = std::process::Command::new("systemctl")
            .args(["reload", UNIT])
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run systemctl: {e}"))?;
        if !out.status.success() {
            anyhow::bail!(
                "systemctl reload {UNIT} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        return Ok(Reloaded::Systemd);
    }
    let Some(p) = pidfile::path(None) else {
        let why = if Path::new("/run/systemd/system").is_dir() {
            format!("{UNIT} is not active, and no --pid-file")
        } else {
            "no systemd, no --pid-file and no $RUNTIME_DIRECTORY".into()
        };
        return Ok(Reloaded::NotRunning(why));
    };
    match pidfile::read_live(&p) {
        Ok(pid) => hup(pid),
        Err(why) => Ok(Reloaded::NotRunning(why)),
    }
}
