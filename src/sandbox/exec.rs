//! The helper stage: `mcp-hub sandbox-exec`, run by the hub for every sandboxed
//! server, before any runtime or thread exists. It reads a [`Spec`] from fd 3,
//! builds the sandbox step by step and execs the server. A failing step is
//! written to fd 4 (close-on-exec, so the hub reads EOF when the exec succeeds)
//! as `step: what failed: errno`, and the helper exits 127.
//!
//! Three processes, as in bubblewrap:
//! - the *outer* process stays in the hub's pid namespace, so the hub has a
//!   child to wait for; it relays the exit status and dies with the hub;
//! - *init* is pid 1 of the new pid namespace: it builds the mount tree (a
//!   fresh /proc must be mounted from inside the namespace), then reaps; when it
//!   exits the kernel kills everything left in the namespace;
//! - the *server* drops every privilege and execs the configured command.
//!
//! The order of the steps matters and each carries its reason.

#![allow(unsafe_code)]

use super::seccomp;
use super::spec::{MountKind, Spec};
use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use mounts::build_root;
use nix::errno::Errno;
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Gid, Pid, Uid};
use std::ffi::CString;
use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;

mod mounts;

pub const SPEC_FD: i32 = 3;
pub const STATUS_FD: i32 = 4;

/// A failed step: which one, and why.
#[derive(Debug)]
pub struct StepError {
    pub step: &'static str,
    pub msg: String,
}

impl Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.msg)
    }
}

fn fail(step: &'static str, msg: impl Display) -> StepError {
    StepError {
        step,
        msg: msg.to_string(),
    }
}

/// `.map_err(at("mount", "/proc"))` → `mount: /proc: EPERM: Operation not permitted`.
fn at<E: Display>(step: &'static str, what: impl Display) -> impl FnOnce(E) -> StepError {
    move |e| fail(step, format!("{what}: {e}"))
}

type Step<T = ()> = Result<T, StepError>;

/// Entry point of `mcp-hub sandbox-exec`. Never returns.
pub fn main() -> ! {
    // SAFETY: the hub maps the status pipe's write end to fd 4 for this process
    // (command-fds); nothing else here owns that descriptor.
    let status = unsafe { File::from_raw_fd(STATUS_FD) };
    let _ = nix::fcntl::fcntl(
        &status,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    finish(read_spec().and_then(|spec| outer(spec, &status)), &status)
}

/// Ends a helper process: with the exit code it relays, or with its failed
/// step written to the status pipe and 127.
fn finish(result: Step<i32>, status: &File) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let _ = (&*status).write_all(e.to_string().as_bytes());
            std::process::exit(127)
        }
    }
}

fn read_spec() -> Step<Spec> {
    // SAFETY: the hub maps the spec pipe's read end to fd 3 for this process.
    let mut f = unsafe { File::from_raw_fd(SPEC_FD) };
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(at("spec", "read fd 3"))?;
    serde_json::from_slice(&text).map_err(at("spec", "parse"))
}

/// The outer process: everything up to the pid namespace, then a waiting parent.
fn outer(spec: Spec, status: &File) -> Step<i32> {
    // Die with the hub. If the hub is already gone, the prctl came too late.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(at("die-with-parent", "prctl"))?;
    if nix::unistd::getppid().as_raw() as u32 != spec.parent_pid {
        return Err(fail("die-with-parent", "the hub exited"));
    }
    // Join the cgroup first, so everything forked below is counted.
    if let Some(cg) = &spec.cgroup {
        std::fs::write(cg.join("cgroup.procs"), "0")
            .map_err(at("cgroup", cg.join("cgroup.procs").display()))?;
    }
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if spec.private_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let me = Uid::current();
    if me.as_raw() == spec.uid {
        // Unprivileged: the process may map only its own ids, inside the
        // namespace it just made. The same ids inside as outside, so files the
        // server writes belong to its user on the host too.
        unshare(flags).map_err(at("unshare", "user, mount, pid, ipc, uts namespaces"))?;
        std::fs::write("/proc/self/setgroups", "deny").map_err(at("uid/gid maps", "setgroups"))?;
        let (uid, gid) = (spec.uid, spec.gid);
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))
            .map_err(at("uid/gid maps", "uid_map"))?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
            .map_err(at("uid/gid maps", "gid_map"))?;
        return in_namespaces(&spec, status);
    }
    // Root, for a server that runs as nobody: root inside (mapped to root) builds
    // the sandbox with root's access to the host's files, and the server
    // switches to nobody at the end. A two-line map must be written from the
    // parent namespace, so a child unshares and this process maps it.
    nix::unistd::setgroups(&[]).map_err(at("setgroups", "drop root's supplementary groups"))?;
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(at("uid/gid maps", "pipe"))?;
    let (go_r, go_w) = nix::unistd::pipe().map_err(at("uid/gid maps", "pipe"))?;
    // SAFETY: single-threaded, as below.
    match unsafe { fork() }.map_err(at("unshare", "fork"))? {
        ForkResult::Child => {
            drop((ready_r, go_w));
            let run = || -> Step<i32> {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(at("die-with-parent", "prctl"))?;
                unshare(flags).map_err(at("unshare", "user, mount, pid, ipc, uts namespaces"))?;
                File::from(ready_w)
                    .write_all(b"u")
                    .map_err(at("uid/gid maps", "sync"))?;
                let mut b = [0u8; 1];
                let n = File::from(go_r)
                    .read(&mut b)
                    .map_err(at("uid/gid maps", "sync"))?;
                if n != 1 {
                    return Err(fail("uid/gid maps", "the parent could not write them"));
                }
                in_namespaces(&spec, status)
            };
            finish(run(), status)
        }
        ForkResult::Parent { child } => {
            drop((ready_w, go_r));
            let mut b = [0u8; 1];
            if File::from(ready_r).read(&mut b).unwrap_or(0) == 1 {
                let (uid, gid) = (spec.uid, spec.gid);
                let map = |file: &str, outer: u32, target: u32| {
                    std::fs::write(
                        format!("/proc/{child}/{file}"),
                        format!("{outer} {outer} 1\n{target} {target} 1"),
                    )
                    .map_err(at("uid/gid maps", file.to_string()))
                };
                map("uid_map", me.as_raw(), uid)?;
                map("gid_map", Gid::current().as_raw(), gid)?;
                File::from(go_w)
                    .write_all(b"g")
                    .map_err(at("uid/gid maps", "sync"))?;
            }
            Ok(relay(child))
        }
    }
}

/// In the new namespaces: forks pid 1 and relays its exit.
fn in_namespaces(spec: &Spec, status: &File) -> Step<i32> {
    // SAFETY: this process is single-threaded (the helper starts no threads), so
    // the child may do anything the parent could.
    match unsafe { fork() }.map_err(at("pid 1", "fork"))? {
        ForkResult::Child => finish(init(spec, status), status),
        ForkResult::Parent { child } => Ok(relay(child)),
    }
}

/// A parent that only waits: lets go of stdio and the status pipe, ignores the
/// polite stop signals (the server gets them too, through the process group)
/// and exits the way `child` did.
fn relay(child: Pid) -> i32 {
    // The hub must see EOF the moment the server exits, not when this process
    // does; the status pipe must close with the server's exec. (`main` never
    // drops its File for fd 4: it ends in process::exit.)
    let _ = nix::unistd::close(0);
    let _ = nix::unistd::close(1);
    let _ = nix::unistd::close(STATUS_FD);
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    let code = wait_for(child);
    if (129..=128 + 64).contains(&code) {
        // init cannot die by a signal; it reports one as 128+n, and this
        // process passes it on as the real thing, so the hub says "killed by
        // signal 9", not "exited with status 137".
        if let Ok(sig) = Signal::try_from(code - 128) {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
            let _ = nix::sys::signal::raise(sig);
        }
    }
    code
}

/// Waits for `pid`, reaping anything else that exits meanwhile, and returns its
/// exit code the way a shell reports it.
fn wait_for(pid: Pid) -> i32 {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return code,
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return 128 + sig as i32,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(_) => return 127,
        }
    }
}

/// pid 1 of the new pid namespace: builds the file system, forks the server and
/// reaps until it exits.
fn init(spec: &Spec, status: &File) -> Step<i32> {
    // The parent is now the outer process; if it is killed, so is this one, and
    // with pid 1 gone the kernel kills the whole namespace.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(at("die-with-parent", "prctl"))?;
    build_root(spec)?;
    let _ = nix::unistd::sethostname(format!("mcp-{}", spec.server));
    if spec.private_network {
        lo_up()?;
    }
    // SAFETY: single-threaded, as above.
    match unsafe { fork() }.map_err(at("fork", "server"))? {
        ForkResult::Child => {
            // `server` only returns if the exec failed.
            finish(server(spec).map(|never| match never {}), status)
        }
        ForkResult::Parent { child } => {
            let _ = nix::unistd::close(0);
            let _ = nix::unistd::close(1);
            let _ = nix::unistd::close(STATUS_FD);
            Ok(wait_for(child))
        }
    }
}

/// Brings up `lo` in the new network namespace, so the server can still talk to
/// itself over 127.0.0.1.
fn lo_up() -> Step {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(at("lo up", "socket"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads an ifreq, which `ifr` is, for the whole call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) };
    Errno::result(rc).map_err(at("lo up", "SIOCSIFFLAGS"))?;
    Ok(())
}

/// The server process: drop everything, then exec.
fn server(spec: &Spec) -> Step<std::convert::Infallible> {
    use nix::sys::resource::{setrlimit, Resource};
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(at("rlimits", "RLIMIT_CORE"))?;
    if let Some(n) = spec.nproc {
        setrlimit(Resource::RLIMIT_NPROC, n, n).map_err(at("rlimits", "RLIMIT_NPROC"))?;
    }
    drop_privileges(Uid::from_raw(spec.uid), Gid::from_raw(spec.gid))?;
    // Everything but stdio is closed at exec; the status pipe too, which is how
    // the hub learns the exec worked.
    // SAFETY: close_range only marks descriptors of this process close-on-exec.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32) };
    Errno::result(rc).map_err(at("close fds", "close_range"))?;
    nix::sys::prctl::set_no_new_privs().map_err(at("no_new_privs", "prctl"))?;
    landlock(spec)?;
    seccomp::install().map_err(|e| fail("seccomp", e))?;

    let program = CString::new(spec.program.as_os_str().as_bytes())
        .map_err(at("exec", "program path has a NUL"))?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(at("exec", "an argument has a NUL"))?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<_, _>>()
        .map_err(at("exec", "an environment variable has a NUL"))?;
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: restoring the default disposition installs no handler code.
        let _ = unsafe { signal(s, SigHandler::SigDfl) };
    }
    let e = nix::unistd::execve(&program, &argv, &env).unwrap_err();
    Err(fail("exec", format!("{}: {e}", spec.program.display())))
}

/// Capabilities: the bounding set first (it caps what any later exec can gain,
/// which is what makes uid 0 inside harmless), then securebits so root gets no
/// special treatment at exec, then the ids, then the remaining sets.
fn drop_privileges(uid: Uid, gid: Gid) -> Step {
    use caps::CapSet;
    for cap in caps::all() {
        match caps::drop(None, CapSet::Bounding, cap) {
            Ok(()) => {}
            // A capability newer than the running kernel.
            Err(_) if !caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) => {}
            Err(e) => return Err(fail("drop caps", format!("bounding {cap}: {e}"))),
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(at("drop caps", "ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(at("drop caps", "inheritable"))?;
    // SECBIT_NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each locked.
    const SECBITS: libc::c_ulong = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;
    // SAFETY: PR_SET_SECUREBITS takes an integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBITS, 0, 0, 0) };
    Errno::result(rc).map_err(at("drop caps", "securebits"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(at("switch user", "setresgid"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(at("switch user", "setresuid"))?;
    caps::clear(None, CapSet::Effective).map_err(at("drop caps", "effective"))?;
    caps::clear(None, CapSet::Permitted).map_err(at("drop caps", "permitted"))?;
    Ok(())
}

/// The kernel's Landlock ABI version; 0 when Landlock is unavailable.
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attr and size 0 and the VERSION flag, the call only
    // returns a number and touches no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0) as i32
}

/// Landlock mirrors the mount tree (defense in depth if a mount is ever too
/// wide) and adds what mounts cannot say: exec only where `exec` is set, TCP
/// port rules, and no abstract unix sockets or signals beyond the sandbox.
fn landlock(spec: &Spec) -> Step {
    let abi = landlock_abi();
    if abi < 1 {
        return Err(fail(
            "landlock",
            format!("kernel ABI {abi}, profile requires >= 1"),
        ));
    }
    let wants_net = spec.connect.is_some() || spec.bind.is_some();
    if wants_net && abi < 4 {
        return Err(fail(
            "landlock",
            format!("kernel ABI {abi}, profile requires >= 4 for connect/bind port rules"),
        ));
    }
    let target = ABI::V6;
    let all = AccessFs::from_all(target);
    let read = AccessFs::from_read(target) & !AccessFs::Execute;
    let write = all & !AccessFs::Execute;
    let l = |e: landlock::RulesetError| fail("landlock", e);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(l)?;
    if spec.connect.is_some() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp).map_err(l)?;
    }
    if spec.bind.is_some() {
        ruleset = ruleset.handle_access(AccessNet::BindTcp).map_err(l)?;
    }
    if abi >= 6 {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(l)?;
    }
    let mut created = ruleset.create().map_err(l)?;
    for m in &spec.mounts {
        let access = match m.kind {
            MountKind::Bind { write: w, exec } => {
                let base = if w { write } else { read };
                if exec {
                    base | AccessFs::Execute
                } else {
                    base
                }
            }
            MountKind::Tmpfs | MountKind::Dev => write,
            MountKind::Proc => read,
            MountKind::Symlink { .. } => continue,
        };
        let fd = PathFd::new(&m.path).map_err(at("landlock", m.path.display()))?;
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(at("landlock", m.path.display()))?;
    }
    for (ports, access) in [
        (&spec.connect, AccessNet::ConnectTcp),
        (&spec.bind, AccessNet::BindTcp),
    ] {
        for p in ports.iter().flatten() {
            created = created
                .add_rule(NetPort::new(*p, access))
                .map_err(at("landlock", format!("port {p}")))?;
        }
    }
    created.restrict_self().map_err(l)?;
    Ok(())
}
