//! What one process costs per call, read around a measurement: its own CPU
//! time (utime+stime from `/proc/<pid>/stat`, children excluded), context
//! switches (voluntary + involuntary, summed over `/proc/<pid>/task/*`), and
//! system calls.
//!
//! System calls come from `perf stat -e raw_syscalls:sys_enter`, because
//! `/proc/<pid>/io` counts only the read/write family (and is all zeros on
//! kernels without task I/O accounting). `perf stat -p` does not count on
//! every kernel, so the measured process is *started* under `perf stat -I`,
//! which counts it, its threads and its children and appends a line per
//! interval to a file; the fixture child is started under a second `perf
//! stat` of its own, and the process's own count is the difference. Each
//! reading is the sum of the intervals written so far, so a measurement
//! snapshots after a quiet moment at both ends (see `QUIET`).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Interval of the `perf stat -I` files, in ms.
pub const PERF_MS: u64 = 100;
/// Idle time before and after a measurement's load, so that the perf files
/// (written every `PERF_MS`) hold everything the load caused, and no more.
pub const QUIET: Duration = Duration::from_millis(2 * PERF_MS + 50);

/// Whether `perf stat` counts a command here (it is optional).
pub fn perf_works() -> bool {
    std::process::Command::new("perf")
        .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"])
        .output()
        .map(|o| {
            let err = String::from_utf8_lossy(&o.stderr);
            o.status.success()
                && err
                    .lines()
                    .any(|l| l.contains("sys_enter") && !l.contains("not counted"))
        })
        .unwrap_or(false)
}

/// `perf stat` arguments that run `cmd` counting its system calls into `file`.
pub fn perf_wrap(file: &Path) -> Vec<String> {
    let interval = PERF_MS.to_string();
    [
        "stat",
        "-I",
        &interval,
        "-x,",
        "-o",
        file.to_str().unwrap(),
        "-e",
        "raw_syscalls:sys_enter",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The count a `perf stat -I -x,` file holds so far (0 before its first interval).
fn perf_total(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("raw_syscalls:sys_enter"))
        .filter_map(|l| l.split(',').nth(1)?.trim().parse::<u64>().ok())
        .sum()
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    get(11) + get(12)
}

fn ctx_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One measured process: its pid, and its perf files if it runs under perf.
pub struct Probe {
    pub pid: u32,
    /// The process's own `perf stat` file (it and its children).
    pub outer: Option<PathBuf>,
    /// Its fixture child's `perf stat` file.
    pub inner: Option<PathBuf>,
    tick_us: f64,
}

#[derive(Clone, Copy)]
pub struct Snap {
    ticks: u64,
    ctxsw: u64,
    syscalls: Option<u64>,
}

/// Per call, over one measurement.
#[derive(Clone, Copy, Default)]
pub struct Cost {
    pub cpu_us: f64,
    pub ctxsw: f64,
    pub syscalls: Option<f64>,
}

impl Probe {
    pub fn new(pid: u32, outer: Option<PathBuf>, inner: Option<PathBuf>) -> Probe {
        Probe {
            pid,
            outer,
            inner,
            tick_us: 1e6 / clock_ticks_per_sec(),
        }
    }

    pub fn snap(&self) -> Snap {
        let syscalls = match (&self.outer, &self.inner) {
            (Some(o), Some(i)) => Some(perf_total(o).saturating_sub(perf_total(i))),
            _ => None,
        };
        Snap {
            ticks: cpu_ticks(self.pid),
            ctxsw: ctx_switches(self.pid),
            syscalls,
        }
    }

    pub fn cost(&self, a: Snap, b: Snap, calls: usize) -> Cost {
        let n = calls.max(1) as f64;
        Cost {
            cpu_us: (b.ticks - a.ticks) as f64 * self.tick_us / n,
            ctxsw: b.ctxsw.saturating_sub(a.ctxsw) as f64 / n,
            syscalls: a
                .syscalls
                .zip(b.syscalls)
                .map(|(a, b)| b.saturating_sub(a) as f64 / n),
        }
    }
}
