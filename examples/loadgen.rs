//! Load generator for mcp-hub. One run measures `tools/call echo` along four
//! paths to the same fixture server, at concurrency 1 and 64:
//!
//! - **floor**: `examples/floor.rs`, the least an HTTP→stdio proxy must do;
//! - **hub streamable HTTP**: one 2025 session per worker, JSON answers;
//! - **hub legacy SSE**: one session per worker: a GET `/sse` stream, POSTs to
//!   the endpoint it announces, answers read off the stream and matched by id;
//! - **hub 2026-07-28**: no session; each call carries the `_meta` envelope and
//!   the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers.
//!
//! For each: calls/s, p50, p99, and what the measured process (the hub or the
//! floor, not the fixture child) spent per call: CPU time, system calls and
//! context switches (`shared/probe.rs`). The hub runs with `logEnabled: true`
//! (an audit line per call, as the shipped config has it) and, as a second
//! hub, without, which gives the audit line's cost. Then the targets, each met
//! or short, and the hub's RSS idle and with N idle sessions of each 2025
//! transport.
//!
//!     cargo build --release --bins --examples && target/release/examples/loadgen --seconds 3
//!
//! Options: --seconds N (per measurement, default 5), --sessions N (default
//! 1000), --hub PATH, --fixture PATH, --floor PATH (default target/release/…).
//! System calls need `perf` (it runs the hub and the floor, and their
//! fixture child, under `perf stat`; the bench server then has `"sandbox":
//! false`, since perf cannot run inside the sandbox); without it that column
//! says n/a.
//!
//! `--against OTHER_HUB [--rounds N]` compares two hub binaries instead
//! (`shared/ab.rs`): calls/s at c=64 on each hub path, alternating A and B
//! for N rounds (default 8), with medians and the median ratio B/A. Build the
//! other binary from another checkout, e.g. a `git worktree` of the commit
//! before a change.
//! `--named-client [--rounds N]` runs the same A/B on one binary: A with the
//! token in `authTokens`, B with it as a named client (`tokenSha256`), which
//! gives what identifying a named client costs.
//! `--oidc [--rounds N]` likewise: A with a JWT access token in `authTokens`
//! (a plain static token of the same length), B with `mcpProxy.options.oidc`
//! trusting a stand-in issuer served by this program (`shared/issuer.rs`),
//! so B checks the same token as a signed-in caller: once against the
//! issuer's keys, then from the hub's cache of checked tokens.
//! `--profile floor|streamable|sse|modern [--profile-out FILE]` runs that one
//! path at c=64 for `--seconds` under `perf record -g` of the measured process
//! (default file `perf.data`): a profile of one path, as the table cannot give.
//! The hub runs in shared session mode; request ids are unique across workers
//! because the floor does not rewrite them.

use client::{Client, Path};
use hub::Reap;
use probe::{Cost, Probe};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "shared/ab.rs"]
mod ab;
#[path = "shared/client.rs"]
mod client;
#[path = "shared/hub.rs"]
mod hub;
#[path = "shared/idle.rs"]
mod idle;
#[path = "shared/issuer.rs"]
mod issuer;
#[path = "shared/probe.rs"]
mod probe;
#[path = "shared/report.rs"]
mod report;

const TOKEN: &str = "bench-token";

/// The bearer token the bench clients send: [`TOKEN`], or in `--oidc` mode
/// the stand-in issuer's access token.
static BEARER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn bearer() -> &'static str {
    BEARER.get().map_or(TOKEN, String::as_str)
}
const LEVELS: [usize; 2] = [1, 64];

struct Opts {
    seconds: u64,
    sessions: usize,
    hub: String,
    fixture: String,
    floor: String,
    against: Option<String>,
    named_client: bool,
    oidc: bool,
    rounds: usize,
    profile: Option<Path>,
    profile_out: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 5,
        sessions: 1000,
        hub: "target/release/mcp-hub".into(),
        fixture: "target/release/mcp-fixture".into(),
        floor: "target/release/examples/floor".into(),
        against: None,
        named_client: false,
        oidc: false,
        rounds: 8,
        profile: None,
        profile_out: "perf.data".into(),
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--named-client") {
        args.remove(i);
        o.named_client = true;
    }
    if let Some(i) = args.iter().position(|a| a == "--oidc") {
        args.remove(i);
        o.oidc = true;
    }
    for w in args.chunks(2) {
        match (w[0].as_str(), w.get(1)) {
            ("--seconds", Some(v)) => o.seconds = v.parse().expect("--seconds N"),
            ("--sessions", Some(v)) => o.sessions = v.parse().expect("--sessions N"),
            ("--hub", Some(v)) => o.hub = v.clone(),
            ("--fixture", Some(v)) => o.fixture = v.clone(),
            ("--floor", Some(v)) => o.floor = v.clone(),
            ("--against", Some(v)) => o.against = Some(v.clone()),
            ("--rounds", Some(v)) => o.rounds = v.parse().expect("--rounds N"),
            ("--profile", Some(v)) => {
                o.profile = Some(match v.as_str() {
                    "floor" => Path::Floor,
                    "streamable" => Path::Streamable,
                    "sse" => Path::Sse,
                    "modern" => Path::Modern,
                    _ => panic!("--profile floor|streamable|sse|modern"),
                })
            }
            ("--profile-out", Some(v)) => o.profile_out = v.clone(),
            _ => panic!(
                "usage: loadgen [--seconds N] [--sessions N] [--hub PATH] [--fixture PATH] [--floor PATH] [--against OTHER_HUB | --named-client | --oidc] [--rounds N] [--profile floor|streamable|sse|modern [--profile-out FILE]]"
            ),
        }
    }
    o
}

/// The floor, under `perf stat` (and its child under another) with `perf`.
fn start_floor(o: &Opts, perf: Option<(&std::path::Path, &std::path::Path)>) -> (Reap, String) {
    let mut args = vec!["--fixture".to_string(), o.fixture.clone()];
    let mut cmd = match perf {
        Some((outer, inner)) => {
            args.extend(["--fixture-perf".into(), inner.to_str().unwrap().into()]);
            let mut c = Command::new("perf");
            c.args(probe::perf_wrap(outer)).arg(&o.floor);
            c
        }
        None => Command::new(&o.floor),
    };
    let mut child = cmd
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the floor (build it with cargo build --release --examples)");
    let pid = match perf {
        Some(_) => hub::child_of(child.id()),
        None => child.id(),
    };
    let addr = hub::listening(&mut child);
    (Reap { child, pid }, addr)
}

struct Stats {
    calls: usize,
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Stats {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    Stats {
        calls: lat.len(),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_us: q(0.50),
        p99_us: q(0.99),
    }
}

async fn measure(path: Path, floor: &str, hub: &str, conc: usize, secs: u64) -> Stats {
    measure_probed(path, floor, hub, conc, secs, None).await.0
}

/// `conc` clients calling in a loop for `secs`, after a warm-up of 20 calls
/// each; with a probe, what its process spent per call meanwhile.
async fn measure_probed(
    path: Path,
    floor: &str,
    hub: &str,
    conc: usize,
    secs: u64,
    probe: Option<&Probe>,
) -> (Stats, Option<Cost>) {
    static IDS: AtomicU64 = AtomicU64::new(1);
    let mut clients = Vec::with_capacity(conc);
    for _ in 0..conc {
        let mut c = Client::open(path, floor, hub).await;
        for _ in 0..20 {
            c.call(IDS.fetch_add(1, Ordering::Relaxed)).await;
        }
        clients.push(c);
    }
    tokio::time::sleep(probe::QUIET).await;
    let before = probe.map(Probe::snap);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let id = IDS.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    c.call(id).await;
                    lat.push(t.elapsed());
                }
                (lat, c)
            })
        })
        .collect();
    let mut all = vec![];
    let mut done = vec![];
    for t in tasks {
        let (lat, c) = t.await.unwrap();
        all.extend(lat);
        done.push(c);
    }
    let stats = summarize(all, start.elapsed());
    tokio::time::sleep(probe::QUIET).await;
    let cost = probe
        .zip(before)
        .map(|(p, b)| p.cost(b, p.snap(), stats.calls));
    for c in done {
        c.close().await;
    }
    (stats, cost)
}

/// One path at c=64 for `--seconds`, with `perf record -g` on the measured
/// process (the hub, with the audit line on, or the floor) for exactly that
/// window: where its CPU goes on that path alone.
async fn profile(o: &Opts, fixture: &str, path: Path) {
    let dir = tempfile::tempdir().unwrap();
    let (_proc, pid, floor_addr, hub_addr) = if path == Path::Floor {
        let (floor, addr) = start_floor(o, None);
        let pid = floor.pid;
        (floor, pid, addr, String::new())
    } else {
        let (child, pid, addr) =
            hub::start_under(&o.hub, &config(fixture, true, None), dir.path(), None);
        (Reap { child, pid }, pid, String::new(), addr)
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Clients open and warm up before the recording starts.
    let warm = measure(path, &floor_addr, &hub_addr, 64, 1).await;
    let mut rec = Command::new("perf")
        .args(["record", "-g", "-o", &o.profile_out, "-p", &pid.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("run perf record (install linux-perf)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = measure(path, &floor_addr, &hub_addr, 64, o.seconds).await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rec.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = rec.wait();
    println!(
        "{} at c=64: {:.0} calls/s (warm-up {:.0}), p50 {:.0} µs; pid {pid} recorded in {} \
         (perf report -i {} --no-children)",
        path.name(),
        s.per_sec,
        warm.per_sec,
        s.p50_us,
        o.profile_out,
        o.profile_out
    );
}

/// The absolute path of `perf`, for the hub's config (it starts the child).
fn perf_path() -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join("perf"))
        .find(|p| p.is_file())
        .map_or("perf".into(), |p| p.to_string_lossy().into_owned())
}

/// The bench config; with `inner`, the fixture runs under `perf stat`.
fn config(fixture: &str, log: bool, inner: Option<&std::path::Path>) -> Value {
    let server = match inner {
        Some(file) => {
            let mut args = probe::perf_wrap(file);
            args.push(fixture.into());
            json!({"command": perf_path(), "args": args, "sandbox": false})
        }
        None => json!({"command": fixture}),
    };
    json!({"mcpProxy": {"options": {"authTokens": [TOKEN], "logEnabled": log,
                                     "maxConnections": 8192, "maxConnectionsPerIp": 8192, "maxSessionsPerToken": 8192}},
           "mcpServers": {"bench": server}})
}

#[tokio::main]
async fn main() {
    let o = opts();
    // Room for 2×N idle connections, in this process and the hub it starts.
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let fixture = std::fs::canonicalize(&o.fixture).unwrap();
    let fixture = fixture.to_str().unwrap();
    if o.named_client {
        let plain = config(fixture, true, None);
        let mut named = plain.clone();
        let opts = &mut named["mcpProxy"]["options"];
        opts["authTokens"] = json!([]);
        opts["clients"] = json!({"bench": {
            "tokenSha256": mcp_hub::config::clients::sha256_hex(TOKEN),
            "maxSessions": 8192,
        }});
        println!("A: the token in authTokens; B: the same token as a named client (tokenSha256)");
        return ab::run_configs(&o.hub, &plain, &o.hub, &named, o.rounds, o.seconds).await;
    }
    if o.oidc {
        let audience = "http://bench.hub";
        let idp = issuer::start(audience).await;
        BEARER.set(idp.token.clone()).unwrap();
        let mut plain = config(fixture, true, None);
        plain["mcpProxy"]["options"]["authTokens"] = json!([idp.token]);
        let mut signed_in = config(fixture, true, None);
        let opts = &mut signed_in["mcpProxy"]["options"];
        opts["authTokens"] = json!([]);
        opts["oidc"] = json!({"issuer": idp.url, "audience": audience, "scopes": ["mcp"],
                              "rules": [{"claim": "groups", "value": "bench", "servers": "*", "maxSessions": 8192}]});
        println!(
            "A: a JWT ({} bytes) in authTokens; B: the same token checked as the identity provider's (mcpProxy.options.oidc)",
            idp.token.len()
        );
        return ab::run_configs(&o.hub, &plain, &o.hub, &signed_in, o.rounds, o.seconds).await;
    }
    if let Some(path) = o.profile {
        return profile(&o, fixture, path).await;
    }
    if let Some(other) = &o.against {
        return ab::run(
            &o.hub,
            other,
            &config(fixture, true, None),
            o.rounds,
            o.seconds,
        )
        .await;
    }
    let perf = probe::perf_works();
    let (dir_on, dir_off, dir_floor) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let files = |d: &tempfile::TempDir| (d.path().join("outer.perf"), d.path().join("inner.perf"));
    let start_hub = |d: &tempfile::TempDir, log: bool| {
        let (outer, inner) = files(d);
        let cfg = config(fixture, log, perf.then_some(inner.as_path()));
        let (child, pid, addr) = hub::start_under(
            &o.hub,
            &cfg,
            d.path(),
            perf.then(|| probe::perf_wrap(&outer)),
        );
        let r = Reap { child, pid };
        let p = Probe::new(pid, perf.then_some(outer), perf.then_some(inner));
        (r, addr, p)
    };
    let (hub_on, addr_on, probe_on) = start_hub(&dir_on, true);
    let (_hub_off, addr_off, probe_off) = start_hub(&dir_off, false);
    let (fo, fi) = files(&dir_floor);
    let (floor, floor_addr) = start_floor(&o, perf.then_some((fo.as_path(), fi.as_path())));
    let probe_floor = Probe::new(floor.pid, perf.then_some(fo), perf.then_some(fi));
    let pid = hub_on.pid;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_start = probe::rss_kib(pid);

    println!(
        "tools/call echo, {} s per measurement, on {} cores; system calls from {}",
        o.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if perf {
            "perf stat (raw_syscalls:sys_enter, the fixture child's subtracted)"
        } else {
            "nowhere (perf is not installed or does not count here)"
        }
    );
    report::header();
    let mut rows: HashMap<(Path, bool, usize), report::Row> = HashMap::new();
    for conc in LEVELS {
        let runs = [
            (Path::Floor, true, &probe_floor, &addr_on),
            (Path::Streamable, true, &probe_on, &addr_on),
            (Path::Sse, true, &probe_on, &addr_on),
            (Path::Modern, true, &probe_on, &addr_on),
            (Path::Streamable, false, &probe_off, &addr_off),
            (Path::Sse, false, &probe_off, &addr_off),
            (Path::Modern, false, &probe_off, &addr_off),
        ];
        for (path, log, probe, addr) in runs {
            let (stats, cost) =
                measure_probed(path, &floor_addr, addr, conc, o.seconds, Some(probe)).await;
            let row = report::Row {
                path,
                log,
                conc,
                stats,
                cost: cost.unwrap_or_default(),
            };
            let floor_cpu = rows.get(&(Path::Floor, true, conc)).map(|f| f.cost.cpu_us);
            report::print_row(&row, floor_cpu);
            rows.insert((path, log, conc), row);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = probe::rss_kib(pid);
    report::audit_cost(&rows);
    report::targets(&rows, rss_after);

    let before_sse = probe::rss_kib(pid);
    let held = idle::idle_sse(&addr_on, o.sessions).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_sse = probe::rss_kib(pid);
    drop(held);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before_st = probe::rss_kib(pid);
    let held = idle::idlestreamable(&addr_on, o.sessions).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_st = probe::rss_kib(pid);
    drop(held);

    let per = |with: u64, before: u64| with.saturating_sub(before) as f64 / o.sessions as f64;
    println!();
    println!("hub RSS at start (no child):          {rss_start:>8} KiB");
    println!("hub RSS after the load (child):       {rss_after:>8} KiB");
    println!(
        "hub RSS with {} idle legacy SSE streams:          {with_sse:>8} KiB ({:.1} KiB each)",
        o.sessions,
        per(with_sse, before_sse)
    );
    println!(
        "hub RSS with {} idle streamable sessions + GET:   {with_st:>8} KiB ({:.1} KiB each)",
        o.sessions,
        per(with_st, before_st)
    );
    drop(floor);
}
