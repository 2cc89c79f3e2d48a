//! Load generator for mcp-hub. One run measures `tools/call echo` latency (p50,
//! p99) and calls/s at concurrency 1 and 64 along three paths to the same
//! fixture server:
//!
//! - **floor**: `examples/floor.rs`, the least an HTTP→stdio proxy must do;
//! - **hub streamable HTTP**: one session per worker, JSON answers, keep-alive;
//! - **hub legacy SSE**: one session per worker: a GET `/sse` stream, POSTs to
//!   the endpoint it announces, answers read off the stream and matched by id;
//!
//! then the ratios hub/floor (p50 at c=1, calls/s at c=64), and the hub's RSS
//! idle and with N idle sessions of each transport (legacy SSE streams, and
//! streamable sessions each holding a GET stream open).
//!
//!     cargo build --release --bins --examples && target/release/examples/loadgen
//!
//! Options: --seconds N (per measurement, default 5), --sessions N (default
//! 1000), --hub PATH, --fixture PATH, --floor PATH (default target/release/…).
//!
//! `--against OTHER_HUB [--rounds N]` compares two hub binaries instead
//! (`shared/ab.rs`): calls/s at c=64 on each hub path, alternating A and B
//! for N rounds (default 8), with medians and the median ratio B/A. Build the
//! other binary from another checkout, e.g. a `git worktree` of the commit
//! before a change.
//! The hub runs in shared session mode; request ids are unique across workers
//! because the floor does not rewrite them.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

#[path = "shared/ab.rs"]
mod ab;
#[path = "shared/hub.rs"]
mod hub;

const TOKEN: &str = "bench-token";
const LEVELS: [usize; 2] = [1, 64];

struct Opts {
    seconds: u64,
    sessions: usize,
    hub: String,
    fixture: String,
    floor: String,
    against: Option<String>,
    rounds: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        seconds: 5,
        sessions: 1000,
        hub: "target/release/mcp-hub".into(),
        fixture: "target/release/mcp-fixture".into(),
        floor: "target/release/examples/floor".into(),
        against: None,
        rounds: 8,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.chunks(2) {
        match (w[0].as_str(), w.get(1)) {
            ("--seconds", Some(v)) => o.seconds = v.parse().expect("--seconds N"),
            ("--sessions", Some(v)) => o.sessions = v.parse().expect("--sessions N"),
            ("--hub", Some(v)) => o.hub = v.clone(),
            ("--fixture", Some(v)) => o.fixture = v.clone(),
            ("--floor", Some(v)) => o.floor = v.clone(),
            ("--against", Some(v)) => o.against = Some(v.clone()),
            ("--rounds", Some(v)) => o.rounds = v.parse().expect("--rounds N"),
            _ => panic!(
                "usage: loadgen [--seconds N] [--sessions N] [--hub PATH] [--fixture PATH] [--floor PATH] [--against OTHER_HUB [--rounds N]]"
            ),
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

/// A child process that is killed however this program ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_floor(o: &Opts) -> (Reap, String) {
    let mut child = Command::new(&o.floor)
        .args(["--fixture", &o.fixture])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the floor (build it with cargo build --release --examples)");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("floor output").unwrap();
        if let Some(rest) = l.split("listening on ").nth(1) {
            break rest.trim().to_string();
        }
    };
    (Reap(child), addr)
}

/// One keep-alive HTTP/1 connection that POSTs JSON to one path.
struct Conn {
    send: http1::SendRequest<Full<Bytes>>,
    addr: String,
    path: String,
    session: Option<String>,
}

impl Conn {
    async fn open(addr: &str, path: &str) -> Conn {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (send, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        Conn {
            send,
            addr: addr.into(),
            path: path.into(),
            session: None,
        }
    }

    fn request(&self, method: &str) -> hyper::http::request::Builder {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&self.path)
            .header("host", &self.addr)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req
    }

    async fn post(&mut self, body: &Value) -> (hyper::http::HeaderMap, Bytes) {
        self.send.ready().await.expect("connection open");
        let req = self
            .request("POST")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let headers = resp.headers().clone();
        (
            headers,
            resp.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    /// A streamable session: initialize, then notifications/initialized.
    async fn initialize(&mut self) {
        let (h, _) = self.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "loadgen", "version": "1"}}})).await;
        self.session = Some(h["mcp-session-id"].to_str().unwrap().to_string());
        self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }

    async fn delete(&mut self) {
        self.send.ready().await.expect("connection open");
        let req = self
            .request("DELETE")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _ = self.send.send_request(req).await;
    }
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

/// A legacy SSE session: the GET stream (read by a task that hands each answer
/// to the call waiting for its id) and a connection for POSTs to the endpoint.
struct Sse {
    post: Conn,
    waiters: Waiters,
    stream: tokio::task::JoinHandle<()>,
}

impl Sse {
    async fn open(addr: &str) -> Sse {
        let mut get = Conn::open(addr, "/bench/sse").await;
        get.send.ready().await.unwrap();
        let req = get.request("GET").body(Full::new(Bytes::new())).unwrap();
        let mut body = get.send.send_request(req).await.unwrap().into_body();
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        let (endpoint_tx, endpoint_rx) = oneshot::channel();
        let stream = tokio::spawn(async move {
            let _get = get;
            let mut endpoint_tx = Some(endpoint_tx);
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buf.extend_from_slice(&data);
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = buf.drain(..end + 2).collect();
                    let event = String::from_utf8_lossy(&event);
                    let data = event.lines().find_map(|l| l.strip_prefix("data: "));
                    let Some(data) = data else { continue };
                    if event.starts_with("event: endpoint") {
                        if let Some(tx) = endpoint_tx.take() {
                            let _ = tx.send(data.to_string());
                        }
                    } else if let Some(id) = serde_json::from_str::<Value>(data)
                        .ok()
                        .and_then(|m| m["id"].as_u64())
                    {
                        if let Some(tx) = w.lock().unwrap().remove(&id) {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
        let endpoint = endpoint_rx.await.expect("an endpoint event");
        // Relative unless the hub has a baseURL: keep only the path.
        let path = match endpoint.find("://") {
            Some(i) => endpoint[i + 3..]
                .find('/')
                .map_or("/".into(), |p| endpoint[i + 3 + p..].to_string()),
            None => endpoint,
        };
        let mut sse = Sse {
            post: Conn::open(addr, &path).await,
            waiters,
            stream,
        };
        sse.call(0, &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "loadgen", "version": "1"}}}))
            .await;
        sse.post
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        sse
    }

    async fn call(&mut self, id: u64, body: &Value) {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id, tx);
        self.post.post(body).await;
        rx.await.expect("an answer on the SSE stream");
    }
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.stream.abort();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Floor,
    Streamable,
    Sse,
    /// 2026-07-28: no session; every call carries its `_meta` and headers.
    Modern,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Floor => "floor (HTTP→stdio)",
            Path::Streamable => "hub streamable HTTP",
            Path::Sse => "hub legacy SSE",
            Path::Modern => "hub 2026-07-28",
        }
    }
}

enum Client {
    Post(Conn),
    Sse(Sse),
    Modern(Conn),
}

impl Client {
    async fn open(path: Path, floor: &str, hub: &str) -> Client {
        match path {
            Path::Floor => Client::Post(Conn::open(floor, "/").await),
            Path::Streamable => {
                let mut c = Conn::open(hub, "/bench/mcp").await;
                c.initialize().await;
                Client::Post(c)
            }
            Path::Sse => Client::Sse(Sse::open(hub).await),
            Path::Modern => Client::Modern(Conn::open(hub, "/bench/mcp").await),
        }
    }

    async fn call(&mut self, id: u64) {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hello"}}});
        match self {
            Client::Post(c) => {
                let (_, answer) = c.post(&body).await;
                debug_assert!(answer.windows(5).any(|w| w == b"hello"));
            }
            Client::Sse(s) => s.call(id, &body).await,
            Client::Modern(c) => {
                let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "hello"},
                        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                  "io.modelcontextprotocol/clientCapabilities": {}}}});
                c.send.ready().await.expect("connection open");
                let req = c
                    .request("POST")
                    .header("content-type", "application/json")
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "echo")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                let resp = c.send.send_request(req).await.unwrap();
                let answer = resp.into_body().collect().await.unwrap().to_bytes();
                debug_assert!(answer.windows(5).any(|w| w == b"hello"));
            }
        }
    }

    async fn close(self) {
        if let Client::Post(mut c) = self {
            if c.session.is_some() {
                c.delete().await;
            }
        }
    }
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

/// `conc` clients calling in a loop for `secs`, after a warm-up of 20 calls each.
async fn measure(path: Path, floor: &str, hub: &str, conc: usize, secs: u64) -> Stats {
    static IDS: AtomicU64 = AtomicU64::new(1);
    let mut clients = Vec::with_capacity(conc);
    for _ in 0..conc {
        let mut c = Client::open(path, floor, hub).await;
        for _ in 0..20 {
            c.call(IDS.fetch_add(1, Ordering::Relaxed)).await;
        }
        clients.push(c);
    }
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
                c.close().await;
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

/// Sends a raw GET and returns the connection once the response head arrived.
async fn hold_get(
    addr: &str,
    path: &str,
    session: Option<&str>,
    until: &str,
) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n{session}\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(until) {
        let k = tcp.read(&mut buf).await.unwrap();
        assert!(k > 0, "GET {path}: stream closed");
        got.extend_from_slice(&buf[..k]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&got)
    );
    tcp
}

async fn idle_sse(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(hold_get(addr, "/bench/sse", None, "event: endpoint").await);
    }
    held
}

async fn idlestreamable(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    let mut c = Conn::open(addr, "/bench/mcp").await;
    for _ in 0..n {
        c.session = None;
        c.initialize().await;
        held.push(hold_get(addr, "/bench/mcp", c.session.as_deref(), "\r\n\r\n").await);
    }
    held
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
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"mcpProxy": {"options": {"authTokens": [TOKEN], "maxConnections": 8192, "maxConnectionsPerIp": 8192, "maxSessionsPerToken": 8192}},
                     "mcpServers": {"bench": {"command": std::fs::canonicalize(&o.fixture).unwrap()}}});
    if let Some(other) = &o.against {
        return ab::run(&o.hub, other, &cfg, o.rounds, o.seconds).await;
    }
    let (hub, hub_addr) = hub::start(&o.hub, &cfg, dir.path());
    let pid = hub.id();
    let _hub = Reap(hub);
    let (_floor, floor_addr) = start_floor(&o);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_start = rss_kib(pid);

    println!(
        "tools/call echo, {} s per measurement, on {} cores",
        o.seconds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<22} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "path", "conc", "calls", "calls/s", "p50 µs", "p99 µs"
    );
    let mut results: HashMap<(usize, u8), Stats> = HashMap::new();
    for conc in LEVELS {
        for path in [Path::Floor, Path::Streamable, Path::Sse, Path::Modern] {
            let r = measure(path, &floor_addr, &hub_addr, conc, o.seconds).await;
            println!(
                "{:<22} {:>5} {:>9} {:>9.0} {:>9.1} {:>9.1}",
                path.name(),
                conc,
                r.calls,
                r.per_sec,
                r.p50_us,
                r.p99_us
            );
            results.insert((conc, path as u8), r);
        }
    }
    println!();
    println!(
        "{:<22} {:>14} {:>17}",
        "hub / floor", "p50 at c=1", "calls/s at c=64"
    );
    let floor = |c| &results[&(c, Path::Floor as u8)];
    for path in [Path::Streamable, Path::Sse, Path::Modern] {
        let r = |c| &results[&(c, path as u8)];
        println!(
            "{:<22} {:>13.2}× {:>16.2}×",
            path.name(),
            r(1).p50_us / floor(1).p50_us,
            r(64).per_sec / floor(64).per_sec
        );
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(pid);
    let before_sse = rss_kib(pid);
    let held = idle_sse(&hub_addr, o.sessions).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_sse = rss_kib(pid);
    drop(held);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before_st = rss_kib(pid);
    let held = idlestreamable(&hub_addr, o.sessions).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_st = rss_kib(pid);
    drop(held);

    let per = |with: u64, before: u64| with.saturating_sub(before) as f64 / o.sessions as f64;
    println!();
    println!("hub RSS at start (no child):          {rss_start:>8} KiB");
    println!("hub RSS idle after the load (child):  {rss_idle:>8} KiB");
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
}
