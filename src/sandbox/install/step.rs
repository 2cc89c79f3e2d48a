//! One package manager run in the install sandbox: the host's network, write
//! and exec access to the install directory only, its own HOME inside it; a
//! time limit; stderr logged line by line and, on failure, its last
//! [`STDERR_LINES`] lines in the error.

use super::{InstallError, STDERR_LINES};
use crate::sandbox::{helper_command, profile, wait_ready_blocking};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one package manager run may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs package manager steps in the install sandbox.
pub(super) struct Stepper<'a> {
    pub server: &'a str,
    pub dir: &'a Path,
    pub home: &'a Path,
    pub cwd: Option<&'a Path>,
    /// Host paths the package manager reads (local packages).
    pub reads: Vec<PathBuf>,
    /// Host paths it executes besides the system's (a configured Python's prefix).
    pub execs: Vec<PathBuf>,
}

/// Lines that start a resolver's explanation of a dependency conflict (uv,
/// pip, npm), which the last lines of a long output may have cut off.
const RESOLVER_MARKERS: &[&str] = &[
    "No solution found",
    "ResolutionImpossible",
    "Cannot install",
    "conflicting dependencies",
    "ERESOLVE",
    "Could not resolve dependency",
];

/// The resolver's message in `lines`, from its first line on (at most
/// `STDERR_LINES`), when there is one.
pub(super) fn resolver_message(lines: &[String]) -> Option<Vec<String>> {
    let start = lines
        .iter()
        .position(|l| RESOLVER_MARKERS.iter().any(|m| l.contains(m)))?;
    Some(lines[start..].iter().take(STDERR_LINES).cloned().collect())
}

impl Stepper<'_> {
    /// Runs `argv`; returns its stdout when `capture`, else logs it.
    pub fn run(
        &self,
        argv: &[String],
        env: &BTreeMap<String, String>,
        capture: bool,
    ) -> Result<String, InstallError> {
        let shown = argv
            .iter()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let what = format!("`{shown}`");
        let profile = profile::Profile {
            read: self.reads.clone(),
            write: vec![self.dir.to_path_buf()],
            exec: std::iter::once(self.dir.to_path_buf())
                .chain(self.execs.iter().cloned())
                .collect(),
            ..profile::Profile::default()
        };
        let (uid, gid) = profile::run_as();
        let default_path = profile::inherited_path();
        let spec = profile::build(
            &profile,
            &profile::Request {
                server: &format!("{}-install", self.server),
                command: &argv[0],
                args: &argv[1..],
                env,
                cwd: self.cwd,
                default_path: &default_path,
                home: self.home,
                cgroup: None,
                parent_pid: std::process::id(),
                uid,
                gid,
            },
        )
        .map_err(|e| InstallError::Result(format!("{what}: {e}")))?;
        let (mut cmd, status) = helper_command(&spec)?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| InstallError::Sandbox(format!("{what}: spawn: {e}")))?;
        drop(cmd);
        wait_ready_blocking(status)?;
        let pid = child.id();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d2 = done.clone();
        // A hung package manager must not hold a server's start forever.
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + STEP_TIMEOUT;
            while std::time::Instant::now() < end {
                if d2.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        });
        let out = child.wait_with_output();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let out = out.map_err(|e| InstallError::Sandbox(format!("{what}: wait: {e}")))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(target: "mcp_hub::install", mcp_server = %self.server, "{line}");
        }
        if !out.status.success() {
            let lines: Vec<String> = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            let tail = lines[lines.len().saturating_sub(STDERR_LINES)..].to_vec();
            // A conflict's explanation is shown whole even when more output
            // followed it and the tail lost its start.
            let resolver = resolver_message(&lines).filter(|r| !tail.contains(&r[0]));
            return Err(InstallError::Step {
                what,
                status: out.status.to_string(),
                resolver,
                stderr: tail,
            });
        }
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !capture {
            for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
                tracing::debug!(target: "mcp_hub::install", mcp_server = %self.server, "{line}");
            }
        }
        Ok(stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_conflict_is_shown_whole_with_the_fix() {
        let mut lines: Vec<String> = vec!["Using Python 3.11".into()];
        lines.push("  × No solution found when resolving dependencies:".into());
        lines.push("  ╰─▶ Because a depends on b>=5 and you require b<5 …".into());
        lines.extend((0..30).map(|i| format!("noise {i}")));
        let r = resolver_message(&lines).unwrap();
        assert!(r[0].contains("No solution found") && r.len() == STDERR_LINES);
        let tail = lines[lines.len() - STDERR_LINES..].to_vec();
        let e = InstallError::Step {
            what: "`uv pip install`".into(),
            status: "exit status: 1".into(),
            resolver: Some(r),
            stderr: tail,
        }
        .to_string();
        assert!(
            e.contains("install.overrides") && e.contains("the resolver said:"),
            "{e}"
        );
        assert!(
            e.contains("Because a depends on b>=5") && e.contains("noise 29"),
            "{e}"
        );
        assert!(resolver_message(&["all fine".to_string()]).is_none());
    }
}
