//! Sandbox profiles at start: the translation of a validated profile
//! (`config::sandbox`) plus secure defaults into the [`Spec`] the helper
//! executes.
//!
//! The defaults are what makes `npx -y pkg`, `uvx pkg`, an absolute binary and
//! a node/python script work with no profile at all: the system directories
//! read-only, the directories the command (and its `#!` interpreter) lives in,
//! the few files of /etc that name resolution, TLS and the dynamic linker need,
//! a private writable HOME at the server's state directory, a private /tmp, and
//! nothing else of the host.

pub use crate::config::sandbox::{validate, Limits, Network, Profile, DEFAULT_PIDS_MAX};

use super::spec::{Mount, MountKind, Spec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot start {0:?}: {1}")]
    NotFound(String, String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// System directories bound read-only with exec; symlinks (merged /usr) are
/// recreated as symlinks.
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What of /etc a program needs to run, resolve names and verify TLS; the rest
/// (shadow, the hub's own config, credentials…) stays out.
const ETC: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "npmrc",
    "os-release",
    "passwd",
    "pip.conf",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
];

/// Everything the hub knows when it starts a sandboxed server.
pub struct Request<'a> {
    pub server: &'a str,
    pub command: &'a str,
    pub args: &'a [String],
    /// The server's configured environment (PATH and HOME may be among them).
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a Path>,
    /// PATH when the configured environment has none.
    pub default_path: &'a str,
    /// The server's private HOME (its state directory).
    pub home: &'a Path,
    pub cgroup: Option<PathBuf>,
    pub parent_pid: u32,
    /// Who the server runs as (see [`run_as`]).
    pub uid: u32,
    pub gid: u32,
}

/// `nobody`: what a root hub runs its servers as. Root without capabilities in
/// a user namespace is still uid 0 to every root-owned file the sandbox shows,
/// and the kernel exempts uid 0 from RLIMIT_NPROC.
pub const NOBODY: u32 = 65534;

/// The user a server runs as: the hub's own, or `nobody` for a root hub.
pub fn run_as() -> (u32, u32) {
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    if uid == 0 {
        (NOBODY, NOBODY)
    } else {
        (uid, gid)
    }
}

/// The PATH a server gets when its `env` sets none: the hub's own.
pub fn inherited_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Finds `command` the way execvp would, in `path`.
pub fn resolve(command: &str, path: &str, cwd: Option<&Path>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let p = match cwd {
            Some(dir) if !command.starts_with('/') => dir.join(command),
            _ => PathBuf::from(command),
        };
        return runnable(&p).then_some(p);
    }
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(command))
        .find(|p| runnable(p))
}

/// The directory a program is installed under: its own directory; the prefix
/// above a `bin`/`sbin` when that prefix has a `lib` (an install prefix such as
/// /opt/node or a virtualenv, not a home directory with a `bin` in it); or the
/// outermost `node_modules` it lives in (a package needs its dependencies).
fn install_dir(file: &Path) -> Option<PathBuf> {
    if let Some(i) = file
        .components()
        .position(|c| c.as_os_str() == "node_modules")
    {
        return Some(file.components().take(i + 1).collect());
    }
    let dir = file.parent()?;
    match (dir.file_name().and_then(|n| n.to_str()), dir.parent()) {
        (Some("bin" | "sbin"), Some(prefix)) if prefix == Path::new("/") => None,
        (Some("bin" | "sbin"), Some(prefix)) if prefix.join("lib").is_dir() => {
            Some(prefix.to_path_buf())
        }
        _ => Some(dir.to_path_buf()),
    }
}

/// The interpreter of a `#!` script, resolved through `env` if need be.
pub fn interpreter(file: &Path, path: &str) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next()?).into_owned();
    let mut words = line.split_whitespace();
    let interp = PathBuf::from(words.next()?);
    if interp.file_name().is_some_and(|n| n == "env") {
        let prog = words.find(|w| !w.starts_with('-'))?;
        return resolve(prog, path, None);
    }
    Some(interp)
}

/// Builds the helper's spec for one start of a sandboxed server.
pub fn build(profile: &Profile, req: &Request) -> Result<Spec, BuildError> {
    let path = req
        .env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or(req.default_path);
    let program = resolve(req.command, path, req.cwd).ok_or_else(|| {
        let why = if req.command.contains('/') {
            "no such executable file".to_string()
        } else {
            format!("not found in PATH {path}")
        };
        BuildError::NotFound(req.command.into(), why)
    })?;
    let program = if program.is_absolute() {
        program
    } else {
        std::fs::canonicalize(&program).map_err(|e| BuildError::Io(program.clone(), e))?
    };

    let mut mounts = Mounts::default();
    for d in SYSTEM_DIRS {
        let p = Path::new(d);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(p) {
                    mounts.add(p.into(), MountKind::Symlink { target });
                }
            }
            Ok(_) => mounts.bind(p.into(), false, true),
            Err(_) => {}
        }
    }
    for e in ETC {
        let p = Path::new("/etc").join(e);
        if p.exists() {
            mounts.bind(p, false, false);
        }
    }
    // Debian's python reads /etc/python3.11/sitecustomize.py.
    if let Ok(dir) = std::fs::read_dir("/etc") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with("python3") {
                mounts.bind(e.path(), false, false);
            }
        }
    }

    // The program, what it links to, its interpreter, and absolute paths among
    // its arguments (`node /opt/app/server.js`), each with its install dir.
    let mut runnables = vec![program.clone()];
    if let Ok(real) = std::fs::canonicalize(&program) {
        runnables.push(real);
    }
    if let Some(interp) = interpreter(&program, path) {
        if let Ok(real) = std::fs::canonicalize(&interp) {
            runnables.push(real);
        }
        runnables.push(interp);
    }
    // "/" as an argument would show the whole host: it gets no bind.
    for a in req
        .args
        .iter()
        .filter(|a| a.starts_with('/') && a.len() > 1)
    {
        if let Ok(real) = std::fs::canonicalize(a) {
            if real.is_dir() || real.starts_with("/etc") {
                mounts.bind(real, false, false);
            } else {
                runnables.push(real);
            }
        }
    }
    // A profile's exec dir already shows what lies under it, with its own
    // rights (an install phase writes its own bin/ there).
    let in_exec = |d: &Path| profile.exec.iter().any(|p| d.starts_with(p));
    for r in runnables {
        if let Some(dir) = install_dir(&r) {
            if !mounts.covers(&dir) && !in_exec(&dir) && dir.exists() {
                mounts.bind(dir, false, true);
            }
        }
    }
    let cwd = match req.cwd {
        Some(c) => Some(std::fs::canonicalize(c).map_err(|e| BuildError::Io(c.to_path_buf(), e))?),
        None => None,
    };
    if let Some(cwd) = &cwd {
        mounts.bind(cwd.clone(), false, false);
    }

    let browser_reads = if profile.browser {
        super::browser::read_binds()
    } else {
        vec![]
    };
    for p in profile.read.iter().chain(&browser_reads) {
        mounts.bind(p.clone(), false, false);
    }
    for p in &profile.exec {
        mounts.bind(p.clone(), false, true);
    }
    // A write dir also named in `exec` keeps exec: binds of one path merge.
    for p in &profile.write {
        mounts.bind(p.clone(), true, false);
    }
    // HOME is writable, so it is never executable: package runners' packages
    // are installed ahead of time and run from a read-only bind (install.rs).
    mounts.bind(req.home.to_path_buf(), true, false);
    mounts.add("/proc".into(), MountKind::Proc);
    mounts.add("/dev".into(), MountKind::Dev);
    mounts.add("/tmp".into(), MountKind::Tmpfs);
    for p in &profile.tmpfs {
        mounts.add(p.clone(), MountKind::Tmpfs);
    }

    let home = req.home.display().to_string();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), path.into());
    env.insert("HOME".into(), home.clone());
    if profile.browser {
        for (k, v) in super::browser::ENV {
            env.insert(k.to_string(), v.to_string());
        }
    }
    for (k, v) in req.env {
        env.insert(k.clone(), v.clone());
    }
    let cwd = cwd.unwrap_or_else(|| req.home.to_path_buf());
    let mut argv = vec![req.command.to_string()];
    argv.extend(req.args.iter().cloned());
    Ok(Spec {
        server: req.server.into(),
        program,
        argv,
        env: env.into_iter().collect(),
        cwd,
        mounts: mounts
            .0
            .into_iter()
            .map(|(path, kind)| {
                let source = match kind {
                    MountKind::Bind { .. } => {
                        std::fs::canonicalize(&path).ok().filter(|s| *s != path)
                    }
                    _ => None,
                };
                Mount { path, source, kind }
            })
            .collect(),
        private_network: profile.network == Network::None,
        connect: profile.connect.clone(),
        bind: profile.bind.clone(),
        cgroup: req.cgroup.clone(),
        nproc: Some(profile.limits.pids_max),
        parent_pid: req.parent_pid,
        uid: req.uid,
        gid: req.gid,
    })
}

/// The mounts of one sandbox by path, so parents sort before children.
#[derive(Default)]
struct Mounts(BTreeMap<PathBuf, MountKind>);

impl Mounts {
    /// A path named twice gets the union of the rights.
    fn add(&mut self, p: PathBuf, kind: MountKind) {
        let merged = match (self.0.get(&p), &kind) {
            (
                Some(MountKind::Bind {
                    write: w0,
                    exec: x0,
                }),
                MountKind::Bind { write, exec },
            ) => MountKind::Bind {
                write: *w0 || *write,
                exec: *x0 || *exec,
            },
            _ => kind,
        };
        self.0.insert(p, merged);
    }

    fn bind(&mut self, p: PathBuf, write: bool, exec: bool) {
        self.add(p, MountKind::Bind { write, exec });
    }

    /// Whether an executable bind already shows `dir` (it lies under one).
    fn covers(&self, dir: &Path) -> bool {
        self.0
            .iter()
            .any(|(p, k)| matches!(k, MountKind::Bind { exec: true, .. }) && dir.starts_with(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(p: serde_json::Value) -> Result<Option<Profile>, (String, String)> {
        validate(Some(&p), "mcpServers.x.sandbox")
    }

    #[test]
    fn defaults_false_and_errors() {
        assert_eq!(validate(None, "s").unwrap(), Some(Profile::default()));
        assert_eq!(v(json!(false)).unwrap(), None);
        let e = v(json!({"read": ["/", "/nope-not-here"]})).unwrap_err();
        assert_eq!(e.0, "mcpServers.x.sandbox.read[1]");
        assert_eq!(e.1, "/nope-not-here does not exist");
        let e = v(json!({"memoryMax": "256Q"})).unwrap_err();
        assert_eq!(e.0, "mcpServers.x.sandbox.memoryMax");
        let e = v(json!({"network": "bridge"})).unwrap_err();
        assert_eq!(e.0, "mcpServers.x.sandbox.network");
        let e = v(json!({"cpuQuota": "fast"})).unwrap_err();
        assert_eq!(e.0, "mcpServers.x.sandbox.cpuQuota");
        let e = v(json!({"raed": []})).unwrap_err();
        assert!(e.1.contains("unknown field `raed`"), "{e:?}");
        let e = v(json!({"write": ["relative"]})).unwrap_err();
        assert_eq!(e.1, "relative is not an absolute path");
        let p = v(json!({"memoryMax": "256M", "cpuQuota": "50%", "pidsMax": 64, "network": "none", "connect": [443]}))
            .unwrap()
            .unwrap();
        // systemd's meaning: M is MiB.
        assert_eq!(p.limits.memory_max, Some(268_435_456));
        assert_eq!(p.limits.cpu_quota, Some(50));
        assert_eq!(p.limits.pids_max, 64);
        assert_eq!(p.network, Network::None);
        assert_eq!(p.connect, Some(vec![443]));
        let p = v(json!({"memoryMax": "256MB"})).unwrap().unwrap();
        assert_eq!(p.limits.memory_max, Some(256_000_000));
        let e = v(json!({"memoryMax": "1M"})).unwrap_err();
        assert_eq!(e.1, "must be at least 4MiB");
    }

    #[test]
    fn spec_binds_system_dirs_home_and_nothing_secret() {
        let env = BTreeMap::from([("FOO".to_string(), "bar".to_string())]);
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        let req = Request {
            server: "t",
            command: "sh",
            args: &[],
            env: &env,
            cwd: None,
            default_path: "/usr/bin:/bin",
            home: &home,
            cgroup: None,
            parent_pid: 1,
            uid: 1000,
            gid: 1000,
        };
        let spec = build(&Profile::default(), &req).unwrap();
        assert!(spec.program.ends_with("sh"));
        let paths: Vec<_> = spec.mounts.iter().map(|m| m.path.clone()).collect();
        assert!(paths.contains(&PathBuf::from("/usr")));
        assert!(paths.contains(&PathBuf::from("/proc")));
        assert!(!paths.contains(&PathBuf::from("/etc")));
        assert!(!paths.iter().any(|p| p.starts_with("/etc/shadow")));
        let m = spec.mounts.iter().find(|m| m.path == home).unwrap();
        assert_eq!(
            m.kind,
            MountKind::Bind {
                write: true,
                exec: false
            }
        );
        assert_eq!(
            spec.env,
            vec![
                ("FOO".into(), "bar".into()),
                ("HOME".into(), home.display().to_string()),
                ("PATH".into(), "/usr/bin:/bin".into())
            ]
        );
        // Parents come before children, so mount points can be made in order.
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert_eq!(spec.nproc, Some(DEFAULT_PIDS_MAX));
    }

    #[test]
    fn resolve_follows_path_and_shebang() {
        assert!(resolve("sh", "/nonexistent:/bin:/usr/bin", None).is_some());
        assert!(resolve("definitely-not-a-command", "/bin:/usr/bin", None).is_none());
        assert_eq!(
            install_dir(Path::new("/opt/app/server.js")),
            Some(PathBuf::from("/opt/app"))
        );
        assert_eq!(install_dir(Path::new("/bin/sh")), None);
        // A bin/ without a lib/ beside it is not an install prefix.
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join("bin")).unwrap();
        let tool = home.path().join("bin/tool");
        assert_eq!(install_dir(&tool), Some(home.path().join("bin")));
        std::fs::create_dir(home.path().join("lib")).unwrap();
        assert_eq!(install_dir(&tool), Some(home.path().to_path_buf()));
        assert_eq!(
            install_dir(Path::new("/srv/app/node_modules/pkg/dist/index.js")),
            Some(PathBuf::from("/srv/app/node_modules"))
        );
    }
}
