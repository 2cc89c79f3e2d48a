//! The sandbox, attacked from inside: the fixture's `probe` tool runs as a
//! sandboxed server through the hub's real spawn path and tries to escape in
//! every way the sandbox is meant to stop. Each attempt is its own test, once
//! with the hub running as root and once as an unprivileged user (created here
//! when the tests run as root, which CI does).
//!
//! Tests that need root say so loudly and fail when not root, unless
//! MCP_HUB_TEST_NO_ROOT=1 says the run is knowingly unprivileged.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USER: &str = "mcp-hub-probe";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Root,
    Unprivileged,
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The unprivileged user's ids, creating the user once if need be.
fn probe_user() -> (u32, u32) {
    if !is_root() {
        return (
            nix::unistd::Uid::current().as_raw(),
            nix::unistd::Gid::current().as_raw(),
        );
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if nix::unistd::User::from_name(USER).unwrap().is_none() {
            let st = std::process::Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .status()
                .expect("useradd");
            assert!(st.success(), "useradd {USER}");
        }
    });
    let u = nix::unistd::User::from_name(USER).unwrap().unwrap();
    (u.uid.as_raw(), u.gid.as_raw())
}

fn need_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("MCP_HUB_TEST_NO_ROOT").as_deref() == Ok("1") {
        eprintln!("SKIPPED (NOT ROOT): {what}: MCP_HUB_TEST_NO_ROOT=1");
        return false;
    }
    panic!("{what} needs root (CI runs as root); set MCP_HUB_TEST_NO_ROOT=1 to skip knowingly");
}

/// One sandbox scene: a hub with a probe server and a sibling, plus the host
/// files the probe must or must not reach.
struct Scene {
    hub: Hub,
    /// Everything here is world-readable on the host, so only the sandbox stops a read.
    _root: tempfile::TempDir,
    ro: PathBuf,
    rw: PathBuf,
    /// The probe's HOME (`<stateDir>/probe`); a pinned probe's install is in `pkg/`.
    home: PathBuf,
    secret: PathBuf,
    suid_dir: PathBuf,
    sibling_secret: PathBuf,
    allowed: std::net::TcpListener,
    denied: std::net::TcpListener,
    _abstract: std::os::unix::net::UnixListener,
    /// The hub's NOTIFY_SOCKET, and a host unix stream socket (journald's kind).
    _notify_sock: std::os::unix::net::UnixDatagram,
    _host_sock: std::os::unix::net::UnixListener,
    host_sock: PathBuf,
    /// The one port the probe may listen on (`bind`).
    bind_ok: u16,
    abstract_name: String,
    notify: PathBuf,
    tag: String,
    uid: u32,
}

fn mkdir(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.to_path_buf()
}

impl Scene {
    /// `extra` is merged into the probe's sandbox profile.
    async fn with(mode: Mode, extra: Value) -> (Scene, Mcp) {
        Self::build(mode, extra, false).await
    }

    /// The probe as a pinned package: an npm tarball of the fixture, started
    /// with `npx -y`, so the hub installs it into `<stateDir>/probe/pkg` first.
    async fn pinned(mode: Mode) -> (Scene, Mcp) {
        Self::build(mode, json!({}), true).await
    }

    async fn build(mode: Mode, extra: Value, pinned: bool) -> (Scene, Mcp) {
        let root = tempfile::tempdir().unwrap();
        let base = mkdir(root.path());
        let ro = mkdir(&base.join("ro"));
        std::fs::write(ro.join("file.txt"), "read me").unwrap();
        let rw = mkdir(&base.join("rw"));
        let secret = mkdir(&base.join("secret")).join("secret.txt");
        std::fs::write(&secret, "top secret").unwrap();
        let bin = mkdir(&base.join("bin"));
        // The binaries where the unprivileged user can reach them.
        let fixture = bin.join("mcp-fixture");
        let hub_copy = bin.join("mcp-hub");
        std::fs::copy(fixture_path(), &fixture).unwrap();
        std::fs::copy(hub_bin(), &hub_copy).unwrap();
        // A setuid-root copy of the fixture, to try to gain privileges with.
        let suid_dir = mkdir(&base.join("suid"));
        let suid = suid_dir.join("suid-fixture");
        std::fs::copy(fixture_path(), &suid).unwrap();
        if is_root() {
            std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
            std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755))
                .unwrap();
        }
        let (uid, gid) = match mode {
            // A root hub runs its servers as nobody.
            Mode::Root => (65534, 65534),
            Mode::Unprivileged => probe_user(),
        };
        std::os::unix::fs::chown(&rw, Some(uid), Some(gid)).unwrap_or_default();
        let state = mkdir(&base.join("state"));
        if mode == Mode::Unprivileged {
            std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap_or_default();
        }
        let sibling_secret = mkdir(&state.join("sibling")).join("secret.txt");
        std::fs::write(&sibling_secret, "sibling's").unwrap();
        std::os::unix::fs::chown(state.join("sibling"), Some(uid), Some(gid)).unwrap_or_default();

        let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let denied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let abstract_name = format!("mcp-hub-test-{}", std::process::id() as u64 * 1000 + rand());
        let abstract_sock = {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
                .unwrap();
            std::os::unix::net::UnixListener::bind_addr(&a).unwrap()
        };
        let notify = base.join("notify.sock");
        let notify_sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
        std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let host_sock = base.join("host.sock");
        let host_listener = std::os::unix::net::UnixListener::bind(&host_sock).unwrap();
        for p in [&notify, &host_sock] {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
        }
        let tag = format!("--tag=probe-{}", rand());
        let bind_ok = free_port();

        let mut profile = json!({
            "read": [ro],
            "write": [rw],
            "exec": [suid_dir],
            "connect": [allowed.local_addr().unwrap().port()],
            "bind": [bind_ok],
            "pidsMax": 32,
        });
        for (k, v) in extra.as_object().unwrap() {
            profile[k] = v.clone();
        }
        let fx_path = fixture.to_str().unwrap().to_string();
        let (command, args) = if pinned {
            (
                "npx".to_string(),
                json!(["-y", npm_tarball(&base), tag.clone()]),
            )
        } else {
            (fx_path.clone(), json!([tag.clone()]))
        };
        let servers = json!({
            "probe": {"command": command, "args": args, "env": {"CONFIGURED": "yes"}, "sandbox": profile},
            "sibling": {"command": fx_path, "env": {"SIBLING_SECRET": "hunter2"}},
        });
        let proxy = json!({"options": {"stateDir": state}});
        let notify_s = notify.to_str().unwrap().to_string();
        let env = [
            ("HUB_ONLY_SECRET", "must-not-leak"),
            ("NOTIFY_SOCKET", notify_s.as_str()),
            ("CREDENTIALS_DIRECTORY", base.to_str().unwrap()),
        ];
        let hub = match mode {
            Mode::Root => Hub::start_env(proxy, servers, &env),
            Mode::Unprivileged => {
                Hub::start_as(proxy, servers, &env, (uid, gid, hub_copy.to_str().unwrap()))
            }
        };
        let mut c = Mcp::new(&hub, "probe");
        c.initialize().await;
        let scene = Scene {
            hub,
            _root: root,
            ro,
            rw,
            home: state.join("probe"),
            secret,
            suid_dir,
            sibling_secret,
            allowed,
            denied,
            _abstract: abstract_sock,
            _notify_sock: notify_sock,
            _host_sock: host_listener,
            host_sock,
            bind_ok,
            abstract_name,
            notify,
            tag,
            uid,
        };
        (scene, c)
    }
}

/// An npm package of the fixture (`mcp-hub-probe` 1.2.3, bin `mcp-hub-probe`),
/// as a tarball npm installs without a registry.
fn npm_tarball(base: &Path) -> String {
    npm_tarball_version(base, "1.2.3")
}

fn npm_tarball_version(base: &Path, version: &str) -> String {
    let top = base.join(format!("npm-{version}"));
    let pkg = mkdir(&top.join("package"));
    std::fs::copy(fixture_path(), pkg.join("mcp-fixture")).unwrap();
    std::fs::write(
        pkg.join("package.json"),
        format!(r#"{{"name": "mcp-hub-probe", "version": "{version}", "bin": {{"mcp-hub-probe": "mcp-fixture"}}}}"#),
    )
    .unwrap();
    let tgz = base.join(format!("mcp-hub-probe-{version}.tgz"));
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&top)
        .arg("package")
        .status()
        .unwrap();
    assert!(st.success(), "tar");
    std::fs::set_permissions(&tgz, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    tgz.to_str().unwrap().to_string()
}

fn fixture_path() -> &'static str {
    fixture()
}

fn rand() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) % 1_000_000_000
}

async fn attempt(c: &mut Mcp, args: Value) -> Value {
    let text = c.call_text(rand(), "probe", args.clone()).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("probe {args}: {e}: {text}"))
}

async fn blocked(c: &mut Mcp, args: Value) {
    let r = attempt(c, args.clone()).await;
    assert_eq!(r["escaped"], false, "ESCAPED: {args} -> {r}");
}

async fn allowed(c: &mut Mcp, args: Value) {
    let r = attempt(c, args.clone()).await;
    assert_eq!(
        r["escaped"], true,
        "a control that must work failed: {args} -> {r}"
    );
}

macro_rules! both {
    ($name:ident, |$s:ident, $c:ident| $body:block) => {
        both!($name, json!({}), |$s, $c| $body);
    };
    ($name:ident, $extra:expr, |$s:ident, $c:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn run(mode: Mode) {
                #[allow(unused_mut, unused_variables)]
                let (mut $s, mut $c) = Scene::with(mode, $extra).await;
                $body
            }
            #[tokio::test]
            async fn as_root() {
                if need_root(concat!(stringify!($name), " as root")) {
                    run(Mode::Root).await
                }
            }
            #[tokio::test]
            async fn as_unprivileged_user() {
                run(Mode::Unprivileged).await
            }
        }
    };
}

// 1. Reading /etc/shadow, the hub's config and credentials, another server's state.
both!(e01_reads_of_secrets, |s, c| {
    allowed(
        &mut c,
        json!({"attempt": "read", "path": s.ro.join("file.txt")}),
    )
    .await;
    blocked(&mut c, json!({"attempt": "read", "path": "/etc/shadow"})).await;
    blocked(
        &mut c,
        json!({"attempt": "read", "path": s.hub.config_path}),
    )
    .await;
    blocked(&mut c, json!({"attempt": "read", "path": s.secret})).await;
    // The scene's directory exists inside only as scaffolding for the binds.
    blocked(
        &mut c,
        json!({"attempt": "list", "path": s.secret.parent().unwrap()}),
    )
    .await;
    blocked(&mut c, json!({"attempt": "read", "path": s.sibling_secret})).await;
    blocked(
        &mut c,
        json!({"attempt": "list", "path": s.sibling_secret.parent().unwrap()}),
    )
    .await;
});

// 2. Writing, truncating, unlinking or renaming in a read-only path.
both!(e02_writes_to_read_only_paths, |s, c| {
    let file = s.ro.join("file.txt");
    allowed(&mut c, json!({"attempt": "create", "path": s.rw})).await;
    blocked(&mut c, json!({"attempt": "create", "path": s.ro})).await;
    blocked(&mut c, json!({"attempt": "write", "path": file})).await;
    blocked(&mut c, json!({"attempt": "truncate", "path": file})).await;
    blocked(&mut c, json!({"attempt": "unlink", "path": file})).await;
    blocked(&mut c, json!({"attempt": "rename", "path": file})).await;
    blocked(&mut c, json!({"attempt": "create", "path": "/usr/lib"})).await;
    blocked(&mut c, json!({"attempt": "create", "path": "/"})).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "read me");
});

// 3. Hidden files through a symlink or hardlink made in the write dir.
both!(e03_links_to_hidden_files, |s, c| {
    blocked(
        &mut c,
        json!({"attempt": "symlink", "path": s.rw, "target": "/etc/shadow"}),
    )
    .await;
    blocked(
        &mut c,
        json!({"attempt": "symlink", "path": s.rw, "target": s.secret}),
    )
    .await;
    blocked(
        &mut c,
        json!({"attempt": "hardlink", "path": s.rw, "target": "/etc/shadow"}),
    )
    .await;
    blocked(
        &mut c,
        json!({"attempt": "hardlink", "path": s.rw, "target": s.secret}),
    )
    .await;
    blocked(
        &mut c,
        json!({"attempt": "hardlink", "path": s.rw, "target": s.ro.join("file.txt")}),
    )
    .await;
});

// 4. Executing a file dropped into the write dir, HOME, /tmp or /dev/shm, or
// mapping one executable (what loading a dropped library does).
both!(e04_exec_of_dropped_files, |s, c| {
    blocked(&mut c, json!({"attempt": "exec-dropped", "path": s.rw})).await;
    blocked(&mut c, json!({"attempt": "exec-dropped", "path": s.home})).await;
    for dir in [
        s.rw.to_str().unwrap(),
        s.home.to_str().unwrap(),
        "/tmp",
        "/dev/shm",
    ] {
        blocked(&mut c, json!({"attempt": "mmap-exec", "path": dir})).await;
    }
    // Control: the server's own binary maps and runs.
    allowed(
        &mut c,
        json!({"attempt": "mmap-exec", "path": "", "file": "/proc/self/exe"}),
    )
    .await;
    blocked(&mut c, json!({"attempt": "exec-dropped", "path": "/tmp"})).await;
    blocked(
        &mut c,
        json!({"attempt": "exec-dropped", "path": "/dev/shm"}),
    )
    .await;
});

macro_rules! pinned {
    ($name:ident, |$s:ident, $c:ident| $body:block) => {
        mod $name {
            use super::*;
            async fn run(mode: Mode) {
                #[allow(unused_mut, unused_variables)]
                let (mut $s, mut $c) = Scene::pinned(mode).await;
                $body
            }
            #[tokio::test]
            async fn as_root() {
                if need_root(concat!(stringify!($name), " as root")) {
                    run(Mode::Root).await
                }
            }
            #[tokio::test]
            async fn as_unprivileged_user() {
                run(Mode::Unprivileged).await
            }
        }
    };
}

// 4b. A pinned package (npx, installed by the hub before its first start)
// runs from its read-only install; nothing it can write can be executed.
pinned!(e04b_pinned_package_executes_nothing_it_writes, |s, c| {
    let pkg = s.home.join("pkg");
    let record: Value =
        serde_json::from_slice(&std::fs::read(pkg.join(".mcp-hub-install.json")).unwrap()).unwrap();
    assert_eq!(record["current"]["package"], "mcp-hub-probe", "{record}");
    assert_eq!(record["current"]["version"], "1.2.3", "{record}");
    assert_eq!(
        record["current"]["lockfileSha256"].as_str().unwrap().len(),
        64,
        "{record}"
    );
    let dir = pkg.join(record["current"]["dir"].as_str().unwrap());
    let installed = dir.join("node_modules/mcp-hub-probe/mcp-fixture");
    // Controls: the pinned server runs, and its install executes and maps.
    assert_eq!(
        c.call_text(2, "echo", json!({"text": "pinned"})).await,
        "pinned"
    );
    let r = attempt(
        &mut c,
        json!({"attempt": "exec", "path": installed, "args": ["--print-ids"]}),
    )
    .await;
    assert_eq!(r["escaped"], true, "the install executes: {r}");
    allowed(
        &mut c,
        json!({"attempt": "mmap-exec", "path": "", "file": installed}),
    )
    .await;
    // Nothing written executes: HOME, /tmp, a write dir, /dev/shm.
    for dir in [
        s.home.to_str().unwrap(),
        "/tmp",
        s.rw.to_str().unwrap(),
        "/dev/shm",
    ] {
        blocked(&mut c, json!({"attempt": "exec-dropped", "path": dir})).await;
        blocked(&mut c, json!({"attempt": "mmap-exec", "path": dir})).await;
    }
    // And the install cannot be changed from inside.
    blocked(&mut c, json!({"attempt": "create", "path": pkg})).await;
    blocked(&mut c, json!({"attempt": "create", "path": dir})).await;
    blocked(
        &mut c,
        json!({"attempt": "write", "path": pkg.join(".mcp-hub-install.json")}),
    )
    .await;
    blocked(&mut c, json!({"attempt": "write", "path": installed})).await;
    blocked(&mut c, json!({"attempt": "rename", "path": pkg})).await;
    // Control, last: the pinned server still runs.
    assert_eq!(
        c.call_text(3, "echo", json!({"text": "still"})).await,
        "still"
    );
});

// 5a. `network: none`: nothing outside the sandbox is reachable.
both!(e05a_network_none, json!({"network": "none"}), |s, c| {
    let port = s.allowed.local_addr().unwrap().port();
    blocked(
        &mut c,
        json!({"attempt": "connect", "addr": format!("127.0.0.1:{port}")}),
    )
    .await;
    // Its own network namespace: only lo, no host interface.
    let r = attempt(
        &mut c,
        json!({"attempt": "exec", "path": "/bin/cat", "args": ["/proc/net/dev"]}),
    )
    .await;
    let ifaces: Vec<&str> = r["detail"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(i, _)| i.trim()))
        .collect();
    assert_eq!(ifaces, ["lo"], "{r}");
    let hub_port = s.hub.base.rsplit(':').next().unwrap().to_string();
    blocked(
        &mut c,
        json!({"attempt": "connect", "addr": format!("127.0.0.1:{hub_port}")}),
    )
    .await;
});

// 5b. `connect`: only the listed ports.
both!(e05b_ports_outside_connect, |s, c| {
    let ok = s.allowed.local_addr().unwrap();
    let no = s.denied.local_addr().unwrap();
    allowed(
        &mut c,
        json!({"attempt": "connect", "addr": ok.to_string()}),
    )
    .await;
    blocked(
        &mut c,
        json!({"attempt": "connect", "addr": no.to_string()}),
    )
    .await;
});

// `tmpfs` and `bind`: a private writable scratch dir; listening only on the listed ports.
both!(
    tmpfs_and_bind_ports,
    json!({"tmpfs": ["/srv/scratch"]}),
    |s, c| {
        allowed(&mut c, json!({"attempt": "create", "path": "/srv/scratch"})).await;
        blocked(
            &mut c,
            json!({"attempt": "exec-dropped", "path": "/srv/scratch"}),
        )
        .await;
        allowed(
            &mut c,
            json!({"attempt": "bind", "addr": format!("127.0.0.1:{}", s.bind_ok)}),
        )
        .await;
        blocked(
            &mut c,
            json!({"attempt": "bind", "addr": format!("127.0.0.1:{}", free_port())}),
        )
        .await;
    }
);

// 6. The hub's own port, a host abstract socket, journald, NOTIFY_SOCKET.
both!(e06_hub_port_and_host_sockets, |s, c| {
    let hub_port = s.hub.base.rsplit(':').next().unwrap().to_string();
    blocked(
        &mut c,
        json!({"attempt": "connect", "addr": format!("127.0.0.1:{hub_port}")}),
    )
    .await;
    blocked(
        &mut c,
        json!({"attempt": "abstract", "name": s.abstract_name}),
    )
    .await;
    // A host unix stream socket and the hub's NOTIFY_SOCKET, both reachable
    // from the host: only the sandbox stops the server.
    assert!(std::os::unix::net::UnixStream::connect(&s.host_sock).is_ok());
    blocked(&mut c, json!({"attempt": "unix", "path": s.host_sock})).await;
    blocked(&mut c, json!({"attempt": "unix-dgram", "path": s.notify})).await;
    // journald's own sockets, where this host has them.
    for (attempt, path) in [
        ("unix-dgram", "/run/systemd/journal/socket"),
        ("unix", "/run/systemd/journal/stdout"),
    ] {
        if Path::new(path).exists() {
            blocked(&mut c, json!({"attempt": attempt, "path": path})).await;
        } else {
            eprintln!("NOTE: no {path} on this host; the host sockets above stand in for it");
        }
    }
});

async fn hub_and_sibling_pids(s: &Scene) -> (i64, i64) {
    let mut sib = Mcp::new(&s.hub, "sibling");
    sib.initialize().await;
    let st = s.hub.server_status("sibling").await;
    (
        s.hub.child.id() as i64,
        st["pid"].as_i64().expect("sibling pid"),
    )
}

// 7. ptrace or kill of the hub or a sibling server.
both!(e07_ptrace_and_kill, |s, c| {
    let (hub, sibling) = hub_and_sibling_pids(&s).await;
    for pid in [hub, sibling] {
        blocked(&mut c, json!({"attempt": "kill", "pid": pid})).await;
        blocked(&mut c, json!({"attempt": "ptrace", "pid": pid})).await;
    }
    // Inside, pid 1 is the sandbox's own init: not even that.
    blocked(&mut c, json!({"attempt": "ptrace", "pid": 1})).await;
});

// 8. The hub's /proc entries.
both!(e08_hub_proc_entries, |s, c| {
    let hub = s.hub.child.id();
    for f in ["environ", "cmdline", "status", "maps"] {
        blocked(
            &mut c,
            json!({"attempt": "read", "path": format!("/proc/{hub}/{f}")}),
        )
        .await;
    }
    // Only the sandbox's processes are there: its init, the server and `ls`.
    let r = attempt(
        &mut c,
        json!({"attempt": "exec", "path": "/bin/ls", "args": ["/proc"]}),
    )
    .await;
    let pids: Vec<u32> = r["detail"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(!pids.is_empty() && pids.len() <= 4, "{r}");
    assert!(!pids.contains(&hub), "{r}");
});

// 9. mount, unshare, chroot.
both!(e09_mount_unshare_chroot, |s, c| {
    for a in ["mount", "unshare", "unshare-ns", "chroot"] {
        blocked(&mut c, json!({"attempt": a})).await;
    }
});

// 10. A setuid binary gives nothing.
both!(e10_setuid_binary, |s, c| {
    let r = attempt(
        &mut c,
        json!({"attempt": "exec", "path": s.suid_dir.join("suid-fixture"), "args": ["--print-ids"]}),
    )
    .await;
    let out = r["detail"].as_str().unwrap();
    assert_eq!(
        r["escaped"], true,
        "the binary must run (and gain nothing): {r}"
    );
    assert_eq!(
        out,
        format!("euid={} capeff=0000000000000000", s.uid),
        "{r}"
    );
});

// 11. The denied system calls.
both!(e11_denied_syscalls, |s, c| {
    for name in [
        "TIOCSTI",
        "bpf",
        "keyctl",
        "kexec_load",
        "perf_event_open",
        "userfaultfd",
        "ptrace",
        "mount",
        "setns",
        "open_by_handle_at",
        "init_module",
        "io_uring_setup",
    ] {
        blocked(&mut c, json!({"attempt": "syscall", "name": name})).await;
    }
});

// Only fds 0-2, and only the configured environment.
both!(fds_and_environment, |s, c| {
    blocked(&mut c, json!({"attempt": "fds"})).await;
    let env: Value = serde_json::from_str(&c.call_text(7, "env", json!({})).await).unwrap();
    let mut keys: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(keys, ["CONFIGURED", "HOME", "PATH"], "{env}");
    assert!(env["HOME"].as_str().unwrap().ends_with("/probe"), "{env}");
});

// A fork bomb stops at pidsMax.
both!(fork_bomb_stops_at_pids_max, |s, c| {
    let r = attempt(&mut c, json!({"attempt": "forkbomb"})).await;
    let n = r["spawned"].as_u64().unwrap();
    assert_eq!(r["escaped"], false, "{r}");
    assert!(n > 0 && n < 32, "pidsMax 32, spawned {n}: {r}");
    // The server survives its own fork bomb.
    assert_eq!(
        c.call_text(8, "echo", json!({"text": "alive"})).await,
        "alive"
    );
});

/// Host pids whose command line carries `tag`.
fn tagged(tag: &str) -> Vec<i32> {
    pids_where(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(tag))
    })
}

// SIGKILL of the hub takes the sandboxed server with it.
both!(sigkill_of_the_hub_kills_the_server, |s, c| {
    let tag = s.tag.clone();
    assert!(!tagged(&tag).is_empty(), "the probe runs");
    s.hub.child.kill().unwrap();
    s.hub.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tagged(&tag).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        tagged(&tag).is_empty(),
        "sandboxed processes outlived a SIGKILLed hub"
    );
});

#[tokio::test]
async fn a_failing_step_is_named() {
    // Paths are checked when the config loads; one removed afterwards fails
    // inside the helper, which reports the step over its status pipe.
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("vanishes");
    std::fs::create_dir(&gone).unwrap();
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": {"read": [gone]}}))}),
    );
    std::fs::remove_dir(&gone).unwrap();
    let c = Mcp::new(&hub, "fx");
    let r = c
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    let msg = r.last()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("fx") && msg.contains("sandbox:"), "{msg}");
    assert!(
        msg.contains(&format!("sandbox: mount: {}: source", gone.display())),
        "the helper names its step: {msg}"
    );
}

#[tokio::test]
async fn opting_out_is_warned_about() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false})), "on": fx(json!({}))}),
    );
    let st = hub.server_status("fx").await;
    assert_eq!(st["sandbox"]["enabled"], false, "{st}");
    assert!(st["sandbox"]["warning"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    assert!(hub.log_contains("mcpServers.fx.sandbox: false"));
    let on = hub.server_status("on").await;
    assert_eq!(on["sandbox"]["enabled"], true, "{on}");
    assert_eq!(on["sandbox"]["pidsMax"], 512);
}

#[tokio::test]
async fn limits_not_enforced_are_reported_or_refused() {
    // This host (or container) has no delegated cgroup v2 with memory/pids/cpu:
    // the "not enforced" path. The enforced path runs in a VM (tests/cgroup-vm).
    if std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|c| c.contains("mcp-hub")) {
        panic!("unexpected: tests run inside a delegated mcp-hub cgroup");
    }
    let hub = Hub::start(
        json!({}),
        json!({"soft": fx(json!({"sandbox": {"memoryMax": "256M"}})),
               "hard": fx(json!({"sandbox": {"memoryMax": "256M", "limitsRequired": true}}))}),
    );
    let st = hub.server_status("soft").await;
    assert!(
        st["sandbox"]["limits"]
            .as_str()
            .unwrap()
            .starts_with("limits not enforced"),
        "{st}"
    );
    assert!(hub.log_contains("limits not enforced"));
    // "256M" as systemd reads it, shown in bytes.
    assert_eq!(st["sandbox"]["memoryMax"], 268_435_456, "{st}");
    let mut soft = Mcp::new(&hub, "soft");
    soft.initialize().await;
    let c = Mcp::new(&hub, "hard");
    let r = c
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    let msg = r.last()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("limits are required"), "{msg}");
}

#[tokio::test]
async fn a_failed_install_reports_its_last_stderr_lines() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-package.tgz");
    let hub = Hub::start(
        json!({"options": {"stateDir": dir.path().join("state")}}),
        json!({"gone": {"command": "npx", "args": ["-y", missing]},
               "odd": {"command": "npx", "args": ["--registry", "http://127.0.0.1:9", "pkg"]}}),
    );
    let c = Mcp::new(&hub, "gone");
    let r = c
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    let msg = r.last()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("sandbox: install: `npm install --save-exact` failed"),
        "{msg}"
    );
    // More than npm's last hint line: the lines that say what went wrong.
    let lines = msg.lines().filter(|l| l.contains("npm error")).count();
    assert!(lines >= 3, "{msg}");
    assert!(msg.contains("ENOENT"), "{msg}");
    let st = hub.server_status("gone").await;
    assert!(st["lastError"].as_str().unwrap().contains("ENOENT"), "{st}");
    // A failed install leaves nothing behind to run.
    let pkg = dir.path().join("state/gone/pkg");
    assert!(!pkg.join(".mcp-hub-install.json").exists());
    assert!(!pkg.join("v1").exists());

    // An option that could change what gets installed is refused by name.
    let c = Mcp::new(&hub, "odd");
    let r = c
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    let msg = r.last()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("npx: option --registry is not supported for a preinstalled server"),
        "{msg}"
    );
}

#[test]
fn install_upgrade_and_rollback_commands() {
    let dir = tempfile::tempdir().unwrap();
    let base = mkdir(dir.path());
    let tgz = npm_tarball(&base);
    let state = base.join("state");
    let cfg = base.join("config.json");
    let write_cfg = |servers: Value| {
        let c = json!({"mcpProxy": {"options": {"stateDir": state}}, "mcpServers": servers});
        std::fs::write(&cfg, c.to_string()).unwrap();
    };
    write_cfg(json!({"p": {"command": "npx", "args": ["-y", tgz]},
                     "plain": {"command": fixture_path()}}));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(hub_bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            // A proxy the install inherits (a local tarball needs no network).
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("no_proxy", "localhost")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let record = || -> Value {
        serde_json::from_slice(&std::fs::read(state.join("p/pkg/.mcp-hub-install.json")).unwrap())
            .unwrap()
    };
    let (ok, out) = run(&["install", "p"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("p: installed mcp-hub-probe 1.2.3 (pinned now)"),
        "{out}"
    );
    assert_eq!(record()["current"]["dir"], "v1");
    let passed = record()["current"]["envPassed"].clone();
    assert!(
        passed.as_array().unwrap().contains(&json!("HTTPS_PROXY"))
            && passed.as_array().unwrap().contains(&json!("no_proxy")),
        "{passed}"
    );
    let (_, out) = run(&["doctor"]);
    assert!(
        out.contains("p: package: mcp-hub-probe 1.2.3 pinned in"),
        "{out}"
    );
    // Again: from the lockfile, into a new directory, the old one kept as previous.
    let (ok, out) = run(&["install", "p"]);
    assert!(ok && out.contains("(from its lockfile)"), "{out}");
    assert_eq!(record()["current"]["dir"], "v2");
    assert_eq!(record()["previous"]["dir"], "v1");
    // Upgrade: installed beside, tested (initialize + tools/list in its sandbox), switched.
    let (ok, out) = run(&["upgrade", "p"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("p: upgraded mcp-hub-probe 1.2.3 -> 1.2.3"),
        "{out}"
    );
    assert_eq!(record()["current"]["dir"], "v3");
    assert!(
        !state.join("p/pkg/v1").exists(),
        "only current and previous are kept"
    );
    let (ok, out) = run(&["rollback", "p"]);
    assert!(ok && out.contains("rolled back"), "{out}");
    assert_eq!(record()["current"]["dir"], "v2");
    assert_eq!(record()["previous"]["dir"], "v3");
    // Not a package runner; not a server.
    let (ok, out) = run(&["install", "plain"]);
    assert!(!ok && out.contains("not a package runner"), "{out}");
    let (ok, out) = run(&["upgrade", "nope"]);
    assert!(!ok && out.contains("no server \"nope\""), "{out}");
    // An upgrade that fails its test keeps the current install.
    write_cfg(json!({"p": {"command": "npx", "args": ["-y", tgz, "--exit-on-init"]}}));
    let (ok, out) = run(&["upgrade", "p"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("failed its test, the current install stays"),
        "{out}"
    );
    assert_eq!(record()["current"]["dir"], "v2");
}

#[tokio::test]
async fn a_changed_package_is_installed_again_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let base = mkdir(dir.path());
    let (old, new) = (
        npm_tarball_version(&base, "1.2.3"),
        npm_tarball_version(&base, "1.2.4"),
    );
    let state = base.join("state");
    let hub = Hub::start(
        json!({"options": {"stateDir": state}}),
        json!({"p": {"command": "npx", "args": ["-y", old]}}),
    );
    let record = || -> Value {
        serde_json::from_slice(&std::fs::read(state.join("p/pkg/.mcp-hub-install.json")).unwrap())
            .unwrap()
    };
    let mut c = Mcp::new(&hub, "p");
    c.initialize().await;
    assert_eq!(c.call_text(1, "echo", json!({"text": "one"})).await, "one");
    assert_eq!(record()["current"]["version"], "1.2.3");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&hub.config_path).unwrap()).unwrap();
    cfg["mcpServers"]["p"]["args"] = json!(["-y", new]);
    std::fs::write(&hub.config_path, cfg.to_string()).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hub.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = Mcp::new(&hub, "p");
        let r = c
            .post(&req(json!(1), "initialize", init_params("2025-11-25")))
            .await;
        if r.status == 200 && record()["current"]["version"] == "1.2.4" {
            c.session = r
                .headers
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(c.call_text(2, "echo", json!({"text": "two"})).await, "two");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reinstall after reload: {}",
            record()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(record()["previous"]["version"], "1.2.3");
    assert!(hub.log_contains("installed mcp-hub-probe 1.2.4"));
}
