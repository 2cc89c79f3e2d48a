//! The hub's pid file, so `mcp-hub add`/`remove`/… can send SIGHUP to a hub
//! that systemd does not run (under systemd they use `systemctl reload`).
//!
//! Where: `--pid-file` (or `MCP_HUB_PID_FILE`), else
//! `$RUNTIME_DIRECTORY/mcp-hub.pid` when systemd (or a wrapper) gave the hub a
//! runtime directory; otherwise the hub writes none. The file is replaced
//! atomically and removed on a clean stop, if it still names this process.

use std::path::{Path, PathBuf};

/// The pid file to use: the explicit one, else `$RUNTIME_DIRECTORY/mcp-hub.pid`.
pub fn path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.into());
    }
    let dir = std::env::var_os("RUNTIME_DIRECTORY")?;
    let first = dir.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| Path::new(&first).join("mcp-hub.pid"))
}

/// A pid file this process wrote; removed on drop.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's pid to `path` (temp file and rename).
    pub fn write(path: &Path) -> std::io::Result<PidFile> {
        let tmp = path.with_extension(format!("pid.tmp-{}", std::process::id()));
        std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        Ok(PidFile(path.into()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let mine = std::fs::read_to_string(&self.0)
            .is_ok_and(|t| t.trim() == std::process::id().to_string());
        if mine {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// The pid a pid file names, if that process is alive and is an mcp-hub
/// (a stale file's pid may have been reused by anything).
pub fn read_live(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{}: {:?} is not a pid", path.display(), text.trim()))?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).map_err(|_| {
        format!(
            "{}: process {pid} is not running (stale pid file)",
            path.display()
        )
    })?;
    if comm.trim() != "mcp-hub" {
        return Err(format!(
            "{}: process {pid} is {:?}, not mcp-hub (stale pid file)",
            path.display(),
            comm.trim()
        ));
    }
    Ok(pid)
}
