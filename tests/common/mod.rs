//! Test harness: runs the real `mcp-hub` binary on port 0 with a generated
//! config, and speaks both MCP transports to it with a real HTTP client.
#![allow(dead_code)]

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token";

/// An environment key `Hub::start_env` reads as "run under this open-file limit".
pub const NOFILE: &str = "__TEST_NOFILE";

pub fn fixture() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-fixture")
}

pub fn hub_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-hub")
}

/// A fixture server entry with optional extra keys merged in.
pub fn fx(extra: Value) -> Value {
    let mut v = json!({"command": fixture()});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v
}

pub struct Hub {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Hub {
    /// Starts a hub with `proxy_options` under mcpProxy.options (authTokens default to TOKEN).
    pub fn start(proxy: Value, servers: Value) -> Hub {
        Self::start_with_listen(proxy, servers, "127.0.0.1:0", &[])
    }

    /// Like `start`, with extra environment for the hub process.
    pub fn start_env(proxy: Value, servers: Value, env: &[(&str, &str)]) -> Hub {
        Self::start_with_listen(proxy, servers, "127.0.0.1:0", env)
    }

    fn start_with_listen(proxy: Value, servers: Value, listen: &str, env: &[(&str, &str)]) -> Hub {
        Self::launch(proxy, servers, listen, env, None)
    }

    /// Runs the hub as another user (uid, gid, and the binary to run, which that
    /// user must be able to reach). Its directory is handed to that user.
    pub fn start_as(
        proxy: Value,
        servers: Value,
        env: &[(&str, &str)],
        user: (u32, u32, &str),
    ) -> Hub {
        Self::launch(proxy, servers, "127.0.0.1:0", env, Some(user))
    }

    fn launch(
        mut proxy: Value,
        servers: Value,
        listen: &str,
        env: &[(&str, &str)],
        user: Option<(u32, u32, &str)>,
    ) -> Hub {
        let opts = proxy
            .as_object_mut()
            .unwrap()
            .entry("options")
            .or_insert(json!({}));
        opts.as_object_mut()
            .unwrap()
            .entry("authTokens")
            .or_insert(json!([TOKEN]));
        let cfg = json!({"mcpProxy": proxy, "mcpServers": servers});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        // `(NOFILE, "n")` in env: run the hub under that open-file limit.
        let nofile = env.iter().find(|(k, _)| *k == NOFILE).map(|(_, v)| *v);
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(hub_bin());
                c
            }
            None => Command::new(user.map_or(hub_bin(), |u| u.2)),
        };
        if let Some((uid, gid, _)) = user {
            use std::os::unix::process::CommandExt;
            for p in [dir.path(), path.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
            // std drops root's supplementary groups when it switches the uid.
            cmd.uid(uid).gid(gid);
        }
        cmd.args([
            "--config",
            path.to_str().unwrap(),
            "serve",
            "--listen",
            listen,
        ])
        .env("MCP_HUB_LOG", "debug")
        // Where servers get their private HOME, as systemd's StateDirectory= says.
        .env("STATE_DIRECTORY", dir.path().join("state"))
        .envs(env.iter().copied().filter(|(k, _)| *k != NOFILE))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        // A binary copied while another test forks can be briefly "busy"
        // (ETXTBSY: the fork inherited the copy's open write descriptor).
        let mut tries = 0;
        let mut child = loop {
            match cmd.spawn() {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("start mcp-hub: {e}"),
            }
        };
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                l2.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "hub did not start; log:\n{}",
                    logs.lock().unwrap().join("\n")
                )
            });
        wait_healthz(&addr, &logs);
        Hub {
            child,
            base: format!("http://{addr}"),
            logs,
            _dir: dir,
            config_path: path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub async fn status(&self) -> Value {
        reqwest::Client::new()
            .get(self.url("/status"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn server_status(&self, name: &str) -> Value {
        let s = self.status().await;
        s["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "hub did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ready means `/healthz` answers 200, not that some time has passed.
fn wait_healthz(addr: &str, logs: &Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = std::net::TcpStream::connect(addr).ok().and_then(|mut s| {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).ok()?;
            let mut buf = String::new();
            s.read_to_string(&mut buf).ok()?;
            Some(buf.starts_with("HTTP/1.1 200"))
        });
        if ok == Some(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "hub never answered /healthz; log:\n{}",
            logs.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn init_params(version: &str) -> Value {
    json!({"protocolVersion": version, "capabilities": {"sampling": {}, "elicitation": {}},
           "clientInfo": {"name": "hub-tests", "version": "1.0"}})
}

pub fn req(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub fn call(id: u64, tool: &str, args: Value) -> Value {
    req(
        json!(id),
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
}

/// A streamable-HTTP client session.
pub struct Mcp {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    pub token: String,
}

/// What a POST returned: the HTTP status, headers, and every JSON-RPC message in
/// the body (one for JSON, all events for SSE).
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub sse: bool,
    pub messages: Vec<Value>,
}

impl Reply {
    pub fn last(&self) -> &Value {
        self.messages.last().expect("a message")
    }
}

impl Mcp {
    pub fn new(hub: &Hub, server: &str) -> Mcp {
        Self::at(&hub.base, server)
    }

    /// A client for a hub this harness did not start (e.g. one that
    /// systemd-socket-activate started), by its base URL.
    pub fn at(base: &str, server: &str) -> Mcp {
        Mcp {
            http: reqwest::Client::new(),
            url: format!("{base}/{server}/mcp"),
            session: None,
            token: TOKEN.into(),
        }
    }

    pub async fn post(&self, body: &Value) -> Reply {
        let mut r = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        let resp = r.json(body).send().await.unwrap();
        read_reply(resp).await
    }

    pub async fn initialize(&mut self) -> Value {
        let r = self
            .post(&req(json!(0), "initialize", init_params("2025-11-25")))
            .await;
        assert_eq!(r.status, 200, "initialize: {:?}", r.messages);
        self.session = r
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(self.session.is_some(), "initialize must issue a session id");
        let n = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(n.status, 202);
        r.messages[0].clone()
    }

    /// A tools/call that returns the first text content, panicking on errors.
    pub async fn call_text(&self, id: u64, tool: &str, args: Value) -> String {
        let r = self.post(&call(id, tool, args)).await;
        let m = r.last();
        assert_eq!(m["id"], json!(id), "response id: {m}");
        m["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {m}"))
            .to_string()
    }

    pub async fn delete(&self) -> u16 {
        let mut r = self.http.delete(&self.url).bearer_auth(&self.token);
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        r.send().await.unwrap().status().as_u16()
    }
}

pub async fn read_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let ctype = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    if ctype.starts_with("text/event-stream") {
        let mut events = resp.bytes_stream().eventsource();
        let mut messages = vec![];
        while let Some(ev) = events.next().await {
            let ev = ev.unwrap();
            if ev.event == "message" {
                messages.push(serde_json::from_str(&ev.data).unwrap());
            }
        }
        Reply {
            status,
            headers,
            sse: true,
            messages,
        }
    } else {
        let bytes = resp.bytes().await.unwrap();
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        let messages = match v {
            Value::Array(a) => a,
            Value::Null => vec![],
            v => vec![v],
        };
        Reply {
            status,
            headers,
            sse: false,
            messages,
        }
    }
}

/// A legacy SSE client: a GET stream plus POSTs to the endpoint it announced.
pub struct LegacySse {
    pub endpoint: String,
    pub events:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>>,
    http: reqwest::Client,
    base: String,
}

impl LegacySse {
    pub async fn connect(hub: &Hub, server: &str) -> LegacySse {
        let http = reqwest::Client::new();
        let resp = http
            .get(hub.url(&format!("/{server}/sse")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["x-accel-buffering"], "no");
        let mut events: std::pin::Pin<Box<dyn futures_util::Stream<Item = _> + Send>> =
            Box::pin(resp.bytes_stream().eventsource().map(|e| e.unwrap()));
        let first = events.next().await.unwrap();
        assert_eq!(first.event, "endpoint");
        LegacySse {
            endpoint: first.data,
            events,
            http,
            base: hub.base.clone(),
        }
    }

    pub fn endpoint_url(&self) -> String {
        if self.endpoint.starts_with("http") {
            self.endpoint.clone()
        } else {
            format!("{}{}", self.base, self.endpoint)
        }
    }

    pub async fn post(&self, body: &Value) -> u16 {
        self.http
            .post(self.endpoint_url())
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The next `message` event, within `secs`.
    pub async fn next_message(&mut self, secs: u64) -> Value {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(secs), self.events.next())
                .await
                .expect("an SSE event in time")
                .expect("the stream stays open");
            if ev.event == "message" {
                return serde_json::from_str(&ev.data).unwrap();
            }
        }
    }
}

pub fn pid_alive(pid: i32) -> bool {
    // Zombies count as dead: read the state from /proc.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')),
        Err(_) => false,
    }
}

/// Live (not zombie) host processes for which `pred(pid)` holds.
pub fn pids_where(pred: impl Fn(i32) -> bool) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| pred(*pid) && pid_alive(*pid))
        .collect()
}

/// A free TCP port on loopback (bound and released: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Hub {
    /// Like `start`, on a fixed address, so a test can restart it in place.
    pub fn start_on(addr: &str, proxy: Value, servers: Value) -> Hub {
        let mut proxy = proxy;
        proxy["addr"] = json!(addr);
        Self::start_with_listen(proxy, servers, addr, &[])
    }
}

/// The SSE answer to a POST, read one message at a time while the test talks
/// back (e.g. answers a server→client request in between).
pub struct Answer(std::pin::Pin<Box<dyn futures_util::Stream<Item = Value> + Send>>);

impl Answer {
    /// The events of an SSE response.
    pub fn from_response(resp: reqwest::Response) -> Answer {
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let events = resp
            .bytes_stream()
            .eventsource()
            .map(|e| serde_json::from_str(&e.unwrap().data).unwrap());
        Answer(Box::pin(events))
    }

    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.0.next())
            .await
            .expect("an SSE event in time")
            .expect("the stream stays open")
    }
}

impl Mcp {
    /// POSTs `body` and returns its answer as a stream (the answer must be SSE).
    pub async fn post_streaming(&self, body: &Value) -> Answer {
        Answer::from_response(self.post_in_session(body).await)
    }

    /// POSTs `body` in this client's session and returns the raw response.
    pub async fn post_in_session(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", self.session.clone().unwrap())
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

impl Hub {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The hub's resident set size from /proc, in KiB.
    pub fn rss_kib(&self) -> u64 {
        vm_kib(self.pid(), "VmRSS:")
    }

    /// The hub's peak resident set size (VmHWM) so far, in KiB.
    pub fn peak_kib(&self) -> u64 {
        vm_kib(self.pid(), "VmHWM:")
    }

    /// The slowest of 20 `GET /healthz`, 25 ms apart (each must be 200).
    pub async fn healthz_worst(&self) -> Duration {
        let http = reqwest::Client::new();
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let t = Instant::now();
            let r = http.get(self.url("/healthz")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        worst
    }

    /// Runs `work` while `GET /healthz` is polled every 10 ms (each must be
    /// 200); its output and the slowest answer meanwhile. The poller has a
    /// thread and a runtime of its own, so what `work` costs the test process
    /// is not counted against the hub.
    pub async fn healthz_during<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> (T, Duration) {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let url = self.url("/healthz");
        let stop = done.clone();
        let poller = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let http = reqwest::Client::new();
                let mut worst = Duration::ZERO;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = http.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    worst = worst.max(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                worst
            })
        });
        let out = work.await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let worst = tokio::task::spawn_blocking(move || poller.join().unwrap())
            .await
            .unwrap();
        (out, worst)
    }

    /// The log lines that contain every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
            .collect()
    }
}

/// A figure of `/proc/<pid>/status` in KiB (`key`: `"VmRSS:"`, `"VmHWM:"`).
pub fn vm_kib(pid: i32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// Live direct children of `parent` whose command name is `comm`.
pub fn children_named(parent: i32, comm: &str) -> Vec<i32> {
    pids_where(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            let name = s.split_once('(').and_then(|(_, r)| r.rsplit_once(')'));
            name.is_some_and(|(n, rest)| {
                n == comm && rest.split_whitespace().nth(1) == Some(&parent.to_string())
            })
        })
    })
}

/// A stream of SSE `message` events whose data is read as it arrived (no
/// JSON parsing), for GET streams and POST answers alike.
pub struct RawEvents(std::pin::Pin<Box<dyn futures_util::Stream<Item = Option<String>> + Send>>);

impl RawEvents {
    pub fn new(resp: reqwest::Response) -> RawEvents {
        Self::from_events(resp.bytes_stream().eventsource())
    }

    /// From parsed events; an error (e.g. the connection reset) ends the stream.
    fn from_events<E: Send + 'static>(
        events: impl futures_util::Stream<Item = Result<eventsource_stream::Event, E>> + Send + 'static,
    ) -> RawEvents {
        let events = events
            .take_while(|e| std::future::ready(e.is_ok()))
            .map(|e| match e {
                Ok(e) if e.event == "message" && !e.data.is_empty() => Some(e.data),
                _ => None,
            });
        RawEvents(Box::pin(events))
    }

    /// The next message's data, or `None` when the stream ended; panics after `secs`.
    pub async fn next_raw(&mut self, secs: u64) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.0.next()).await {
                Err(_) => panic!("no SSE message within {secs}s"),
                Ok(None) => return None,
                Ok(Some(Some(data))) => return Some(data),
                Ok(Some(None)) => continue,
            }
        }
    }

    /// The next message as JSON; panics if the stream ends or nothing comes in `secs`.
    pub async fn next_message(&mut self, secs: u64) -> Value {
        let data = self.next_raw(secs).await.expect("the stream stays open");
        serde_json::from_str(&data).unwrap()
    }

    /// Reads until the stream ends; false if it is still open after `secs`.
    pub async fn ends_within(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.0.next()).await {
                Err(_) => return false,
                Ok(None) => return true,
                Ok(Some(_)) => continue,
            }
        }
    }
}

impl Mcp {
    /// Opens the session's GET stream (the caller decides whether to read it).
    pub async fn get_stream(&self) -> reqwest::Response {
        let resp = self
            .http
            .get(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", self.session.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET stream");
        resp
    }

    /// POSTs `body` as written and returns the status and the body as received.
    pub async fn post_raw(&self, body: &str) -> (u16, String) {
        let mut r = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        let resp = r.body(body.to_string()).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// POSTs `body` and returns the answer's messages as they come: the events
    /// of an SSE answer, or the one message of a JSON answer.
    pub async fn post_events(&self, body: &Value) -> RawEvents {
        let resp = self.post_in_session(body).await;
        if resp.headers()["content-type"] == "text/event-stream" {
            return RawEvents::new(resp);
        }
        let text = resp.text().await.unwrap();
        RawEvents(Box::pin(futures_util::stream::iter([Some(text)])))
    }
}

/// A legacy SSE session read as raw events: the endpoint URL to POST to, and
/// the stream (which may end, unlike `LegacySse`'s).
pub async fn legacy_raw(hub: &Hub, server: &str) -> (String, RawEvents) {
    let resp = reqwest::Client::new()
        .get(hub.url(&format!("/{server}/sse")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = Box::pin(resp.bytes_stream().eventsource());
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.event, "endpoint");
    let url = if first.data.starts_with("http") {
        first.data
    } else {
        format!("{}{}", hub.base, first.data)
    };
    (url, RawEvents::from_events(events))
}

/// POSTs `body` as written to `url` with the test token; 0 if the request failed.
pub async fn post_raw_to(http: &reqwest::Client, url: &str, body: &str) -> u16 {
    http.post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Processes in the process group led by `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    pids_where(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            // Field 5 (pgrp), counted after the ")" that ends the command name.
            stat.rsplit_once(") ")
                .and_then(|(_, r)| r.split(' ').nth(2))
                .and_then(|g| g.parse::<i32>().ok())
                == Some(pgid)
        })
    })
}
