//! The install phase of package-runner servers (`npx`, `npm exec`, `uvx`,
//! `uv tool run`, `pipx run`): the hub installs the package before the server
//! first runs, so nothing a server can write is ever executable and no package
//! manager runs at server start (a `network: none` server starts offline).
//!
//! Layout, under the server's state directory (its HOME) `<stateDir>/<name>`:
//!
//! ```text
//! pkg/.mcp-hub-install.json   the record: current and previous install
//! pkg/v3/                     one install (node_modules/, or venv/), never moved
//! pkg/.lock                   serializes installs (hub and CLI)
//! ```
//!
//! An install runs the package manager in its own sandbox: the host's network,
//! and write (and exec, for build scripts) access to its new `pkg/vN` only,
//! with a HOME and caches inside it that are removed afterwards. Switching
//! installs rewrites the record atomically; install directories are never
//! renamed, because a virtualenv's scripts name their own absolute path.
//!
//! At run time `pkg/` is bound read-only and executable over the writable,
//! `noexec` HOME, so the server cannot change what it runs, and what it writes
//! (HOME, write dirs, /tmp) cannot be executed.
//!
//! The package manager gets the server's configured environment plus the
//! hub's proxy and CA variables ([`PASSED_VARS`]), so installs work behind a
//! TLS-intercepting proxy. A failure reports the last [`STDERR_LINES`] lines
//! of the package manager's stderr, not only the last.
//!
//! - `step`: one package manager run in the install sandbox
//! - `npm`, `python`: the installs of each runner family and what they found
//! - `interp`: the Python a venv is made with, when `install.python` says
//!
//! The server's `install` options (`config::install`) take part: an
//! interpreter from the machine (never downloaded), and overrides that win
//! over the package's own dependency ranges. The record keeps what was
//! actually installed (`pinned`), which `show`, `doctor` and `/status` show.

mod interp;
mod npm;
mod options;
mod python;
mod step;

pub use interp::Picked;
pub use options::{check, python_for, requested};

use super::runner::{self, Kind, Package};
use super::{profile, SandboxError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use step::Stepper;

pub const RECORD: &str = ".mcp-hub-install.json";
/// How much of a failed step's stderr an error carries.
pub const STDERR_LINES: usize = 20;

/// The hub's variables an install inherits (either case), for proxies, private
/// CAs and mirrors.
pub const PASSED_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "NPM_CONFIG_REGISTRY",
];

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Runner(String),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{what} failed ({status}){}; its last stderr lines:\n{}", step_resolver(resolver, stderr), stderr.join("\n"))]
    Step {
        what: String,
        status: String,
        /// The resolver's own explanation, when it is not already in `stderr`.
        resolver: Option<Vec<String>>,
        stderr: Vec<String>,
    },
    #[error("{0}")]
    Result(String),
    #[error("{0}")]
    Sandbox(String),
}

/// For a failed step: the resolver's message (when the tail lacks its start)
/// and, for a dependency conflict, how to settle it.
fn step_resolver(resolver: &Option<Vec<String>>, stderr: &[String]) -> String {
    let mut s = String::new();
    if resolver.is_some() || step::resolver_message(stderr).is_some() {
        s.push_str(
            ", a dependency conflict: settle it by pinning the package it names in the server's install.overrides, e.g. [\"pkg==1.2\"]",
        );
    }
    if let Some(r) = resolver {
        s.push_str(&format!("; the resolver said:\n{}\n", r.join("\n")));
    }
    s
}

impl From<SandboxError> for InstallError {
    fn from(e: SandboxError) -> Self {
        InstallError::Sandbox(e.to_string())
    }
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |e| InstallError::Io(p.to_path_buf(), e)
}

/// One install, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Installed {
    /// Its directory under `pkg/` (`v3`).
    pub dir: String,
    /// What was asked for (runner family, spec and extra packages as written):
    /// a config change to it means a reinstall.
    pub requested: String,
    pub kind: Kind,
    pub package: String,
    /// The exact version installed.
    pub version: String,
    /// The program to execute, relative to `pkg/`.
    pub program: String,
    /// The lockfile (`package-lock.json`, or a `pip freeze` for Python),
    /// relative to `pkg/`, and its SHA-256.
    pub lockfile: String,
    pub lockfile_sha256: String,
    /// Seconds since the epoch.
    pub installed_at: u64,
    /// The hub's variables passed to the package manager (names only).
    pub env_passed: Vec<String>,
    /// The interpreter a Python venv was made with, when `install.python`
    /// chose it: `3.11.2 /usr/bin/python3.11`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// `install.overrides` as applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Every package the lockfile pins, `name==version` (Python) or
    /// `name@version` (npm, top level of node_modules).
    #[serde(default)]
    pub pinned: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub current: Installed,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Installed>,
}

/// Where a server's installs live.
pub fn pkg_dir(home: &Path) -> PathBuf {
    home.join("pkg")
}

pub fn read_record(home: &Path) -> Option<Record> {
    let text = std::fs::read(pkg_dir(home).join(RECORD)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub fn write_record(home: &Path, r: &Record) -> Result<(), InstallError> {
    let pkg = pkg_dir(home);
    let tmp = pkg.join(format!("{RECORD}.tmp"));
    let json = serde_json::to_vec_pretty(r).expect("a record serializes");
    std::fs::write(&tmp, json).map_err(io(&tmp))?;
    // rename(2) is the atomic switch.
    std::fs::rename(&tmp, pkg.join(RECORD)).map_err(io(&pkg))
}

/// The package-runner server's package, if its command is one.
pub fn package_of(spec: &crate::config::StdioSpec) -> Option<Result<Package, String>> {
    runner::classify(&spec.command, &spec.args)
}

/// A package-runner server's install as `/status`, `show` and `doctor` show
/// it: the pinned version, where, and which of the hub's variables the
/// install got; `None` for other servers.
pub fn describe(spec: &crate::config::StdioSpec) -> Option<serde_json::Value> {
    let pkg = package_of(spec)?;
    let Ok(pkg) = pkg else {
        return Some(serde_json::json!({"error": pkg.err()}));
    };
    let current = read_record(&spec.home)
        .map(|r| r.current)
        .filter(|c| c.requested == requested(spec, &pkg));
    Some(match current {
        Some(c) => {
            let mut v = serde_json::json!({
                "package": c.package,
                "version": c.version,
                "dir": pkg_dir(&spec.home).join(&c.dir),
                "lockfileSha256": c.lockfile_sha256,
                "envPassed": c.env_passed,
                "pinned": c.pinned,
            });
            if let Some(p) = &c.python {
                v["python"] = p.clone().into();
            }
            if !c.overrides.is_empty() {
                v["overrides"] = c.overrides.clone().into();
            }
            v
        }
        None => serde_json::json!({"package": pkg.spec, "version": null,
            "note": "not installed yet: installs at the first start or with `mcp-hub install`"}),
    })
}

/// What a start of an installed server runs.
pub struct Ready {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// `pkg/`, bound read-only and executable.
    pub pkg: PathBuf,
}

/// An exclusive lock on a server's installs, across threads and processes.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

pub fn lock(home: &Path) -> Result<Lock, InstallError> {
    let pkg = pkg_dir(home);
    std::fs::create_dir_all(&pkg).map_err(io(&pkg))?;
    let path = pkg.join(".lock");
    let f = std::fs::File::create(&path).map_err(io(&path))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| InstallError::Io(path, e.into()))
}

/// Before a start: the installed program, installing first when nothing (or
/// something else than the config asks for) is installed. Blocking.
pub fn ensure(
    server: &str,
    spec: &crate::config::StdioSpec,
    pkg: &Package,
) -> Result<Ready, InstallError> {
    let _lock = lock(&spec.home)?;
    let record = read_record(&spec.home);
    let current = record.as_ref().map(|r| &r.current).filter(|c| {
        c.requested == requested(spec, pkg) && pkg_dir(&spec.home).join(&c.program).exists()
    });
    let current = match current {
        Some(c) => c.clone(),
        None => {
            tracing::info!(mcp_server = %server, "installing {} ({:?}) before the first start", pkg.spec, pkg.kind);
            let new = install(server, spec, pkg, None)?;
            tracing::info!(mcp_server = %server, "installed {} {} into {}", new.package, new.version, pkg_dir(&spec.home).join(&new.dir).display());
            switch(&spec.home, record, new.clone())?;
            new
        }
    };
    Ok(Ready {
        program: pkg_dir(&spec.home).join(&current.program),
        args: pkg.args.clone(),
        pkg: pkg_dir(&spec.home),
    })
}

/// Makes `new` current, keeps the current one as previous, and removes older
/// install directories.
pub fn switch(home: &Path, old: Option<Record>, new: Installed) -> Result<(), InstallError> {
    let previous = old.map(|r| r.current).filter(|p| p.dir != new.dir);
    let record = Record {
        current: new,
        previous,
    };
    write_record(home, &record)?;
    prune(home, &record);
    Ok(())
}

fn prune(home: &Path, record: &Record) {
    let keep: Vec<&str> = std::iter::once(record.current.dir.as_str())
        .chain(record.previous.as_ref().map(|p| p.dir.as_str()))
        .collect();
    let pkg = pkg_dir(home);
    for e in std::fs::read_dir(&pkg).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('v') && !keep.contains(&name.as_str()) && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh install directory `pkg/vN`, owned by the user the sandbox runs as.
fn new_dir(home: &Path) -> Result<(String, PathBuf), InstallError> {
    let pkg = pkg_dir(home);
    let n = std::fs::read_dir(&pkg)
        .map_err(io(&pkg))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix('v')?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0)
        + 1;
    let name = format!("v{n}");
    let dir = pkg.join(&name);
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    let (uid, gid) = profile::run_as();
    if nix::unistd::getuid().is_root() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io(&dir))?;
    }
    Ok((name, dir))
}

/// How an install resolves versions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source<'a> {
    /// The spec as written (first install, upgrade).
    Spec,
    /// Exactly what this earlier install's lockfile says (reinstall).
    Lockfile(&'a Installed),
}

/// Installs `pkg` into a new `pkg/vN` and returns its record (not yet current).
pub fn install(
    server: &str,
    spec: &crate::config::StdioSpec,
    pkg: &Package,
    from: Option<Source>,
) -> Result<Installed, InstallError> {
    let (name, dir) = new_dir(&spec.home)?;
    let result = install_into(server, spec, pkg, from.unwrap_or(Source::Spec), &dir).map(
        |(
            Found {
                package,
                version,
                program,
                lockfile,
                python,
                pinned,
            },
            env_passed,
        )| {
            let rel = |p: &Path| {
                p.strip_prefix(pkg_dir(&spec.home))
                    .unwrap_or(p)
                    .display()
                    .to_string()
            };
            let lock = std::fs::read(&lockfile).unwrap_or_default();
            Installed {
                dir: name.clone(),
                requested: requested(spec, pkg),
                kind: pkg.kind,
                package,
                version,
                program: rel(&program),
                lockfile: rel(&lockfile),
                lockfile_sha256: sha256_hex(&lock),
                installed_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                env_passed,
                python: python.map(|p| format!("{} {}", p.version, p.path.display())),
                overrides: spec.install.overrides.clone(),
                pinned,
            }
        },
    );
    // The install's own HOME and caches are not part of what runs.
    for scratch in [".home", ".cache", ".tmp"] {
        let _ = std::fs::remove_dir_all(dir.join(scratch));
    }
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// What an install produced.
#[derive(Debug)]
struct Found {
    package: String,
    version: String,
    program: PathBuf,
    lockfile: PathBuf,
    /// The interpreter `install.python` chose.
    python: Option<Picked>,
    /// What the lockfile pins.
    pinned: Vec<String>,
}

/// One install in the making, for the package manager modules.
struct Ctx<'a> {
    spec: &'a crate::config::StdioSpec,
    pkg: &'a Package,
    dir: &'a Path,
    /// The interpreter `install.python` chose (Python runners).
    python: Option<Picked>,
    /// The package manager's cache (removed after the install).
    cache: PathBuf,
    /// PATH, to find the runner.
    path: String,
    step: Stepper<'a>,
}

impl Ctx<'_> {
    /// The package manager that comes with the runner: npm beside npx, uv
    /// beside uvx; else the bare name, found in PATH.
    fn beside(&self, tool: &str) -> String {
        profile::resolve(&self.pkg.runner, &self.path, self.spec.cwd.as_deref())
            .and_then(|p| p.parent().map(|d| d.join(tool)))
            .filter(|t| t.exists())
            .map_or(tool.to_string(), |t| t.display().to_string())
    }
}

fn install_into(
    server: &str,
    spec: &crate::config::StdioSpec,
    pkg: &Package,
    from: Source,
    dir: &Path,
) -> Result<(Found, Vec<String>), InstallError> {
    let (mut env, passed) = install_env(&spec.env);
    let home = dir.join(".home");
    std::fs::create_dir_all(&home).map_err(io(&home))?;
    // Build steps may run what they unpack; the sandbox's /tmp is noexec.
    let tmp = dir.join(".tmp");
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    chown_to_sandbox(&home)?;
    chown_to_sandbox(&tmp)?;
    env.insert("TMPDIR".into(), tmp.display().to_string());
    // A local package (a path or tarball) stays readable to reinstalls from
    // the lockfile too, which do not name it.
    let reads = std::iter::once(&pkg.spec)
        .chain(&pkg.with)
        .map(|s| s.strip_prefix("file:").unwrap_or(s))
        .filter(|s| s.starts_with('/'))
        .filter_map(|s| std::fs::canonicalize(s).ok())
        .collect();
    let python = python_for(server, spec, pkg).map_err(InstallError::Result)?;
    // An interpreter outside the system directories must be runnable in the
    // install sandbox: its installation prefix (`/opt/py/bin/python` → `/opt/py`).
    let execs = python
        .iter()
        .filter_map(|p| std::fs::canonicalize(&p.path).ok())
        .filter(|p| !["/usr/", "/bin/", "/lib"].iter().any(|d| p.starts_with(d)))
        .filter_map(|p| p.parent()?.parent().map(Path::to_path_buf))
        .collect();
    let ctx = Ctx {
        spec,
        pkg,
        dir,
        python,
        cache: dir.join(".cache"),
        path: env
            .get("PATH")
            .cloned()
            .unwrap_or_else(profile::inherited_path),
        step: Stepper {
            server,
            dir,
            home: &home,
            cwd: spec.cwd.as_deref(),
            reads,
            execs,
        },
    };
    let found = match pkg.kind {
        Kind::Npm => npm::install(&ctx, from, &mut env)?,
        Kind::Uv | Kind::Pipx => python::install(&ctx, from, &mut env)?,
    };
    Ok((found, passed))
}

/// The install's environment: the server's configured one, plus the hub's
/// proxy/CA variables the configuration does not set. Returns the names passed.
fn install_env(configured: &BTreeMap<String, String>) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env = configured.clone();
    let mut passed = Vec::new();
    for (k, v) in std::env::vars() {
        let wanted = PASSED_VARS.iter().any(|p| p.eq_ignore_ascii_case(&k));
        if wanted && !env.contains_key(&k) {
            passed.push(k.clone());
            env.insert(k, v);
        }
    }
    passed.sort();
    (env, passed)
}

fn write(p: &Path, data: &[u8]) -> Result<(), InstallError> {
    std::fs::write(p, data).map_err(io(p))?;
    chown_to_sandbox(p)
}

fn copy(from: &Path, to: &Path) -> Result<(), InstallError> {
    std::fs::copy(from, to).map_err(io(from))?;
    chown_to_sandbox(to)
}

/// Files the hub puts into an install dir must be the sandbox user's too.
fn chown_to_sandbox(p: &Path) -> Result<(), InstallError> {
    if nix::unistd::getuid().is_root() {
        let (uid, gid) = profile::run_as();
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(io(p))?;
    }
    Ok(())
}

fn read_json(p: &Path) -> Result<serde_json::Value, InstallError> {
    let text = std::fs::read(p).map_err(io(p))?;
    serde_json::from_slice(&text).map_err(|e| InstallError::Result(format!("{}: {e}", p.display())))
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_prune() {
        let home = tempfile::tempdir().unwrap();
        let pkg = pkg_dir(home.path());
        std::fs::create_dir_all(&pkg).unwrap();
        for d in ["v1", "v2", "v3"] {
            std::fs::create_dir(pkg.join(d)).unwrap();
        }
        let one = |dir: &str, version: &str| Installed {
            dir: dir.into(),
            requested: "Npm pkg".into(),
            kind: Kind::Npm,
            package: "pkg".into(),
            version: version.into(),
            program: format!("{dir}/node_modules/.bin/pkg"),
            lockfile: format!("{dir}/package-lock.json"),
            lockfile_sha256: sha256_hex(b""),
            installed_at: 1,
            env_passed: vec!["HTTPS_PROXY".into()],
            python: None,
            overrides: vec![],
            pinned: vec![format!("pkg@{version}")],
        };
        let first = Record {
            current: one("v2", "1.0.0"),
            previous: Some(one("v1", "0.9.0")),
        };
        switch(home.path(), Some(first), one("v3", "1.1.0")).unwrap();
        let r = read_record(home.path()).unwrap();
        assert_eq!(r.current.version, "1.1.0");
        assert_eq!(r.previous.as_ref().unwrap().version, "1.0.0");
        // Only current and previous are kept.
        assert!(!pkg.join("v1").exists() && pkg.join("v2").exists() && pkg.join("v3").exists());
        let text = std::fs::read_to_string(pkg.join(RECORD)).unwrap();
        assert!(text.contains("\"lockfileSha256\": \"e3b0c442"), "{text}");
    }

    #[test]
    fn proxy_and_ca_variables_are_named() {
        assert!(PASSED_VARS.contains(&"HTTPS_PROXY"));
        assert!(PASSED_VARS
            .iter()
            .any(|v| v.eq_ignore_ascii_case("npm_config_registry")));
        let configured = BTreeMap::from([("PATH".to_string(), "/bin".to_string())]);
        let (env, passed) = install_env(&configured);
        assert_eq!(env["PATH"], "/bin");
        assert!(passed
            .iter()
            .all(|p| PASSED_VARS.iter().any(|v| v.eq_ignore_ascii_case(p))));
    }
}
