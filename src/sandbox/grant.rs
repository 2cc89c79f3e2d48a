//! Grants that work: whether each path a profile grants (`read`, `write`,
//! `exec`) is usable by the user the server will run as, and the exact
//! `setfacl` commands that make it so.
//!
//! Why: the sandbox bind-mounts a granted path, but the kernel still checks
//! the host's permissions as the server's user. A `read` grant on a home
//! directory Debian created 0700 loads, starts, reports ready, and fails only
//! at call time with `EACCES`. So `check`, `doctor` and `add` test each grant
//! as that user, walking every parent for search (x) permission.
//!
//! The test asks the kernel, not the mode bits: one `sh` running as that user
//! (`test -x`, `-r`, `-w` are access(2)), so ACLs and group membership count as
//! they will at run time. One caveat: started from root with a uid switch, the
//! probe has the user's primary group only, not supplementary groups that
//! systemd's `User=` would add; a grant through such a group is reported as
//! missing (the suggested ACL is harmless). Not root and not that user: the
//! test cannot be run, and says so.
//!
//! Who the server runs as (see `profile::run_as`): the hub's user; a root hub
//! runs servers as `nobody`; the packaged service runs as `mcp-hub`.

use super::profile::Profile;
use crate::config::{Config, Upstream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The user the servers run as, and why we think so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub why: String,
}

/// The unit files of the packaged service: their presence means the hub
/// runs as the `mcp-hub` user.
const UNITS: [&str; 3] = [
    "/lib/systemd/system/mcp-hub.service",
    "/usr/lib/systemd/system/mcp-hub.service",
    "/etc/systemd/system/mcp-hub.service",
];

/// Who the servers of a hub with this config will run as. `explicit`: a user
/// name or uid the operator named.
pub fn server_user(explicit: Option<&str>) -> Result<RunAs, String> {
    use nix::unistd::{Uid, User};
    let named = |u: User, why: String| RunAs {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        why,
    };
    if let Some(x) = explicit {
        let user = match x.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(x),
        }
        .map_err(|e| format!("user {x}: {e}"))?
        .ok_or_else(|| format!("no user {x:?} on this machine"))?;
        return Ok(named(user, "--run-as".into()));
    }
    let me = Uid::current();
    if !me.is_root() {
        let user = User::from_uid(me)
            .ok()
            .flatten()
            .ok_or_else(|| format!("uid {me} has no passwd entry"))?;
        return Ok(named(user, "the hub's user (this user)".into()));
    }
    if UNITS.iter().any(|u| Path::new(u).exists()) {
        if let Ok(Some(u)) = User::from_name("mcp-hub") {
            return Ok(named(u, "the packaged service's User=mcp-hub".into()));
        }
    }
    let nobody = super::profile::NOBODY;
    Ok(RunAs {
        name: User::from_uid(Uid::from_raw(nobody))
            .ok()
            .flatten()
            .map_or_else(|| nobody.to_string(), |u| u.name),
        uid: nobody,
        gid: nobody,
        why: "a hub run as root runs its servers as nobody".into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

impl Access {
    fn key(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Exec => "exec",
        }
    }
    fn adjective(self) -> &'static str {
        match self {
            Access::Read => "readable",
            Access::Write => "writable",
            Access::Exec => "executable",
        }
    }
    /// The ACL permissions a grant needs (X: search on directories only).
    fn perms(self) -> &'static str {
        match self {
            Access::Read | Access::Exec => "rX",
            Access::Write => "rwX",
        }
    }
    /// The access(2) tests (as `test` flags) the path itself must pass.
    fn tests(self, dir: bool) -> &'static [&'static str] {
        match (self, dir) {
            (Access::Read, true) | (Access::Exec, true) => &["-r", "-x"],
            (Access::Read, false) => &["-r"],
            (Access::Write, true) => &["-r", "-w", "-x"],
            (Access::Write, false) => &["-r", "-w"],
            (Access::Exec, false) => &["-r", "-x"],
        }
    }
}

/// One unusable grant, with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `mcpServers.NAME.sandbox.read[0]`
    pub at: String,
    pub server: String,
    pub path: PathBuf,
    pub access: Access,
    pub user: String,
    /// What stops it, e.g. `/home/administrator is 0700`.
    pub blocker: String,
    /// Each command, as arguments.
    pub fix: Vec<Vec<String>>,
}

impl Problem {
    pub fn fix_line(&self) -> String {
        self.fix
            .iter()
            .map(|c| c.join(" "))
            .collect::<Vec<_>>()
            .join(" && ")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} is not {} by {} ({}); grant it with: {}",
            self.at,
            self.path.display(),
            self.access.adjective(),
            self.user,
            self.blocker,
            self.fix_line()
        )
    }
}

/// The outcome of testing a config's grants.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Why nothing could be tested (not root, and not the servers' user).
    pub untested: Option<String>,
}

/// Every grant of every enabled stdio server, as (config path, path, access).
pub fn grants_of(name: &str, p: &Profile) -> Vec<(String, PathBuf, Access)> {
    let mut out = vec![];
    for (list, access) in [
        (&p.read, Access::Read),
        (&p.write, Access::Write),
        (&p.exec, Access::Exec),
    ] {
        for (i, path) in list.iter().enumerate() {
            out.push((
                format!("mcpServers.{name}.sandbox.{}[{i}]", access.key()),
                path.clone(),
                access,
            ));
        }
    }
    out
}

/// Tests every grant in `cfg` (or only `only`'s) as `user`.
pub fn check(cfg: &Config, only: Option<&str>, user: &RunAs) -> Report {
    let mut grants = vec![];
    for s in cfg.servers.values() {
        if s.disabled || only.is_some_and(|o| o != s.name) {
            continue;
        }
        if let Upstream::Stdio(spec) = &s.upstream {
            if let Some(p) = &spec.sandbox {
                grants.extend(
                    grants_of(&s.name, p)
                        .into_iter()
                        .map(|(at, path, a)| (s.name.clone(), at, path, a)),
                );
            }
        }
    }
    check_grants(&grants, user)
}

/// Tests (server, config path, path, access) grants as `user`.
pub fn check_grants(grants: &[(String, String, PathBuf, Access)], user: &RunAs) -> Report {
    if grants.is_empty() {
        return Report::default();
    }
    let me = nix::unistd::Uid::current();
    if !me.is_root() && me.as_raw() != user.uid {
        return Report {
            problems: vec![],
            untested: Some(format!(
                "grants not tested: they are tested as {} (the servers' user), which needs root",
                user.name
            )),
        };
    }
    // Every (flag, path) test, deduplicated, then one probe process for all.
    let mut tests: Vec<(&'static str, PathBuf)> = vec![];
    let mut push = |flag: &'static str, p: PathBuf| {
        if !tests.iter().any(|(f, q)| *f == flag && *q == p) {
            tests.push((flag, p));
        }
    };
    for (_, _, path, access) in grants {
        for a in ancestors(path) {
            push("-x", a);
        }
        for flag in access.tests(path.is_dir()) {
            push(flag, path.clone());
        }
    }
    let results = match probe(&tests, user) {
        Ok(r) => r,
        Err(e) => {
            return Report {
                problems: vec![],
                untested: Some(format!("grants not tested as {}: {e}", user.name)),
            }
        }
    };
    let passed = |flag: &str, p: &Path| {
        tests
            .iter()
            .zip(&results)
            .find(|((f, q), _)| *f == flag && q == p)
            .is_none_or(|(_, ok)| *ok)
    };
    let mut problems = vec![];
    for (server, at, path, access) in grants {
        let blocked: Vec<PathBuf> = ancestors(path)
            .into_iter()
            .filter(|a| !passed("-x", a))
            .collect();
        let own_ok = access.tests(path.is_dir()).iter().all(|f| passed(f, path));
        if blocked.is_empty() && own_ok {
            continue;
        }
        let u = &user.name;
        let mut fix: Vec<Vec<String>> = blocked
            .iter()
            .map(|a| {
                vec![
                    "setfacl".into(),
                    "-m".into(),
                    format!("u:{u}:x"),
                    a.display().to_string(),
                ]
            })
            .collect();
        let perms = access.perms();
        fix.push(if path.is_dir() {
            vec![
                "setfacl".into(),
                "-R".into(),
                "-m".into(),
                format!("u:{u}:{perms},d:u:{u}:{perms}"),
                path.display().to_string(),
            ]
        } else {
            vec![
                "setfacl".into(),
                "-m".into(),
                format!("u:{u}:{perms}"),
                path.display().to_string(),
            ]
        });
        let first = blocked.first().unwrap_or(path);
        problems.push(Problem {
            at: at.clone(),
            server: server.clone(),
            path: path.clone(),
            access: *access,
            user: u.clone(),
            blocker: describe(first),
            fix,
        });
    }
    Report {
        problems,
        untested: None,
    }
}

/// `/home/administrator is 0700` (with the owner when it is not root).
fn describe(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => {
            let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid()))
                .ok()
                .flatten()
                .map_or_else(|| m.uid().to_string(), |u| u.name);
            format!(
                "{} is {:04o}, owned by {owner}",
                p.display(),
                m.mode() & 0o7777
            )
        }
        Err(e) => format!("{}: {e}", p.display()),
    }
}

/// The directories above `p`, from `/` down.
fn ancestors(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = p.ancestors().skip(1).map(Path::to_path_buf).collect();
    v.reverse();
    v
}

/// Runs every test in one `sh` as `user`: true where access(2) allows it.
fn probe(tests: &[(&str, PathBuf)], user: &RunAs) -> Result<Vec<bool>, String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"while [ $# -gt 1 ]; do if test "$1" "$2"; then echo y; else echo n; fi; shift 2; done"#)
        .arg("mcp-hub-grant-probe");
    for (flag, p) in tests {
        cmd.arg(flag).arg(p);
    }
    if nix::unistd::Uid::current().as_raw() != user.uid {
        cmd.uid(user.uid).gid(user.gid);
    }
    let out = cmd
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let lines: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l == "y")
        .collect();
    if lines.len() != tests.len() {
        return Err(format!(
            "the probe answered {} of {} tests: {}",
            lines.len(),
            tests.len(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(lines)
}

/// Runs a problem's `setfacl` commands.
pub fn apply(p: &Problem) -> Result<(), String> {
    for c in &p.fix {
        let out = std::process::Command::new(&c[0])
            .args(&c[1..])
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("{} is not installed (Debian: apt install acl)", c[0])
                }
                _ => format!("{}: {e}", c.join(" ")),
            })?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                c.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_walk_from_the_root() {
        assert_eq!(
            ancestors(Path::new("/a/b/c")),
            [PathBuf::from("/"), "/a".into(), "/a/b".into()]
        );
    }

    #[test]
    fn a_closed_parent_is_reported_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::Uid::current().is_root() {
            panic!("this test needs root: it checks a grant as nobody");
        }
        let d = tempfile::tempdir().unwrap();
        let home = d.path().join("home");
        let projects = home.join("projects");
        std::fs::create_dir_all(&projects).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let user = server_user(Some("nobody")).unwrap();
        let grants = vec![(
            "fs".to_string(),
            "mcpServers.fs.sandbox.read[0]".to_string(),
            projects.clone(),
            Access::Read,
        )];
        let r = check_grants(&grants, &user);
        assert!(r.untested.is_none());
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        let p = &r.problems[0];
        assert_eq!(
            p.to_string(),
            format!(
                "mcpServers.fs.sandbox.read[0]: {} is not readable by nobody ({} is 0700, owned by root); grant it with: setfacl -m u:nobody:x {} && setfacl -R -m u:nobody:rX,d:u:nobody:rX {}",
                projects.display(),
                home.display(),
                home.display(),
                projects.display()
            )
        );
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(check_grants(&grants, &user).problems.is_empty());
    }
}
