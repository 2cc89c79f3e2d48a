//! What this host can enforce: the Landlock ABI, user namespaces, seccomp and
//! cgroup v2 delegation, plus a live start of a trivial program through the real
//! helper. `doctor` prints it; each server's profile is checked against it.

use super::{cgroup, profile::Profile};
use crate::config::{Config, Upstream};

/// Facts about the host, gathered once.
pub struct Host {
    pub landlock_abi: i32,
    /// `Ok`: a program started in the full sandbox as this user.
    pub live: Result<(), String>,
    pub unprivileged_userns: Result<(), String>,
    pub seccomp: Result<(), String>,
    pub cgroup: Result<std::path::PathBuf, String>,
    pub is_root: bool,
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Host {
    pub fn probe() -> Host {
        let unprivileged_userns = if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref()
            == Some("0")
        {
            Err("kernel.unprivileged_userns_clone = 0".into())
        } else if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
            Err("user.max_user_namespaces = 0".into())
        } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
            == Some("1")
        {
            Err("kernel.apparmor_restrict_unprivileged_userns = 1 (AppArmor needs a profile allowing userns for /usr/bin/mcp-hub)".into())
        } else {
            Ok(())
        };
        let seccomp = match read("/proc/sys/kernel/seccomp/actions_avail") {
            Some(a) if a.split_whitespace().any(|x| x == "errno") => {
                super::seccomp::filters().map(drop)
            }
            Some(a) => Err(format!("the kernel's seccomp actions ({a}) lack errno")),
            None => Err("the kernel has no seccomp filter support".into()),
        };
        Host {
            landlock_abi: super::exec::landlock_abi(),
            live: live_check(),
            unprivileged_userns,
            seccomp,
            cgroup: cgroup::inspect(),
            is_root: nix::unistd::Uid::effective().is_root(),
        }
    }

    /// What keeps `profile` from being fully enforced here; empty when nothing.
    pub fn missing(&self, profile: &Profile) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = &self.live {
            out.push(format!("the sandbox does not start: {e}"));
        }
        if self.landlock_abi < 1 {
            out.push(format!(
                "landlock: kernel ABI {}, profile requires >= 1",
                self.landlock_abi
            ));
        } else if (profile.connect.is_some() || profile.bind.is_some()) && self.landlock_abi < 4 {
            out.push(format!(
                "landlock: kernel ABI {}, connect/bind port rules require >= 4",
                self.landlock_abi
            ));
        }
        if let Err(e) = &self.seccomp {
            out.push(format!("seccomp: {e}"));
        }
        if profile.limits.needs_cgroup() {
            if let Err(e) = &self.cgroup {
                out.push(format!("memoryMax/cpuQuota: limits not enforced: {e}"));
            }
        }
        out
    }
}

/// Runs this very binary with `--version` in a default sandbox, the way the hub
/// starts a server.
fn live_check() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let home = std::env::temp_dir().join(format!("mcp-hub-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
    let env = Default::default();
    let profile = Profile::default();
    let (uid, gid) = super::profile::run_as();
    let exe_s = exe.display().to_string();
    let spec = super::profile::build(
        &profile,
        &super::profile::Request {
            server: "doctor",
            command: &exe_s,
            args: &["--version".to_string()],
            env: &env,
            cwd: None,
            default_path: "/usr/bin:/bin",
            home: &home,
            cgroup: None,
            parent_pid: std::process::id(),
            uid,
            gid,
        },
    )
    .map_err(|e| e.to_string());
    let result = spec.and_then(|spec| {
        let (mut cmd, status) = super::helper_command(&spec).map_err(|e| e.to_string())?;
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        drop(cmd);
        let setup = super::wait_ready_blocking(status);
        let out = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
        setup.map_err(|e| e.to_string())?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("mcp-hub") {
            Ok(())
        } else {
            Err(format!(
                "the sandboxed program failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    });
    let _ = std::fs::remove_dir_all(&home);
    result
}

/// The `doctor` report, and whether every configured profile is enforceable.
pub fn report(host: &Host, cfg: Option<&Config>) -> (String, bool) {
    let mut out = String::new();
    let mut ok = true;
    let yes_no = |r: &Result<(), String>| match r {
        Ok(()) => "yes".to_string(),
        Err(e) => format!("NO ({e})"),
    };
    out.push_str(&format!(
        "landlock ABI:                 {}\n",
        match host.landlock_abi {
            0 => "unavailable".to_string(),
            n if n >= 6 =>
                format!("{n} (filesystem, TCP ports, scoped signals and abstract sockets)"),
            n if n >= 4 => format!("{n} (filesystem, TCP ports)"),
            n => format!("{n} (filesystem only)"),
        }
    ));
    out.push_str(&format!(
        "user namespaces (as {}):{}{}\n",
        if host.is_root { "root" } else { "this user" },
        if host.is_root { "     " } else { "" },
        yes_no(&host.live)
    ));
    out.push_str(&format!(
        "unprivileged user namespaces: {}\n",
        yes_no(&host.unprivileged_userns)
    ));
    out.push_str(&format!(
        "seccomp filters:              {}\n",
        yes_no(&host.seccomp)
    ));
    out.push_str(&format!(
        "  (denied: {})\n",
        super::seccomp::denied_names()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "cgroup v2 limits:             {}\n",
        match &host.cgroup {
            Ok(dir) => format!("delegated ({}; memory, pids, cpu)", dir.display()),
            Err(e) => format!("limits not enforced: {e}"),
        }
    ));
    out.push_str(
        "  (pidsMax is enforced either way, as RLIMIT_NPROC in the sandbox's own user namespace)\n",
    );
    let Some(cfg) = cfg else {
        return (out, host.live.is_ok());
    };
    out.push('\n');
    for s in cfg.servers.values() {
        let Upstream::Stdio(stdio) = &s.upstream else {
            out.push_str(&format!("{}: remote server, no sandbox needed\n", s.name));
            continue;
        };
        match &stdio.sandbox {
            None => out.push_str(&format!(
                "{}: WARNING: sandbox disabled (\"sandbox\": false)\n",
                s.name
            )),
            Some(p) => {
                out.push_str(&format!("{}: limits: {}\n", s.name, limits_line(&p.limits)));
                if let Some(i) = super::install::describe(stdio) {
                    out.push_str(&format!("{}: package: {}\n", s.name, install_line(&i)));
                }
                let missing = host.missing(p);
                if missing.is_empty() {
                    out.push_str(&format!("{}: fully enforced\n", s.name));
                } else {
                    if !s.disabled {
                        ok = false;
                    }
                    out.push_str(&format!("{}: NOT fully enforced\n", s.name));
                    for m in missing {
                        out.push_str(&format!("    - {m}\n"));
                    }
                }
            }
        }
    }
    (out, ok)
}

/// A profile's limits as `doctor` prints them, memory in bytes.
pub fn limits_line(l: &super::profile::Limits) -> String {
    let memory = l.memory_max.map_or("none".to_string(), super::size::show);
    let cpu = l.cpu_quota.map_or("none".to_string(), |q| format!("{q}%"));
    format!("memoryMax {memory}, pidsMax {}, cpuQuota {cpu}", l.pids_max)
}

/// A package-runner server's install, as `doctor` prints it.
fn install_line(i: &serde_json::Value) -> String {
    match (&i["version"], &i["error"]) {
        (_, serde_json::Value::String(e)) => format!("cannot be installed: {e}"),
        (serde_json::Value::String(v), _) => format!(
            "{} {v} pinned in {} (lockfile sha256 {}; passed: {})",
            i["package"].as_str().unwrap_or(""),
            i["dir"].as_str().unwrap_or(""),
            i["lockfileSha256"].as_str().unwrap_or(""),
            i["envPassed"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "no variables".into()),
        ),
        _ => format!(
            "{} {}",
            i["package"].as_str().unwrap_or(""),
            i["note"].as_str().unwrap_or("")
        ),
    }
}
