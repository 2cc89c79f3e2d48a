//! Soak: the hub under mixed load while its children are killed and its
//! config reloaded, for a bounded time.
//!
//!     cargo build --release --bins --examples && target/release/examples/soak [--seconds N | --short]
//!
//! `--seconds` defaults to 600; `--short` is 60. 64 clients, each one kind
//! and one server, call `echo` with a unique string in a loop: legacy SSE
//! sessions, 2025 streamable sessions, 2026-07-28 stateless calls, OpenAPI
//! calls (`POST /<name>/tools/echo`) and a group's 2025 sessions
//! (`/g/all/mcp`, the member's `echo` by its prefixed name), on a shared
//! server, a per-client server and a remote one (the fixture serving
//! streamable HTTP itself, used with `"url"`). Meanwhile a child is killed
//! (SIGKILL, a pid from `/status`) every 5 s and the config rewritten and
//! reloaded (SIGHUP) every 10 s; the hub's RSS is sampled every second, and
//! so are its descendant processes.
//!
//! Counted: right answers; errors (an HTTP or JSON-RPC error, a dropped
//! stream: expected around a kill or a reload, not failures); wrong answers
//! (anything else that is not exactly the string sent); hangs (no answer
//! within 30 s). After SIGTERM the hub must exit and leave no orphan: no
//! process it started (by pid and start time) and no fixture process other
//! than the remote one still running. Exit status 1 on any wrong answer,
//! any hang, an RSS maximum over 64 MiB, or an orphan.

use serde_json::{json, Value};
use soakclient::{Client, Kind, Outcome, TOKEN};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "shared/hub.rs"]
mod hub;
#[path = "shared/soakclient.rs"]
mod soakclient;

const CLIENTS: usize = 64;
const KINDS: [Kind; 5] = [
    Kind::Sse,
    Kind::Streamable,
    Kind::Modern,
    Kind::OpenApi,
    Kind::Group,
];
const SERVERS: [&str; 3] = ["shared", "pc", "remote"];
const HANG: Duration = Duration::from_secs(30);
const RSS_MAX_KIB: u64 = 64 * 1024;

#[derive(Default)]
struct Tally {
    right: AtomicU64,
    errors: AtomicU64,
    wrong: AtomicU64,
    hangs: AtomicU64,
    /// The first few messages of each sort, to show.
    samples: Mutex<HashMap<&'static str, Vec<String>>>,
    /// (right, errors, the last error) by client kind and server, to show
    /// where errors fall and what they were.
    by_route: Mutex<HashMap<String, (u64, u64, String)>>,
}

impl Tally {
    fn route(&self, route: &str, error: Option<&str>) {
        let mut m = self.by_route.lock().unwrap();
        let e = m.entry(route.to_string()).or_default();
        match error {
            None => e.0 += 1,
            Some(msg) => {
                e.1 += 1;
                e.2 = msg.chars().take(200).collect();
            }
        }
    }

    fn sample(&self, sort: &'static str, msg: String) {
        let mut s = self.samples.lock().unwrap();
        let v = s.entry(sort).or_default();
        if v.len() < 5 {
            v.push(msg);
        }
    }
}

/// (ppid, start time) of `pid`, from `/proc/<pid>/stat`; None for a zombie
/// (it runs nothing: whoever inherited it has yet to reap it).
fn stat_of(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    // Fields 4 (ppid) and 22 (starttime); `f` starts at field 3.
    Some((f.get(1)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// What an orphan is, to show: its stat line and command line.
fn describe(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
    let head: String = stat
        .split_whitespace()
        .take(5)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{head} | {cmd}")
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every live descendant of `root`, with its start time.
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let procs: Vec<(u32, u32, u64)> = all_pids()
        .into_iter()
        .filter_map(|p| stat_of(p).map(|(pp, st)| (p, pp, st)))
        .collect();
    let mut found = vec![];
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(p, pp, st) in &procs {
            if pp == parent {
                found.push((p, st));
                frontier.push(p);
            }
        }
    }
    found
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

fn config(fixture: &str, remote: &str) -> Value {
    json!({"mcpProxy": {"options": {"authTokens": [TOKEN], "logEnabled": true,
                                     "groups": {"all": {"servers": SERVERS}}}},
           "mcpServers": {
               "shared": {"command": fixture},
               "pc": {"command": fixture, "session": "per-client"},
               "remote": {"url": format!("http://{remote}/mcp"), "transportType": "streamable-http"}}})
}

async fn client_loop(i: usize, base: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let kind = KINDS[i % KINDS.len()];
    let server = SERVERS[(i / KINDS.len()) % SERVERS.len()];
    let mut c = Client::new(kind, &base, server);
    let mut n = 0u64;
    let route = format!("{kind:?}/{server}");
    while !stop.load(Relaxed) {
        n += 1;
        // Not JSON, so that OpenAPI returns it as a string and not parsed.
        let text = format!("soak {i} {n} {kind:?}/{server}");
        match tokio::time::timeout(HANG, c.echo(&text)).await {
            Ok(Outcome::Right) => {
                tally.right.fetch_add(1, Relaxed);
                tally.route(&route, None);
            }
            Ok(Outcome::Error(e)) => {
                tally.errors.fetch_add(1, Relaxed);
                tally.route(&route, Some(&e));
                tally.sample("error", format!("{kind:?}/{server}: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Outcome::Wrong(e)) => {
                tally.wrong.fetch_add(1, Relaxed);
                tally.sample("wrong", format!("{kind:?}/{server}: {e}"));
            }
            Err(_) => {
                tally.hangs.fetch_add(1, Relaxed);
                tally.sample("hang", format!("{kind:?}/{server}: {text}"));
                c.end().await;
                c = Client::new(kind, &base, server);
            }
        }
        // A steady load the 2-core machine carries beside the hub.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Pids `/status` lists, for the killer.
async fn status_pids(http: &reqwest::Client, base: &str) -> Vec<u32> {
    let Ok(r) = http
        .get(format!("{base}/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
    else {
        return vec![];
    };
    let v: Value = r.json().await.unwrap_or_default();
    v["servers"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["pid"].as_u64().map(|p| p as u32))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let mut secs = 600u64;
    let mut hub_bin = "target/release/mcp-hub".to_string();
    let mut fixture = "target/release/mcp-fixture".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--short" => secs = 60,
            "--seconds" => {
                secs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--hub" => hub_bin = args.next().expect("--hub PATH"),
            "--fixture" => fixture = args.next().expect("--fixture PATH"),
            _ => panic!("usage: soak [--seconds N | --short] [--hub PATH] [--fixture PATH]"),
        }
    }
    let fixture =
        std::fs::canonicalize(&fixture).expect("build the fixture: cargo build --release");
    let fixture = fixture.to_str().unwrap().to_string();

    let mut remote = std::process::Command::new(&fixture)
        .args(["--http", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the remote fixture");
    let remote_addr = hub::listening(&mut remote);
    let remote_pid = remote.id();

    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&fixture, &remote_addr);
    let (mut child, pid, addr) = hub::start_under(&hub_bin, &cfg, dir.path(), None);
    let cfg_path = dir.path().join("bench.json");
    let base = format!("http://{addr}");
    println!("soak: {secs} s, {CLIENTS} clients, hub pid {pid} on {addr}");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client_loop(i, base.clone(), stop.clone(), tally.clone())))
        .collect();

    let seen: Arc<Mutex<HashSet<(u32, u64)>>> = Arc::default();
    let (mut rss_max, mut kills, mut reloads) = (0u64, 0u32, 0u32);
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut k = 0usize;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let s = start.elapsed().as_secs();
        rss_max = rss_max.max(rss_kib(pid));
        seen.lock().unwrap().extend(descendants(pid));
        if s > 0 && s % 5 == 0 {
            let pids = status_pids(&http, &base).await;
            if !pids.is_empty() {
                k += 1;
                signal(pids[k % pids.len()], nix::sys::signal::Signal::SIGKILL);
                kills += 1;
            }
        }
        if s > 0 && s % 10 == 0 {
            std::fs::write(&cfg_path, cfg.to_string()).unwrap();
            signal(pid, nix::sys::signal::Signal::SIGHUP);
            reloads += 1;
        }
        if s > 0 && s % 30 == 0 {
            println!(
                "{s:>4} s: right {} errors {} wrong {} hangs {} RSS max {} KiB",
                tally.right.load(Relaxed),
                tally.errors.load(Relaxed),
                tally.wrong.load(Relaxed),
                tally.hangs.load(Relaxed),
                rss_max
            );
        }
    }
    stop.store(true, Relaxed);
    for c in clients {
        let _ = c.await;
    }
    seen.lock().unwrap().extend(descendants(pid));

    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let t = Instant::now();
    let exited = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break true;
        }
        if t.elapsed() > Duration::from_secs(20) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stop_ms = t.elapsed().as_millis();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = seen.lock().unwrap().clone();
    let mut orphans: Vec<u32> = seen
        .iter()
        .filter(|(p, st)| stat_of(*p).is_some_and(|(_, s)| s == *st))
        .map(|(p, _)| *p)
        .collect();
    // Any fixture still running but the remote one, whoever its parent now is.
    for p in all_pids() {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
        if argv0 == fixture.as_bytes() && p != remote_pid && !orphans.contains(&p) {
            orphans.push(p);
        }
    }
    if !exited {
        let _ = child.kill();
    }
    let _ = remote.kill();
    let _ = remote.wait();

    let (right, errors, wrong, hangs) = (
        tally.right.load(Relaxed),
        tally.errors.load(Relaxed),
        tally.wrong.load(Relaxed),
        tally.hangs.load(Relaxed),
    );
    println!();
    println!("duration            {secs} s");
    println!("calls               {}", right + errors + wrong + hangs);
    println!("right answers       {right}");
    println!("errors (kill/reload) {errors}");
    println!("wrong answers       {wrong}");
    println!("hangs (>30 s)       {hangs}");
    println!("children killed     {kills}");
    println!("reloads             {reloads}");
    println!("processes started   {} (descendants seen)", seen.len());
    println!(
        "hub RSS max         {rss_max} KiB ({:.1} MiB)",
        rss_max as f64 / 1024.0
    );
    println!(
        "hub exit on SIGTERM {} ({stop_ms} ms)",
        if exited { "yes" } else { "NO" }
    );
    println!("orphans             {} {orphans:?}", orphans.len());
    let mut routes: Vec<_> = tally.by_route.lock().unwrap().clone().into_iter().collect();
    routes.sort();
    println!("right / errors by client kind and server:");
    for (r, (ok, err, last)) in routes {
        println!("  {r:<18} {ok:>9} {err:>9}  {last}");
    }
    for (sort, v) in tally.samples.lock().unwrap().iter() {
        for m in v {
            println!("  {sort}: {}", m.chars().take(300).collect::<String>());
        }
    }
    for p in &orphans {
        println!("  orphan: {}", describe(*p));
        signal(*p, nix::sys::signal::Signal::SIGKILL);
    }
    let failed = wrong > 0 || hangs > 0 || rss_max > RSS_MAX_KIB || !orphans.is_empty() || !exited;
    println!("soak: {}", if failed { "FAILED" } else { "passed" });
    std::process::exit(i32::from(failed));
}
