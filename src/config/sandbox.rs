//! The `sandbox` key of a stdio server: read as written and validated here,
//! with the rest of the config (paths must exist, sizes and percentages must
//! parse), so the config depends on nothing of the sandbox. What a validated
//! [`Profile`] becomes at start (mounts, the helper's spec) is
//! `sandbox::profile`'s business.

use serde::Deserialize;
use std::path::PathBuf;

/// The profile as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    exec: Vec<String>,
    #[serde(default)]
    tmpfs: Vec<String>,
    network: Option<String>,
    connect: Option<Vec<u16>>,
    bind: Option<Vec<u16>>,
    memory_max: Option<serde_json::Value>,
    pids_max: Option<u64>,
    cpu_quota: Option<String>,
    limits_required: Option<bool>,
    browser: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host's network (the default: package runners need their registry).
    Host,
    /// A private network namespace with only `lo`.
    None,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    pub tmpfs: Vec<PathBuf>,
    pub network: Network,
    pub connect: Option<Vec<u16>>,
    pub bind: Option<Vec<u16>>,
    pub limits: Limits,
    /// What Chromium-based servers need (`browser.rs`).
    pub browser: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory_max: Option<u64>,
    pub pids_max: u64,
    /// Percent of one CPU, as systemd's CPUQuota= (200 = two CPUs).
    pub cpu_quota: Option<u32>,
    /// Refuse to start the server when cgroup limits cannot be enforced.
    pub required: bool,
}

/// Tasks (processes and threads) a server may have when the profile says nothing.
pub const DEFAULT_PIDS_MAX: u64 = 512;

impl Default for Profile {
    fn default() -> Self {
        Profile {
            read: vec![],
            write: vec![],
            exec: vec![],
            tmpfs: vec![],
            network: Network::Host,
            connect: None,
            bind: None,
            limits: Limits {
                memory_max: None,
                pids_max: DEFAULT_PIDS_MAX,
                cpu_quota: None,
                required: false,
            },
            browser: false,
        }
    }
}

impl Limits {
    /// Whether anything here needs cgroups (pidsMax does not: see `Spec::nproc`).
    pub fn needs_cgroup(&self) -> bool {
        self.memory_max.is_some() || self.cpu_quota.is_some()
    }
}

/// Validates `sandbox` as written at `path`. `None` in: the secure default.
/// `Ok(None)`: the operator opted out with `false`.
pub fn validate(
    value: Option<&serde_json::Value>,
    path: &str,
) -> Result<Option<Profile>, (String, String)> {
    let raw: Raw = match value {
        None | Some(serde_json::Value::Bool(true)) => return Ok(Some(Profile::default())),
        Some(serde_json::Value::Bool(false)) => return Ok(None),
        Some(v @ serde_json::Value::Object(_)) => serde_path_to_error::deserialize(v.clone())
            .map_err(|e| {
                let p = e.path().to_string();
                let at = if p == "." {
                    path.to_string()
                } else {
                    format!("{path}.{p}")
                };
                (at, e.into_inner().to_string())
            })?,
        Some(_) => {
            return Err((
                path.into(),
                "must be false (no sandbox) or an object (a profile)".into(),
            ))
        }
    };
    let paths =
        |list: &[String], key: &str, must_exist: bool| -> Result<Vec<PathBuf>, (String, String)> {
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    let at = format!("{path}.{key}[{i}]");
                    let pb = PathBuf::from(p);
                    if !pb.is_absolute() {
                        return Err((at, format!("{p} is not an absolute path")));
                    }
                    if !must_exist {
                        return Ok(pb);
                    }
                    std::fs::canonicalize(&pb).map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => (at, format!("{p} does not exist")),
                        _ => (at, format!("{p}: {e}")),
                    })
                })
                .collect()
        };
    let network = match raw.network.as_deref() {
        None | Some("host") => Network::Host,
        Some("none") => Network::None,
        Some(other) => {
            return Err((
                format!("{path}.network"),
                format!("{other:?} is not \"none\" or \"host\""),
            ))
        }
    };
    for (key, ports) in [("connect", &raw.connect), ("bind", &raw.bind)] {
        if let Some(i) = ports.iter().flatten().position(|p| *p == 0) {
            return Err((format!("{path}.{key}[{i}]"), "0 is not a TCP port".into()));
        }
    }
    let memory_max = match &raw.memory_max {
        None => None,
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(serde_json::Value::String(s)) => Some(super::size::parse(s).map_err(|e| {
            (
                format!("{path}.memoryMax"),
                format!("{s:?} is not a size ({e}); write e.g. \"256M\" or \"1G\""),
            )
        })?),
        Some(v) => return Err((format!("{path}.memoryMax"), format!("{v} is not a size"))),
    };
    if memory_max.is_some_and(|m| m < 4 * 1024 * 1024) {
        return Err((format!("{path}.memoryMax"), "must be at least 4MiB".into()));
    }
    let cpu_quota = match &raw.cpu_quota {
        None => None,
        Some(s) => {
            let n = s
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    (
                        format!("{path}.cpuQuota"),
                        format!("{s:?} is not a percentage; write e.g. \"50%\" or \"200%\""),
                    )
                })?;
            Some(n)
        }
    };
    if raw.pids_max == Some(0) {
        return Err((format!("{path}.pidsMax"), "must be at least 1".into()));
    }
    Ok(Some(Profile {
        read: paths(&raw.read, "read", true)?,
        write: paths(&raw.write, "write", true)?,
        exec: paths(&raw.exec, "exec", true)?,
        tmpfs: paths(&raw.tmpfs, "tmpfs", false)?,
        network,
        connect: raw.connect,
        bind: raw.bind,
        limits: Limits {
            memory_max,
            pids_max: raw.pids_max.unwrap_or(DEFAULT_PIDS_MAX),
            cpu_quota,
            required: raw.limits_required.unwrap_or(false),
        },
        browser: raw.browser.unwrap_or(false),
    }))
}
