//! loadgen's A/B mode (`--against OTHER_HUB`): two hub binaries on the same
//! config and fixture, measured in alternation at c=64, so that drift on a
//! shared machine (other load, frequency, caches) falls on both alike. Each
//! round measures every hub path on A and B, in the order A B then B A on
//! the next round; the result is each side's median calls/s and the median
//! of the per-round ratios B/A, which is what a change is judged by.

use super::hub::{self, Reap};
use super::{measure, Path};
use std::time::Duration;

pub async fn run(a: &str, b: &str, cfg: &serde_json::Value, rounds: usize, secs: u64) {
    run_configs(a, cfg, b, cfg, rounds, secs).await
}

/// Like [`run`], each hub on its own config (the same binary on two
/// configs compares what a config costs).
pub async fn run_configs(
    a: &str,
    cfg_a: &serde_json::Value,
    b: &str,
    cfg_b: &serde_json::Value,
    rounds: usize,
    secs: u64,
) {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (ca, pa, addr_a) = hub::start_under(a, cfg_a, dir_a.path(), None);
    let (cb, pb, addr_b) = hub::start_under(b, cfg_b, dir_b.path(), None);
    let _a = Reap { child: ca, pid: pa };
    let _b = Reap { child: cb, pid: pb };
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("A = {a}\nB = {b}\ncalls/s at c=64, {secs} s per measurement, {rounds} rounds");
    println!(
        "{:<22} {:>5} {:>9} {:>9} {:>7}",
        "path", "round", "A", "B", "B/A"
    );
    for path in [Path::Streamable, Path::Sse, Path::Modern] {
        let (mut sa, mut sb, mut ratio) = (vec![], vec![], vec![]);
        for round in 0..rounds {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut got = [0.0; 2];
            for side in order {
                let addr = if side == 0 { &addr_a } else { &addr_b };
                got[side] = measure(path, "", addr, 64, secs).await.per_sec;
            }
            println!(
                "{:<22} {:>5} {:>9.0} {:>9.0} {:>7.3}",
                path.name(),
                round + 1,
                got[0],
                got[1],
                got[1] / got[0]
            );
            sa.push(got[0]);
            sb.push(got[1]);
            ratio.push(got[1] / got[0]);
        }
        println!(
            "{:<22} {:>5} {:>9.0} {:>9.0} {:>7.3}",
            path.name(),
            "median",
            median(sa),
            median(sb),
            median(ratio)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
