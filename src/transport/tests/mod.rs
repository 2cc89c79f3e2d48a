//! The three transports in-process: legacy SSE, streamable HTTP sessions and
//! stateless 2026-07-28 requests, served over a loopback socket by hyper
//! with an endpoint of the test's own whose sessions run on an in-memory
//! upstream (`upstream::memory`) that a task here answers. No child, no
//! binary: what is checked is what the transports do with HTTP.
//!
//! Here: the harness (the fake server, the endpoint, the routes, and readers
//! for JSON and SSE answers). Each transport's rules are in its own file.

// Named for the transport each tests; the transports themselves are `super::…`.
mod modern;
mod sse;
mod streamable;

use super::*;
use crate::config::ServerConfig;
use crate::hub::{Hub, OpenError, Snapshot};
use crate::session::{Downstream, SessionInfo, Upstream};
use crate::supervisor::Supervisor;
use crate::upstream::link::{Connector, Kind};
use http::{Method, Request};
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How long a test waits for anything it reads before failing.
const PATIENCE: Duration = Duration::from_secs(10);

/// A server in memory. Its tools: `echo` (the `text` argument back), `add`
/// (`a + b`), `ask` (asks the client one elicitation and answers with its
/// reply), `slow` (four progress notifications over `ms`, then "slept
/// <ms>ms"), `log` (three log messages, then "logged") and `list_changed`
/// (says its tool list changed, with `params: {}` unless `bare`, then "sent").
async fn serve_upstream(mut from_hub: mpsc::Receiver<Message>, to_hub: mpsc::Sender<Message>) {
    let mut waiting: Option<crate::jsonrpc::Id> = None;
    while let Some(m) = from_hub.recv().await {
        let v = m.to_value();
        if m.is_response() {
            if let Some(call) = waiting.take() {
                let said = v["result"]["content"]["name"].clone();
                let text = format!("answered {}", said.as_str().unwrap_or("?"));
                let _ = to_hub
                    .send(Message::response(call, text_result(&text)))
                    .await;
            }
            continue;
        }
        let Some(id) = m.id().cloned() else { continue };
        let args = &v["params"]["arguments"];
        let answer = match (m.method(), v["params"]["name"].as_str()) {
            (Some("initialize"), _) => json!({"protocolVersion": "2025-11-25",
                "capabilities": {"tools": {"listChanged": true}, "logging": {}},
                "serverInfo": {"name": "memory", "version": "1"}}),
            (Some("tools/list"), _) => {
                let tools: Vec<Value> = ["echo", "add", "ask", "slow", "log", "list_changed"]
                    .iter()
                    .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                    .collect();
                json!({ "tools": tools })
            }
            (Some("tools/call"), Some("ask")) => {
                waiting = Some(id);
                let q = Message::request(
                    crate::jsonrpc::Id::Str("q1".into()),
                    "elicitation/create",
                    json!({"message": "name?", "requestedSchema": {"type": "object"}}),
                );
                let _ = to_hub.send(q).await;
                continue;
            }
            (Some("tools/call"), Some("slow")) => {
                // Its own task: other requests are answered meanwhile.
                let ms = args["ms"].as_u64().unwrap_or(100);
                let token = v["params"]["_meta"]["progressToken"].clone();
                let to_hub = to_hub.clone();
                tokio::spawn(async move {
                    for i in 1..=4u64 {
                        tokio::time::sleep(Duration::from_millis(ms / 4)).await;
                        if !token.is_null() {
                            let p = json!({"progressToken": token, "progress": i, "total": 4});
                            let n = Message::notification("notifications/progress", Some(p));
                            let _ = to_hub.send(n).await;
                        }
                    }
                    let done = text_result(&format!("slept {ms}ms"));
                    let _ = to_hub.send(Message::response(id, done)).await;
                });
                continue;
            }
            (Some("tools/call"), Some("log")) => {
                for i in 0..3 {
                    let p = json!({"level": "info", "data": format!("line {i}")});
                    let n = Message::notification("notifications/message", Some(p));
                    let _ = to_hub.send(n).await;
                }
                text_result("logged")
            }
            (Some("tools/call"), Some("list_changed")) => {
                // `{"bare": true}`: a notification with no params at all.
                let params = (args["bare"] != true).then(|| json!({}));
                let n = Message::notification("notifications/tools/list_changed", params);
                let _ = to_hub.send(n).await;
                text_result("sent")
            }
            (Some("tools/call"), Some("add")) => {
                let sum = args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0);
                text_result(&sum.to_string())
            }
            (Some("tools/call"), _) => text_result(args["text"].as_str().unwrap_or("")),
            _ => json!({}),
        };
        let _ = to_hub.send(Message::response(id, answer)).await;
    }
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

/// Opens every session on one in-memory upstream of the test's.
struct Memory {
    hub: Arc<Hub>,
    up: Arc<Upstream>,
    sup: Arc<Supervisor>,
}

impl Endpoint for Memory {
    fn open<'a>(
        &'a self,
        _route: &'a Route,
        sink: Arc<dyn Downstream>,
        info: SessionInfo,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<ClientSession, OpenError>> + Send + 'a>>
    {
        Box::pin(async move { Ok(ClientSession::Server(self.up.attach(sink, info, &self.sup))) })
    }

    fn shared(&self, _server: &Arc<crate::hub::Server>) -> Result<Arc<Upstream>, OpenError> {
        Ok(self.up.clone())
    }

    fn current(&self) -> Arc<Snapshot> {
        self.hub.current()
    }
}

/// A hub config with `fx` and `fx2` (shared), `pc` (per-client) and the
/// group `all` (of `fx`), under `proxy` (`mcpProxy`: options, `baseURL`);
/// the test's endpoint stands in for every upstream.
fn config(mut proxy: Value) -> crate::config::Config {
    let server = json!({"command": "/bin/true", "sandbox": false});
    let mut pc = server.clone();
    pc["session"] = json!("per-client");
    let opts = proxy
        .as_object_mut()
        .expect("mcpProxy is an object")
        .entry("options")
        .or_insert(json!({}));
    opts["groups"] = json!({"all": {"servers": ["fx"]}});
    let text = json!({"mcpProxy": proxy,
        "mcpServers": {"fx": server.clone(), "fx2": server, "pc": pc}})
    .to_string();
    crate::config::parse(&text, "t", &|_| None).expect("the harness config parses")
}

pub(super) struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    ctx: Arc<Ctx>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// [`harness_with`] the default options.
async fn harness() -> Harness {
    harness_with(json!({})).await
}

/// Serves `/<name>/{sse,message,mcp}` and `/g/all/mcp` through the
/// transports on a loopback port, with `proxy` as the config's `mcpProxy`.
/// Session expiry runs as in the daemon.
async fn harness_with(proxy: Value) -> Harness {
    let hub = Hub::new(config(proxy));
    let cfg: Arc<ServerConfig> = hub.current().server("fx").unwrap().cfg.clone();
    let sup = Arc::new(Supervisor::new("fx"));
    let connect: Connector = Arc::new(|| {
        Box::pin(async {
            let (up, from_hub, to_hub) = crate::upstream::memory(64);
            tokio::spawn(serve_upstream(from_hub, to_hub));
            Ok(up)
        })
    });
    let (up, _task) = Upstream::spawn_with(cfg, sup.clone(), Kind::Shared, Some(connect));
    // Held by the harness: dropping the sender would end the streams.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    // The one place a test builds a `Ctx`.
    let ctx = Arc::new(Ctx {
        endpoint: Arc::new(Memory {
            hub: hub.clone(),
            up,
            sup,
        }),
        live: super::live::Live::new(None),
        limits: Default::default(),
        shutdown,
    });
    super::live::spawn_expiry(ctx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = ctx.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let ctx = served.clone();
            let hub = hub.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (ctx, snap) = (ctx.clone(), hub.current());
                async move { Ok::<_, Infallible>(route(&ctx, &snap, req).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc),
            );
        }
    });
    Harness {
        base,
        http: reqwest::Client::new(),
        ctx,
        stop,
    }
}

/// What the daemon's router does, for the transports' routes only.
async fn route(
    ctx: &Arc<Ctx>,
    snap: &Arc<Snapshot>,
    req: Request<hyper::body::Incoming>,
) -> http::Response<crate::http::response::Body> {
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let found = match path.strip_prefix("g/") {
        Some(rest) => rest
            .split_once('/')
            .and_then(|(g, ep)| Some((Route::Group(snap.group(g)?), ep))),
        None => path
            .split_once('/')
            .and_then(|(s, ep)| Some((Route::Server(snap.server(s)?), ep))),
    };
    let Some((route, endpoint)) = found else {
        return crate::http::response::empty(StatusCode::NOT_FOUND);
    };
    let r = match (endpoint, req.method().clone()) {
        ("sse", Method::GET) => super::sse::open(ctx, snap, route, req, None).await,
        ("message", Method::POST) => super::sse::post(ctx, snap, route, req, None).await,
        ("mcp", Method::POST) => super::streamable::post(ctx, snap, route, req, None).await,
        ("mcp", Method::GET) => super::streamable::get(ctx, snap, route, req).await,
        ("mcp", Method::DELETE) => super::streamable::delete(ctx, route, req).await,
        _ => Err(crate::http::response::Rejection::Method("?")),
    };
    r.unwrap_or_else(|e| e.into_response())
}

/// Streamable sessions open now. (The one place a test reads a registry.)
fn open_sessions(h: &Harness) -> usize {
    h.ctx.live.counts().streamable
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A POST of JSON that takes JSON or SSE back, with `headers` added.
    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        self.post_bytes(path, body.to_string().into_bytes(), headers)
            .await
    }

    /// [`Harness::post`] of any bytes.
    async fn post_bytes(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.unwrap()
    }

    /// A request of any method with exactly `headers`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut r = self.http.request(method, self.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.unwrap()
    }

    /// Initializes a streamable session on `path`; its id.
    async fn initialize(&self, path: &str) -> String {
        let r = self
            .post(path, rpc(0, "initialize", init_params("2025-11-25")), &[])
            .await;
        assert_eq!(r.status(), 200, "initialize on {path}");
        let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["result"]["serverInfo"]["name"], "memory", "{v}");
        sid
    }
}

fn init_params(version: &str) -> Value {
    json!({"protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}})
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    rpc(id, "tools/call", json!({"name": tool, "arguments": args}))
}

/// A whole answer: JSON or an SSE stream read to its end.
struct Reply {
    status: u16,
    sse: bool,
    headers: reqwest::header::HeaderMap,
    messages: Vec<Value>,
}

impl Reply {
    async fn read(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let sse = headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        let text = tokio::time::timeout(PATIENCE, r.text())
            .await
            .expect("the answer ended in time")
            .unwrap();
        let messages = if sse {
            events(&text)
        } else {
            match serde_json::from_str(&text) {
                Ok(Value::Array(v)) => v,
                Ok(v) => vec![v],
                Err(_) if text.is_empty() => vec![],
                Err(e) => panic!("{status}: not JSON ({e}): {text}"),
            }
        };
        Reply {
            status,
            sse,
            headers,
            messages,
        }
    }

    fn last(&self) -> &Value {
        self.messages.last().expect("the answer has a message")
    }
}

/// An SSE response, read as it arrives.
struct Events {
    body: Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    seen: String,
}

impl Events {
    fn new(r: reqwest::Response) -> Events {
        Events {
            body: Box::pin(r.bytes_stream()),
            seen: String::new(),
        }
    }

    /// Reads until `pick` finds what it wants in what has arrived; fails
    /// after [`PATIENCE`] or when the stream ends first.
    async fn until<T>(&mut self, pick: impl Fn(&str) -> Option<T>) -> T {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(t) = pick(&self.seen) {
                return t;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("nothing wanted came in time; seen: {}", self.seen))
                .unwrap_or_else(|| panic!("the stream ended; seen: {}", self.seen))
                .unwrap();
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The first JSON-RPC message that `want` accepts.
    async fn message(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        self.until(|seen| events(seen).into_iter().find(|m| want(m)))
            .await
    }

    /// Whether the stream ends within `wait`.
    async fn ends_within(&mut self, wait: Duration) -> bool {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(chunk))) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }
}

/// The JSON-RPC messages of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// What the transports log while the returned guard lives, on this thread
/// (a `#[tokio::test]` runs its tasks on its own thread).
fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

#[test]
fn frames_events() {
    assert_eq!(
        &event("endpoint", b"/x/message?sessionId=1")[..],
        b"event: endpoint\ndata: /x/message?sessionId=1\n\n"
    );
}

/// Every kind of client state lives in one registry, ended by one task: an
/// idle streamable session expires, an SSE session whose stream is open
/// stays, and shutdown ends what is left.
#[tokio::test]
async fn one_registry_one_expiry_task_and_shutdown_ends_everything() {
    let h = harness_with(json!({"options": {"sessionIdleTimeout": "1s"}})).await;
    let init = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}),
    );
    let r = h.post("/fx/mcp", init, &[]).await;
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let sse = h
        .http
        .get(format!("{}/fx/sse", h.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut events = Events::new(sse);
    let sse_id = events
        .until(|seen| {
            seen.lines()
                .find_map(|l| l.strip_prefix("data: /fx/message?sessionId="))
                .filter(|id| id.len() == 32)
                .map(str::to_owned)
        })
        .await;
    let c = h.ctx.live.counts();
    assert_eq!((c.sse, c.streamable), (1, 1), "{c:?}");
    // One id space: each id names the session of the transport that made it.
    assert!(matches!(h.ctx.live.get(&sid), Some(Session::Streamable(_))));
    assert!(matches!(h.ctx.live.get(&sse_id), Some(Session::Sse(_))));

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let c = h.ctx.live.counts();
    assert_eq!(
        (c.sse, c.streamable),
        (1, 0),
        "the idle streamable session expired; the open SSE stream stays: {c:?}"
    );
    let ping = rpc(2, "ping", json!({}));
    let r = h.post("/fx/mcp", ping, &[("mcp-session-id", &sid)]).await;
    assert_eq!(r.status(), 404, "an expired session is unknown");

    h.stop.send(true).unwrap();
    assert!(
        events.ends_within(Duration::from_secs(5)).await,
        "shutdown ends the SSE stream"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.ctx.live.counts(), super::live::Counts::default());
}
