//! The sandbox every stdio server runs in, instead of a bridge container.
//!
//! The tokio process never forks by hand: it prepares a [`spec::Spec`], writes
//! it to a pipe and spawns `/proc/self/exe sandbox-exec` with that pipe as fd 3
//! and a status pipe as fd 4 ([`prepare`]). The helper ([`exec`]) builds the
//! sandbox in a fixed order and execs the server; [`wait_ready`] turns a setup
//! failure it reports into an error naming the step.
//!
//! - `profile`: the `sandbox` config key and the defaults → spec
//! - `exec`: the helper stage (namespaces, mounts, capabilities, Landlock, seccomp)
//! - `seccomp`: the deny-list
//! - `cgroup`: memory/pids/cpu limits under a delegated cgroup
//! - `browser`: what `"browser": true` adds for Chromium-based servers
//! - `probe`: what this host can enforce, for `doctor` and `/status`
//! - `grant`: whether granted paths are usable by the servers' user, and the setfacl fix
//! - `size`: sizes as systemd reads them (`memoryMax`)
//! - `runner`, `install`: package-runner servers (npx, uvx, pipx run) installed
//!   ahead of their first start, run read-only from `<stateDir>/<name>/pkg`

mod browser;
pub mod cgroup;
pub mod exec;
pub mod grant;
pub mod install;
pub mod probe;
pub mod profile;
pub mod runner;
mod seccomp;
/// Sizes as systemd reads them; parsed with the config.
pub use crate::config::size;
pub mod spec;
pub mod upgrade;

use command_fds::{CommandFdExt, FdMapping};
use profile::Profile;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The hidden subcommand that runs [`exec::main`].
pub const HELPER_ARG: &str = "sandbox-exec";

/// How long the helper may take to build the sandbox and exec.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox: {0}")]
    Build(#[from] profile::BuildError),
    #[error("sandbox: state directory {0}: {1}")]
    Home(String, std::io::Error),
    #[error("sandbox: cgroup: {0}")]
    Cgroup(String),
    #[error("sandbox: limits are required (limitsRequired) but {0}")]
    LimitsRequired(String),
    #[error("sandbox: {0}")]
    Setup(String),
    #[error("sandbox: install: {0}")]
    Install(#[from] install::InstallError),
}

/// A spawned-to-be helper: the command, the read end of its status pipe and
/// the sub-cgroup it joins (kept until the child is gone).
pub struct Prepared {
    pub command: std::process::Command,
    pub status: OwnedFd,
    pub group: Option<cgroup::Group>,
}

/// Prepares one start of a sandboxed server: a package-runner server
/// (`npx`, `uvx`…) is installed first when it is not yet (off the runtime's
/// threads: that can take minutes) and then runs from its install; any other
/// command is prepared as it is.
pub async fn prepare_start(
    server: &str,
    start: &crate::config::StdioSpec,
    profile: &Profile,
) -> Result<Prepared, SandboxError> {
    let Some(pkg) = install::package_of(start) else {
        return prepare(server, start, profile);
    };
    let pkg = pkg.map_err(|e| SandboxError::Install(install::InstallError::Runner(e)))?;
    let (name, spec) = (server.to_string(), start.clone());
    let ready = tokio::task::spawn_blocking(move || install::ensure(&name, &spec, &pkg))
        .await
        .map_err(|e| SandboxError::Setup(format!("install task: {e}")))??;
    prepare_installed(server, start, profile, Some(&ready))
}

/// Prepares the helper command for one start of a sandboxed server. Blocking
/// file-system work, but little of it (a few stats, one small pipe write).
pub fn prepare(
    server: &str,
    start: &crate::config::StdioSpec,
    profile: &Profile,
) -> Result<Prepared, SandboxError> {
    prepare_installed(server, start, profile, None)
}

/// [`prepare`], running an installed package when `ready` says so: its
/// program, from `pkg/` bound read-only and executable.
pub fn prepare_installed(
    server: &str,
    start: &crate::config::StdioSpec,
    profile: &Profile,
    ready: Option<&install::Ready>,
) -> Result<Prepared, SandboxError> {
    let (uid, gid) = profile::run_as();
    let home_err = |e| SandboxError::Home(start.home.display().to_string(), e);
    std::fs::create_dir_all(&start.home).map_err(home_err)?;
    if nix::unistd::getuid().is_root() {
        // A root hub's servers run as nobody, who must own its HOME.
        std::os::unix::fs::chown(&start.home, Some(uid), Some(gid)).map_err(home_err)?;
    }
    let group = match cgroup::state() {
        cgroup::State::Delegated { dir } => Some(
            cgroup::Group::create(dir, server, &profile.limits).map_err(SandboxError::Cgroup)?,
        ),
        cgroup::State::NotEnforced(why) => {
            if profile.limits.required && profile.limits.needs_cgroup() {
                return Err(SandboxError::LimitsRequired(why.clone()));
            }
            None
        }
    };
    let default_path = profile::inherited_path();
    let mut with_pkg;
    let (profile, command, args) = match ready {
        Some(r) => {
            with_pkg = profile.clone();
            with_pkg.exec.push(r.pkg.clone());
            (&with_pkg, r.program.display().to_string(), &r.args)
        }
        None => (profile, start.command.clone(), &start.args),
    };
    let spec = profile::build(
        profile,
        &profile::Request {
            server,
            command: &command,
            args,
            env: &start.env,
            cwd: start.cwd.as_deref(),
            default_path: &default_path,
            home: &start.home,
            cgroup: group.as_ref().map(|g| g.dir.clone()),
            parent_pid: std::process::id(),
            uid,
            gid,
        },
    )?;
    let (command, status) = helper_command(&spec)?;
    Ok(Prepared {
        command,
        status,
        group,
    })
}

/// The helper command with the spec on fd 3 and the status pipe on fd 4.
pub fn helper_command(spec: &spec::Spec) -> Result<(std::process::Command, OwnedFd), SandboxError> {
    use nix::fcntl::OFlag;
    let io = |what: &str, e: &dyn std::fmt::Display| SandboxError::Setup(format!("{what}: {e}"));
    let json = serde_json::to_vec(spec).map_err(|e| io("spec", &e))?;
    let (spec_r, spec_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("pipe", &e))?;
    // A pipe holds 64 KiB: the whole spec is written before the helper exists,
    // so nothing can block on it.
    if json.len() > 60 * 1024 {
        return Err(io("spec", &format!("{} bytes is too large", json.len())));
    }
    std::fs::File::from(spec_w)
        .write_all(&json)
        .map_err(|e| io("spec pipe", &e))?;
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("pipe", &e))?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(HELPER_ARG);
    cmd.env_clear();
    cmd.fd_mappings(vec![
        FdMapping {
            parent_fd: spec_r,
            child_fd: exec::SPEC_FD,
        },
        FdMapping {
            parent_fd: status_w,
            child_fd: exec::STATUS_FD,
        },
    ])
    .map_err(|e| io("fd mapping", &e))?;
    Ok((cmd, status_r))
}

/// Waits for the helper's verdict: EOF on the status pipe means the server was
/// exec'd; text is the failed step.
pub async fn wait_ready(status: OwnedFd) -> Result<(), SandboxError> {
    let read = tokio::task::spawn_blocking(move || wait_ready_blocking(status));
    match tokio::time::timeout(SETUP_TIMEOUT, read).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(e)) => Err(SandboxError::Setup(format!("status pipe: {e}"))),
        Err(_) => Err(SandboxError::Setup(format!(
            "the helper did not finish within {SETUP_TIMEOUT:?}"
        ))),
    }
}

/// A blocking [`wait_ready`], for `doctor`.
pub fn wait_ready_blocking(status: OwnedFd) -> Result<(), SandboxError> {
    let mut text = String::new();
    std::fs::File::from(status)
        .read_to_string(&mut text)
        .map_err(|e| SandboxError::Setup(format!("status pipe: {e}")))?;
    if text.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::Setup(text))
    }
}

/// Makes an unsandboxed child die with the hub (`PR_SET_PDEATHSIG`): it has
/// no pid namespace whose init could take it down, and a crashed hub would
/// otherwise leave it running. Its own forks share its process group, which
/// every stop signals.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    let hub = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // two async-signal-safe system calls (prctl, getppid); it allocates
    // nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // The hub died between fork and prctl: the signal would never come.
            if nix::unistd::getppid() != hub {
                return Err(std::io::Error::other("the hub exited during spawn"));
            }
            Ok(())
        });
    }
}
