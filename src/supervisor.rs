//! Per-server bookkeeping that outlives any one upstream: restart counts,
//! the last error, the live pid, open sessions and children, the restart
//! backoff; and the graceful stop of a child's whole process group.
//!
//! The lifecycle itself (which state an upstream is in) is the link's
//! (`upstream::link`); this only counts. Backoff doubles from 1 s to 60 s and
//! resets after a run of [`STABLE_RUN`]. Five crashes in a row without a
//! stable run count as a crash loop: the link shows `failed` and keeps
//! retrying at the longest interval.

use crate::config::ServerConfig;
use crate::metrics::RestartReason;
use crate::upstream::{self, ConnectError, Upstream};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const STABLE_RUN: Duration = Duration::from_secs(30);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const CRASH_LOOP: u32 = 5;
/// close stdin → wait → SIGTERM → wait → SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub pid: Option<u32>,
    pub restarts: u64,
    pub sessions: usize,
    pub children: usize,
    pub last_error: Option<String>,
    /// The last stderr lines of the child that last failed.
    pub last_stderr: Vec<String>,
    pub uptime_secs: Option<u64>,
}

struct Inner {
    pid: Option<u32>,
    restarts: u64,
    sessions: usize,
    children: usize,
    last_error: Option<String>,
    last_stderr: Vec<String>,
    started: Option<Instant>,
    ready: bool,
    crashes_in_a_row: u32,
    next_backoff: Duration,
}

pub struct Supervisor {
    pub name: String,
    inner: Mutex<Inner>,
}

impl Supervisor {
    pub fn new(name: &str) -> Supervisor {
        Supervisor {
            name: name.into(),
            inner: Mutex::new(Inner {
                pid: None,
                restarts: 0,
                sessions: 0,
                children: 0,
                last_error: None,
                last_stderr: Vec::new(),
                started: None,
                ready: false,
                crashes_in_a_row: 0,
                next_backoff: BACKOFF_START,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Snapshot {
        let i = self.lock();
        Snapshot {
            pid: i.pid,
            restarts: i.restarts,
            sessions: i.sessions,
            children: i.children,
            last_error: i.last_error.clone(),
            last_stderr: i.last_stderr.clone(),
            uptime_secs: i.started.filter(|_| i.ready).map(|s| s.elapsed().as_secs()),
        }
    }

    pub fn session_opened(&self) {
        self.lock().sessions += 1;
    }

    pub fn session_closed(&self) {
        let mut i = self.lock();
        i.sessions = i.sessions.saturating_sub(1);
    }

    /// Connects an upstream (spawns the child, or reaches the remote server).
    pub async fn start(&self, cfg: &ServerConfig) -> Result<Upstream, ConnectError> {
        let r = upstream::connect(
            &self.name,
            &cfg.upstream,
            cfg.init_timeout,
            cfg.request_timeout,
        )
        .await;
        self.record_start(r)
    }

    /// Counts a connection attempt made elsewhere (tests' in-memory upstreams).
    pub fn record_start(
        &self,
        r: Result<Upstream, ConnectError>,
    ) -> Result<Upstream, ConnectError> {
        let mut i = self.lock();
        match &r {
            Ok(up) => {
                i.children += 1;
                i.pid = up.pid();
                i.started.get_or_insert_with(Instant::now);
            }
            Err(e) => i.last_error = Some(e.to_string()),
        }
        drop(i);
        r
    }

    /// Keeps a failed child's last stderr lines for `/status`.
    pub async fn failed_with(&self, tail: Option<crate::upstream::StderrTail>) {
        let Some(tail) = tail else { return };
        let lines = tail.lines().await;
        if !lines.is_empty() {
            self.lock().last_stderr = lines;
        }
    }

    pub fn ready(&self) {
        self.lock().ready = true;
    }

    /// Records a crash or failed start: how long to wait before the next try,
    /// and whether this is a crash loop.
    pub fn crashed(&self, error: String) -> (Duration, bool) {
        let mut i = self.lock();
        let stable = i.ready && i.started.is_some_and(|s| s.elapsed() >= STABLE_RUN);
        if stable {
            i.crashes_in_a_row = 0;
            i.next_backoff = BACKOFF_START;
        }
        i.crashes_in_a_row += 1;
        i.restarts += 1;
        i.last_error = Some(error);
        let delay = i.next_backoff;
        i.next_backoff = (i.next_backoff * 2).min(BACKOFF_MAX);
        Self::gone(&mut i);
        (delay, i.crashes_in_a_row >= CRASH_LOOP)
    }

    /// A deliberate stop (idle, reload, shutdown): not a crash.
    pub fn stopped(&self) {
        Self::gone(&mut self.lock());
    }

    fn gone(i: &mut Inner) {
        i.children = i.children.saturating_sub(1);
        if i.children == 0 {
            i.pid = None;
            i.started = None;
            i.ready = false;
        }
    }
}

/// Stops an upstream. A child and everything in its process group: close
/// stdin, then SIGTERM, then SIGKILL, waiting [`STOP_GRACE`] between steps. A
/// remote session: DELETE it.
pub async fn stop_child(server: &str, up: Upstream) {
    stop_child_within(server, up, STOP_GRACE).await
}

/// [`stop_child`] waiting `grace` between steps (a shutdown with a short
/// `shutdownTimeout` fits the whole sequence into it).
pub async fn stop_child_within(server: &str, mut up: Upstream, grace: Duration) {
    up.tx.close().await;
    let Some(pgid) = up.pid().map(|p| Pid::from_raw(p as i32)) else {
        return;
    };
    if tokio::time::timeout(grace, up.exited()).await.is_ok() {
        // The leader exited; make sure nothing it forked outlives it.
        let _ = killpg(pgid, Signal::SIGKILL);
        return;
    }
    tracing::info!(mcp_server = %server, "child did not exit on stdin EOF; sending SIGTERM");
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, up.exited()).await.is_ok() {
        let _ = killpg(pgid, Signal::SIGKILL);
        return;
    }
    tracing::warn!(mcp_server = %server, "child ignored SIGTERM; sending SIGKILL");
    let _ = killpg(pgid, Signal::SIGKILL);
    if let Some(p) = up.process.as_mut() {
        let _ = p.child.kill().await;
    }
}

/// After an upstream ended, `exited` holding a child's status (or `None` when
/// its output closed): stops whatever is left and says what happened (how a
/// child ended, or the remote failure), and why as a restart reason. What is
/// said reaches clients, so a child's stderr is logged here, not said.
pub async fn reap_child(
    server: &str,
    mut up: Upstream,
    exited: Option<std::io::Result<std::process::ExitStatus>>,
) -> (String, RestartReason) {
    let last = up.last_error();
    if up.is_remote() {
        let why = last.unwrap_or_else(|| "the connection closed".into());
        return (why, RestartReason::Exit);
    }
    let mut reason = RestartReason::Exit;
    let status = match exited {
        Some(st) => Some(st),
        None => tokio::time::timeout(Duration::from_millis(500), up.exited())
            .await
            .ok(),
    };
    let why = match status {
        Some(st) => {
            if let Some(pg) = up.pid() {
                // Stragglers (a server's own children) must not outlive it.
                let _ = killpg(Pid::from_raw(pg as i32), Signal::SIGKILL);
            }
            let oom = up
                .process
                .as_ref()
                .and_then(|p| p.cgroup.as_ref())
                .is_some_and(|g| g.oom_kills() > 0);
            if oom {
                reason = RestartReason::Oom;
                format!(
                    "{} (out of memory: the sandbox's memoryMax)",
                    describe_exit(st)
                )
            } else {
                if exit_signal(&st).is_some() {
                    reason = RestartReason::Signal;
                }
                describe_exit(st)
            }
        }
        None => {
            stop_child(server, up).await;
            "closed its stdout but kept running".into()
        }
    };
    // The stderr line may hold anything the child printed (a password in a
    // failed connection string): it goes to the log and `/status`'s
    // `lastStderr`, never into `why`, which clients see in their errors.
    if let Some(line) = last {
        tracing::warn!(mcp_server = %server, "child {why}; its last stderr line: {line}");
    }
    (why, reason)
}

/// The signal that ended a child, if one did.
fn exit_signal(status: &std::io::Result<std::process::ExitStatus>) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.as_ref().ok().and_then(|s| s.signal())
}

/// Describes how a child ended, for logs and `/status`.
pub fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "exited".into(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_crash_loop_fails() {
        let s = Supervisor::new("x");
        let r: Vec<_> = (0..7).map(|_| s.crashed("boom".into())).collect();
        let delays: Vec<u64> = r.iter().map(|(d, _)| d.as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60]);
        let failed: Vec<bool> = r.iter().map(|(_, f)| *f).collect();
        assert_eq!(failed, vec![false, false, false, false, true, true, true]);
        let snap = s.snapshot();
        assert_eq!(snap.restarts, 7);
        assert_eq!(snap.last_error.as_deref(), Some("boom"));
    }
}
