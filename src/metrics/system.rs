//! What a scrape reads from the system: each upstream's lifecycle state and
//! its child's memory and CPU (the server's delegated cgroup when there is
//! one, else `/proc` for the child's process group), and the hub's own
//! `process_*` metrics from `/proc/self`.
//!
//! Read at scrape time only, never on a request's path. Without a cgroup, a
//! per-client server's figures are those of its newest child (the supervisor
//! tracks one pid per server); with one, every child of the server counts.
//! CPU seconds are those of the processes alive now (plus what they reaped),
//! so the counter starts again after a restart, which Prometheus's `rate`
//! treats as a counter reset.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::path::{Path, PathBuf};

/// The states `mcphub_upstream_state` shows, as `/status` names them.
pub const STATES: [&str; 6] = [
    "stopped", "starting", "ready", "backoff", "failed", "disabled",
];

/// A child's memory in bytes and CPU seconds, when they could be read.
pub type Usage = (Option<u64>, Option<f64>);

/// One configured server as the hub sees it at a scrape: what the hub
/// knows (its registry builds these), from which the child's resources
/// are read here.
#[derive(Debug, Clone)]
pub struct UpstreamReading {
    pub name: String,
    /// One of [`STATES`].
    pub state: &'static str,
    /// The newest child's pid (a process-group leader), if one runs.
    pub pid: Option<u32>,
    /// The delegated cgroup the server's sub-cgroups live in, if any.
    pub cgroups: Option<PathBuf>,
}

impl UpstreamReading {
    /// The child's memory in bytes and CPU seconds: from its cgroups when
    /// delegated, else from /proc for its process group.
    pub fn usage(&self) -> Usage {
        let from_cgroup = self
            .cgroups
            .as_deref()
            .and_then(|d| cgroup_usage(d, &self.name));
        match from_cgroup {
            Some((m, c)) => (Some(m), Some(c)),
            None => match self.pid.and_then(group_usage) {
                Some((m, c)) => (Some(m), Some(c)),
                None => (None, None),
            },
        }
    }
}

/// The server's sub-cgroups (`srv-<name>-<n>`, one per start): memory.current
/// and cpu.stat's usage_usec, summed. `None` when it has none now.
fn cgroup_usage(base: &Path, server: &str) -> Option<(u64, f64)> {
    let prefix = format!("srv-{server}-");
    let mut found = false;
    let (mut mem, mut usec) = (0u64, 0u64);
    for e in std::fs::read_dir(base).ok()?.flatten() {
        let name = e.file_name();
        let Some(seq) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        // "srv-a-3" is server a's; "srv-a-b-3" is server a-b's.
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        found = true;
        let dir = e.path();
        mem += std::fs::read_to_string(dir.join("memory.current"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        usec += std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
    }
    found.then_some((mem, usec as f64 / 1e6))
}

/// The fields of `/proc/<pid>/stat` the metrics use.
#[derive(Debug, Default, Clone, Copy)]
struct Stat {
    pgrp: i64,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
    own_ticks: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

fn read_stat(dir: &Path) -> Option<Stat> {
    let text = std::fs::read_to_string(dir.join("stat")).ok()?;
    parse_stat(&text)
}

/// Parses a stat line: the command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state).
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<i64>().ok());
    let (ut, st, cut, cst) = (n(14)?, n(15)?, n(16)?, n(17)?);
    Some(Stat {
        pgrp: n(5)?,
        ticks: (ut + st + cut.max(0) + cst.max(0)) as u64,
        own_ticks: (ut + st) as u64,
        start_ticks: n(22)? as u64,
        vsize: n(23)? as u64,
        rss_pages: n(24)?.max(0) as u64,
    })
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096) as u64
}

/// Resident memory and CPU seconds of every process in `pgid`'s group (a
/// child is started as a process-group leader; the sandbox helper and the
/// server it runs are both in the group).
fn group_usage(pgid: u32) -> Option<(u64, f64)> {
    let mut found = false;
    let (mut pages, mut ticks) = (0u64, 0u64);
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let is_pid = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Some(st) = read_stat(&e.path()) else {
            continue;
        };
        if st.pgrp == i64::from(pgid) {
            found = true;
            pages += st.rss_pages;
            ticks += st.ticks;
        }
    }
    found.then(|| (pages * page_size(), ticks as f64 / clock_ticks()))
}

/// The hub's own process, as the standard `process_*` metrics.
#[derive(Debug, Default)]
pub struct ProcessReading {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time: Option<f64>,
}

pub fn process() -> ProcessReading {
    let me = Path::new("/proc/self");
    let stat = read_stat(me);
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let tck = clock_ticks();
    ProcessReading {
        cpu_seconds: stat.map(|s| s.own_ticks as f64 / tck),
        resident_bytes: stat.map(|s| s.rss_pages * page_size()),
        virtual_bytes: stat.map(|s| s.vsize),
        open_fds: std::fs::read_dir(me.join("fd"))
            .ok()
            .map(|d| d.count() as u64),
        max_fds: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, _)| soft),
        start_time: stat
            .zip(boot)
            .map(|(s, b)| b as f64 + s.start_ticks as f64 / tck),
    }
}

pub fn encode_process(
    enc: &mut DescriptorEncoder,
    p: &ProcessReading,
) -> Result<(), std::fmt::Error> {
    if let Some(v) = p.cpu_seconds {
        let m = enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(v).encode(m)?;
    }
    let gauges = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            p.max_fds,
        ),
    ];
    for (name, help, v) in gauges {
        if let Some(v) = v {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(m)?;
        }
    }
    if let Some(v) = p.start_time {
        let m = enc.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(v).encode(m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parens() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 12345 1048576 300 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pgrp, 42);
        assert_eq!(s.own_ticks, 300);
        assert_eq!(s.ticks, 310);
        assert_eq!(s.start_ticks, 12345);
        assert_eq!(s.vsize, 1048576);
        assert_eq!(s.rss_pages, 300);
    }

    #[test]
    fn sums_a_servers_sub_cgroups_and_only_its_own() {
        let d = tempfile::tempdir().unwrap();
        let group = |name: &str, mem: u64, usec: u64| {
            let g = d.path().join(name);
            std::fs::create_dir(&g).unwrap();
            std::fs::write(g.join("memory.current"), format!("{mem}\n")).unwrap();
            std::fs::write(
                g.join("cpu.stat"),
                format!("usage_usec {usec}\nuser_usec 1\nsystem_usec 2\n"),
            )
            .unwrap();
        };
        group("srv-fx-0", 1000, 1_500_000);
        group("srv-fx-7", 24, 500_000);
        // Another server whose name starts like this one's.
        group("srv-fx-b-3", 99999, 9_000_000);
        group("hub", 5555, 1);
        assert_eq!(cgroup_usage(d.path(), "fx"), Some((1024, 2.0)));
        assert_eq!(cgroup_usage(d.path(), "fx-b"), Some((99999, 9.0)));
        assert_eq!(cgroup_usage(d.path(), "other"), None);
    }

    #[test]
    fn reads_its_own_process() {
        let p = process();
        assert!(p.cpu_seconds.is_some() && p.resident_bytes.unwrap() > 0);
        assert!(p.open_fds.unwrap() > 0 && p.max_fds.unwrap() > 0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = p.start_time.unwrap();
        assert!(start <= now + 1.0 && start > now - 86400.0 * 365.0);
    }
}
