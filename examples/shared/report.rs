//! loadgen's table and targets. A row is one path at one concurrency; CPU,
//! system calls and context switches are per call, of the measured process
//! alone (the hub or the floor). The targets compare the hub as shipped
//! (`logEnabled: true`) with the floor measured in the same run.

use super::client::Path;
use super::probe::Cost;
use super::Stats;
use std::collections::HashMap;

pub struct Row {
    pub path: Path,
    pub log: bool,
    pub conc: usize,
    pub stats: Stats,
    pub cost: Cost,
}

type Rows = HashMap<(Path, bool, usize), Row>;

pub fn header() {
    println!(
        "| path | audit log | c | calls/s | p50 µs | p99 µs | CPU µs/call | × floor CPU | syscalls/call | ctx switches/call |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
}

pub fn print_row(r: &Row, floor_cpu: Option<f64>) {
    let ratio = match (r.path, floor_cpu) {
        (Path::Floor, _) | (_, None) => String::new(),
        (_, Some(f)) => format!("{:.2}×", r.cost.cpu_us / f),
    };
    let log = match (r.path, r.log) {
        (Path::Floor, _) => "–",
        (_, true) => "on",
        (_, false) => "off",
    };
    let sys = r.cost.syscalls.map_or("n/a".into(), |s| format!("{s:.2}"));
    println!(
        "| {} | {log} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {ratio} | {sys} | {:.2} |",
        r.path.name(),
        r.conc,
        r.stats.per_sec,
        r.stats.p50_us,
        r.stats.p99_us,
        r.cost.cpu_us,
        r.cost.ctxsw
    );
}

const HUB: [Path; 3] = [Path::Streamable, Path::Sse, Path::Modern];

/// The audit line's cost: CPU per call with `logEnabled` minus without.
pub fn audit_cost(rows: &Rows) {
    println!();
    println!("audit line (logEnabled), CPU µs per call, on − off:");
    for conc in super::LEVELS {
        let cells: Vec<String> = HUB
            .iter()
            .map(|&p| {
                let d = rows[&(p, true, conc)].cost.cpu_us - rows[&(p, false, conc)].cost.cpu_us;
                format!("{} {d:+.1}", p.name())
            })
            .collect();
        println!("  c={conc}: {}", cells.join(", "));
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "SHORT"
    }
}

pub fn targets(rows: &Rows, rss_after_kib: u64) {
    let on = |p: Path, c: usize| &rows[&(p, true, c)];
    let floor = |c: usize| &rows[&(Path::Floor, true, c)];
    println!();
    println!("targets (hub with logEnabled, against the floor of this run):");
    for conc in super::LEVELS {
        for p in HUB {
            let x = on(p, conc).cost.cpu_us / floor(conc).cost.cpu_us;
            println!(
                "  CPU/call ≤ 1.25× floor, {}, c={conc}: {x:.2}× {}",
                p.name(),
                mark(x <= 1.25)
            );
        }
        let (m, s) = (
            on(Path::Modern, conc).cost.cpu_us,
            on(Path::Streamable, conc).cost.cpu_us,
        );
        println!(
            "  CPU/call 2026-07-28 ≤ streamable, c={conc}: {m:.1} vs {s:.1} µs {}",
            mark(m <= s)
        );
    }
    for (p, want) in [
        (Path::Streamable, 0.90),
        (Path::Modern, 0.90),
        (Path::Sse, 0.80),
    ] {
        let x = on(p, 64).stats.per_sec / floor(64).stats.per_sec;
        println!(
            "  calls/s at c=64 ≥ {want:.2}× floor, {}: {x:.2}× {}",
            p.name(),
            mark(x >= want)
        );
    }
    for p in HUB {
        let x = on(p, 1).stats.p50_us / floor(1).stats.p50_us;
        println!(
            "  p50 at c=1 ≤ 1.10× floor, {}: {x:.2}× {}",
            p.name(),
            mark(x <= 1.10)
        );
    }
    let mib = rss_after_kib as f64 / 1024.0;
    println!(
        "  RSS after the load ≤ 15 MiB: {mib:.1} MiB {}",
        mark(mib <= 15.0)
    );
}
