//! cgroup v2 limits (memory.max, pids.max, cpu.max) for sandboxed servers.
//!
//! They need a delegated cgroup: systemd's `Delegate=yes` hands the service's
//! cgroup to the hub. The "no internal processes" rule means controllers can
//! only be enabled for children of a cgroup without processes, so the hub first
//! moves itself into a leaf (`hub`), then enables the controllers, and each
//! server start gets its own sub-cgroup next to it. Without delegation the hub
//! says "limits not enforced" (log, /status, doctor) and carries on, unless a
//! profile marks its limits as required.

use super::profile::Limits;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// What this process found about its cgroup, once.
#[derive(Debug, Clone)]
pub enum State {
    /// Limits are enforced in sub-cgroups of this directory.
    Delegated { dir: PathBuf },
    /// Why not.
    NotEnforced(String),
}

static STATE: OnceLock<State> = OnceLock::new();
static SEQ: AtomicU64 = AtomicU64::new(0);
const NEEDED: &[&str] = &["memory", "pids", "cpu"];

/// The hub's cgroup state. The first call claims delegation (moves the hub into
/// its leaf); later calls return the same answer.
pub fn state() -> &'static State {
    STATE.get_or_init(|| match claim() {
        Ok(dir) => State::Delegated { dir },
        Err(why) => State::NotEnforced(why),
    })
}

/// The state if [`state`] has been asked already; never claims delegation
/// itself (a metrics scrape must not move the hub between cgroups).
pub fn known() -> Option<&'static State> {
    STATE.get()
}

impl State {
    pub fn describe(&self) -> String {
        match self {
            State::Delegated { dir } => {
                format!("enforced (cgroup v2, delegated: {})", dir.display())
            }
            State::NotEnforced(why) => format!("limits not enforced: {why}"),
        }
    }
}

/// Where this process's cgroup v2 directory is, and whether it is ours to
/// manage. Read-only: `doctor` uses it too.
pub fn inspect() -> Result<PathBuf, String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("the hub is in no cgroup v2 hierarchy")?
        .trim()
        .to_string();
    let mount = cgroup2_mount().ok_or("no cgroup2 file system is mounted")?;
    let dir = mount.join(rel.trim_start_matches('/'));
    let available = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let missing: Vec<_> = NEEDED
        .iter()
        .filter(|c| !available.split_whitespace().any(|a| a == **c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the cgroup v2 hierarchy at {} lacks the {} controller(s) (a hybrid or v1 host)",
            mount.display(),
            missing
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if rel == "/" {
        return Err(
            "the hub runs in the root cgroup; run it as a systemd service with Delegate=yes".into(),
        );
    }
    let writable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok();
    if !writable(&dir) || !writable(&dir.join("cgroup.subtree_control")) {
        return Err(format!(
            "{} is not delegated to the hub (systemd: Delegate=yes)",
            dir.display()
        ));
    }
    Ok(dir)
}

fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

fn claim() -> Result<PathBuf, String> {
    let dir = inspect()?;
    let leaf = dir.join("hub");
    let mkdir = |p: &Path| match std::fs::create_dir(p) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(format!("{}: {e}", p.display()))
        }
        _ => Ok(()),
    };
    mkdir(&leaf)?;
    // Every process of the cgroup: the hub, and anything systemd put next to it.
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.split_whitespace() {
        std::fs::write(leaf.join("cgroup.procs"), pid)
            .map_err(|e| format!("moving pid {pid} into {}: {e}", leaf.display()))?;
    }
    let enable: String = NEEDED.iter().map(|c| format!("+{c} ")).collect();
    std::fs::write(dir.join("cgroup.subtree_control"), enable.trim())
        .map_err(|e| format!("{}/cgroup.subtree_control: {e}", dir.display()))?;
    Ok(dir)
}

/// One server start's sub-cgroup; removed when dropped (after the child exited).
#[derive(Debug)]
pub struct Group {
    pub dir: PathBuf,
}

impl Group {
    /// Creates the sub-cgroup with the profile's limits.
    pub fn create(base: &Path, server: &str, limits: &Limits) -> Result<Group, String> {
        let dir = base.join(format!(
            "srv-{server}-{}",
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let group = Group { dir };
        let set = |file: &str, value: String| {
            std::fs::write(group.dir.join(file), &value)
                .map_err(|e| format!("{}/{file} = {value}: {e}", group.dir.display()))
        };
        if let Some(m) = limits.memory_max {
            set("memory.max", m.to_string())?;
            // A hard limit means no escape into swap; the OOM killer acts instead.
            if group.dir.join("memory.swap.max").exists() {
                set("memory.swap.max", "0".into())?;
            }
        }
        set("pids.max", limits.pids_max.to_string())?;
        if let Some(pct) = limits.cpu_quota {
            set("cpu.max", format!("{} 100000", u64::from(pct) * 1000))?;
        }
        Ok(group)
    }

    /// Whether the kernel OOM-killed something in this group.
    pub fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("memory.events"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Empty once the child is reaped; a straggler would keep it busy, so
        // kill whatever is left first.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        if std::fs::remove_dir(&self.dir).is_ok() {
            return;
        }
        // Killed tasks take a moment to leave; wait for them off the runtime.
        let dir = std::mem::take(&mut self.dir);
        std::thread::spawn(move || {
            for _ in 0..50 {
                std::thread::sleep(std::time::Duration::from_millis(10));
                if std::fs::remove_dir(&dir).is_ok() {
                    return;
                }
            }
            tracing::warn!("cannot remove cgroup {}", dir.display());
        });
    }
}
