//! Load generator for mcp-hub: `tools/call` latency (p50, p99) and calls/s at
//! concurrency 1, 16 and 64, through the hub (streamable HTTP, JSON responses,
//! keep-alive, shared session mode) and against the same fixture server driven
//! directly over stdio; then the hub's RSS idle and with N idle SSE sessions.
//!
//!     cargo build --release && cargo run --release --example loadgen
//!
//! Options: --seconds N (per level, default 5), --sessions N (default 1000),
//! --hub PATH, --fixture PATH (default target/release/…).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Mutex};

#[path = "shared/hub.rs"]
mod hub;

const TOKEN: &str = "bench-token";

struct Opts {
    seconds: u64,
    sessions: usize,
    hub: String,
    fixture: String,
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 5,
        sessions: 1000,
        hub: "target/release/mcp-hub".into(),
        fixture: "target/release/mcp-fixture".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.chunks(2) {
        match (w[0].as_str(), w.get(1)) {
            ("--seconds", Some(v)) => o.seconds = v.parse().expect("--seconds N"),
            ("--sessions", Some(v)) => o.sessions = v.parse().expect("--sessions N"),
            ("--hub", Some(v)) => o.hub = v.clone(),
            ("--fixture", Some(v)) => o.fixture = v.clone(),
            _ => {
                panic!("usage: loadgen [--seconds N] [--sessions N] [--hub PATH] [--fixture PATH]")
            }
        }
    }
    o
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

fn start_hub(o: &Opts, dir: &std::path::Path) -> (Child, String) {
    let cfg = json!({"mcpProxy": {"options": {"authTokens": [TOKEN]}},
                     "mcpServers": {"bench": {"command": std::fs::canonicalize(&o.fixture).unwrap()}}});
    hub::start(&o.hub, &cfg, dir)
}

struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    addr: String,
    session: Option<String>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        Conn {
            send,
            addr: addr.into(),
            session: None,
        }
    }

    async fn post(&mut self, body: &Value) -> (hyper::http::HeaderMap, Bytes) {
        self.send.ready().await.expect("connection to the hub");
        let mut req = hyper::Request::post("/bench/mcp")
            .header("host", &self.addr)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let resp = self
            .send
            .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .unwrap();
        let headers = resp.headers().clone();
        (
            headers,
            resp.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    async fn initialize(&mut self) {
        let (h, _) = self.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "loadgen", "version": "1"}}})).await;
        self.session = Some(h["mcp-session-id"].to_str().unwrap().to_string());
        self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }
}

fn call(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hello"}}})
}

struct Result {
    calls: usize,
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn summarize(mut lat: Vec<Duration>, elapsed: Duration) -> Result {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    Result {
        calls: lat.len(),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_us: q(0.50),
        p99_us: q(0.99),
    }
}

async fn through_hub(addr: &str, conc: usize, secs: u64) -> Result {
    let mut conns = vec![];
    for _ in 0..conc {
        let mut c = Conn::open(addr).await;
        c.initialize().await;
        conns.push(c);
    }
    // Warm up, then measure.
    for c in conns.iter_mut() {
        for i in 0..20 {
            c.post(&call(i)).await;
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut id = 1000u64;
                while Instant::now() < end {
                    let t = Instant::now();
                    let (_, body) = c.post(&call(id)).await;
                    lat.push(t.elapsed());
                    debug_assert!(body.windows(5).any(|w| w == b"hello"));
                    id += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    summarize(all, start.elapsed())
}

type Waiters = Arc<std::sync::Mutex<std::collections::HashMap<u64, oneshot::Sender<()>>>>;

async fn direct(fixture: &str, conc: usize, secs: u64) -> Result {
    let mut child = tokio::process::Command::new(fixture)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
    let waiters: Waiters = Arc::default();
    let w2 = waiters.clone();
    let stdout = child.stdout.take().unwrap();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&l).unwrap();
            if let Some(id) = v["id"].as_u64() {
                if let Some(tx) = w2.lock().unwrap().remove(&id) {
                    let _ = tx.send(());
                }
            }
        }
    });
    rpc(&stdin, &waiters, 0, json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "loadgen", "version": "1"}}})).await;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (stdin, waiters, counter) = (stdin.clone(), waiters.clone(), counter.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let id = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let t = Instant::now();
                    rpc(&stdin, &waiters, id, call(id)).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let r = summarize(all, start.elapsed());
    let _ = child.kill().await;
    r
}

async fn rpc(
    stdin: &Arc<Mutex<tokio::process::ChildStdin>>,
    waiters: &Waiters,
    id: u64,
    msg: Value,
) {
    let (tx, rx) = oneshot::channel();
    waiters.lock().unwrap().insert(id, tx);
    let mut line = msg.to_string().into_bytes();
    line.push(b'\n');
    stdin.lock().await.write_all(&line).await.unwrap();
    rx.await.unwrap();
}

async fn sse_sessions(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET /bench/sse HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("event: endpoint") {
            use tokio::io::AsyncReadExt;
            let k = tcp.read(&mut buf).await.unwrap();
            assert!(k > 0, "stream closed");
            got.extend_from_slice(&buf[..k]);
        }
        held.push(tcp);
    }
    held
}

#[tokio::main]
async fn main() {
    let o = opts();
    if let Ok((_, hard)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        let _ =
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard);
    }
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = start_hub(&o, dir.path());
    let pid = hub.id();
    // Stop the hub however this program ends.
    struct Reap(Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _hub = Reap(hub);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_start = rss_kib(pid);
    let mut c = Conn::open(&addr).await;
    c.initialize().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid);

    println!(
        "tools/call echo, {}s per level, on {} cores",
        o.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<24} {:>5} {:>10} {:>10} {:>10} {:>10}",
        "path", "conc", "calls", "calls/s", "p50 µs", "p99 µs"
    );
    for conc in [1usize, 16, 64] {
        let d = direct(&o.fixture, conc, o.seconds).await;
        let h = through_hub(&addr, conc, o.seconds).await;
        for (name, r) in [("direct (stdio)", &d), ("through hub (HTTP)", &h)] {
            println!(
                "{:<24} {:>5} {:>10} {:>10.0} {:>10.1} {:>10.1}",
                name, conc, r.calls, r.per_sec, r.p50_us, r.p99_us
            );
        }
        println!(
            "{:<24} {:>5} {:>10} {:>10} {:>10.1} {:>10}",
            "  hub adds at p50",
            conc,
            "",
            "",
            h.p50_us - d.p50_us,
            ""
        );
    }
    let rss_after_load = rss_kib(pid);
    let before = rss_kib(pid);
    let held = sse_sessions(&addr, o.sessions).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = rss_kib(pid);
    println!();
    println!("hub RSS at start:                {:>8} KiB", rss_start);
    println!("hub RSS idle (1 session, child): {:>8} KiB", rss_idle);
    println!("hub RSS after the load runs:     {:>8} KiB", rss_after_load);
    println!(
        "hub RSS with {} idle SSE sessions: {} KiB ({:.1} KiB per session)",
        held.len(),
        with,
        (with.saturating_sub(before)) as f64 / held.len() as f64
    );
    drop(held);
}
