//! The three transports in-process: legacy SSE, streamable HTTP sessions and
//! stateless 2026-07-28 requests, served over a loopback socket by hyper
//! with an endpoint of the test's own whose sessions run on an in-memory
//! upstream (`upstream::memory`) that a task here answers. No child, no
//! binary: what is checked is what the transports do with HTTP.

use super::*;
use crate::config::ServerConfig;
use crate::hub::{Hub, OpenError, Snapshot};
use crate::session::{Downstream, SessionInfo, Upstream};
use crate::supervisor::Supervisor;
use crate::upstream::link::{Connector, Kind};
use http::{Method, Request};
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A server in memory: answers `initialize`, echoes `tools/call` (`echo`),
/// and for `ask` asks the client one question and answers with its reply.
async fn serve_upstream(mut from_hub: mpsc::Receiver<Message>, to_hub: mpsc::Sender<Message>) {
    let mut waiting: Option<(crate::jsonrpc::Id, ())> = None;
    while let Some(m) = from_hub.recv().await {
        let v = m.to_value();
        if m.is_response() {
            if let Some((call, ())) = waiting.take() {
                let said = v["result"]["content"]["name"].clone();
                let text = format!("answered {}", said.as_str().unwrap_or("?"));
                let r =
                    Message::response(call, json!({"content": [{"type": "text", "text": text}]}));
                let _ = to_hub.send(r).await;
            }
            continue;
        }
        let Some(id) = m.id().cloned() else { continue };
        let answer = match m.method() {
            Some("initialize") => json!({"protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}}, "serverInfo": {"name": "memory", "version": "1"}}),
            Some("tools/list") => {
                json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})
            }
            Some("tools/call") if v["params"]["name"] == "ask" => {
                waiting = Some((id, ()));
                let q = Message::request(
                    crate::jsonrpc::Id::Str("q1".into()),
                    "elicitation/create",
                    json!({"message": "name?", "requestedSchema": {"type": "object"}}),
                );
                let _ = to_hub.send(q).await;
                continue;
            }
            Some("tools/call") => {
                json!({"content": [{"type": "text", "text": v["params"]["arguments"]["text"]}]})
            }
            _ => json!({}),
        };
        let _ = to_hub.send(Message::response(id, answer)).await;
    }
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

/// A hub config with `fx` (shared) and `pc` (per-client); the test's
/// endpoint stands in for their upstreams.
fn config() -> crate::config::Config {
    let server = json!({"command": "/bin/true", "sandbox": false});
    let mut pc = server.clone();
    pc["session"] = json!("per-client");
    let text = json!({"mcpServers": {"fx": server, "pc": pc}}).to_string();
    crate::config::parse(&text, "t", &|_| None).unwrap()
}

struct Harness {
    base: String,
    http: reqwest::Client,
    ctx: Arc<Ctx>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Serves `/<name>/{sse,message,mcp}` through the transports on a loopback port.
async fn harness() -> Harness {
    let hub = Hub::new(config());
    let cfg: Arc<ServerConfig> = hub.current().server("fx").unwrap().cfg.clone();
    harness_with(hub, cfg).await
}

/// The harness on `hub`'s config, `cfg` being the shared upstream's.
async fn harness_with(hub: Arc<Hub>, cfg: Arc<ServerConfig>) -> Harness {
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
    let served = ctx.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let ctx = served.clone();
            let hub = hub.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (ctx, snap) = (ctx.clone(), hub.current());
                async move {
                    let path = req.uri().path().trim_start_matches('/').to_owned();
                    let (name, endpoint) = path.split_once('/').unwrap_or((&path, ""));
                    let route = Route::Server(snap.server(name).unwrap());
                    let r = match (endpoint, req.method().clone()) {
                        ("sse", Method::GET) => sse::open(&ctx, &snap, route, req, None).await,
                        ("message", Method::POST) => sse::post(&ctx, &snap, route, req, None).await,
                        ("mcp", Method::POST) => {
                            streamable::post(&ctx, &snap, route, req, None).await
                        }
                        ("mcp", Method::DELETE) => streamable::delete(&ctx, route, req).await,
                        _ => Err(crate::http::response::Rejection::Method("?")),
                    };
                    Ok::<_, Infallible>(r.unwrap_or_else(|e| e.into_response()))
                }
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

impl Harness {
    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.unwrap()
    }
}

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
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

    /// Reads until `pick` finds what it wants in what has arrived.
    async fn until<T>(&mut self, pick: impl Fn(&str) -> Option<T>) -> T {
        use futures_util::StreamExt;
        loop {
            if let Some(t) = pick(&self.seen) {
                return t;
            }
            let chunk = self.body.next().await.expect("the stream ended").unwrap();
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads to the end of the stream.
    async fn rest(&mut self) {
        use futures_util::StreamExt;
        while let Some(Ok(chunk)) = self.body.next().await {
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The first JSON-RPC message that `want` accepts.
    async fn message(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        self.until(|seen| events(seen).into_iter().find(|m| want(m)))
            .await
    }
}

/// The JSON-RPC messages of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[tokio::test]
async fn streamable_sessions_answer_expire_on_delete_and_refuse_unknown_ids() {
    let h = harness().await;
    let r = h
        .post(
            "/fx/mcp",
            rpc(
                1,
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}),
            ),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["serverInfo"]["name"], "memory", "{v}");
    let call = rpc(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let r = h
        .post("/fx/mcp", call.clone(), &[("mcp-session-id", &sid)])
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "hi", "{v}");
    // No session header: 400; an unknown one: 404.
    assert_eq!(h.post("/fx/mcp", call.clone(), &[]).await.status(), 400);
    let r = h
        .post("/fx/mcp", call.clone(), &[("mcp-session-id", "nope")])
        .await;
    assert_eq!(r.status(), 404);
    let r = h
        .http
        .delete(format!("{}/fx/mcp", h.base))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = h.post("/fx/mcp", call, &[("mcp-session-id", &sid)]).await;
    assert_eq!(r.status(), 404, "a deleted session is gone");
}

#[tokio::test]
async fn a_question_during_a_call_streams_on_that_post_and_the_answer_goes_back() {
    let h = harness().await;
    let r = h
        .post(
            "/fx/mcp",
            rpc(
                1,
                "initialize",
                json!({"protocolVersion": "2025-11-25",
                "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}}),
            ),
            &[],
        )
        .await;
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    // The question comes first: the POST turns into a stream.
    let call = h
        .http
        .post(format!("{}/fx/mcp", h.base))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .json(&rpc(
            2,
            "tools/call",
            json!({"name": "ask", "arguments": {}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(call.headers()["content-type"], "text/event-stream");
    let mut stream = Events::new(call);
    let question = stream
        .message(|m| m["method"] == "elicitation/create")
        .await;
    let answer = json!({"jsonrpc": "2.0", "id": question["id"],
        "result": {"action": "accept", "content": {"name": "ada"}}});
    let r = h.post("/fx/mcp", answer, &[("mcp-session-id", &sid)]).await;
    assert_eq!(r.status(), 202);
    let done = stream
        .message(|m| m["id"] == 2 && m.get("result").is_some())
        .await;
    assert_eq!(
        done["result"]["content"][0]["text"], "answered ada",
        "{done}"
    );
}

#[tokio::test]
async fn legacy_sse_announces_its_endpoint_and_answers_on_the_stream() {
    let h = harness().await;
    let stream = h
        .http
        .get(format!("{}/fx/sse", h.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = Events::new(stream);
    let endpoint = stream
        .until(|seen| {
            seen.lines()
                .find_map(|l| l.strip_prefix("data: /fx/message"))
                .map(|l| format!("/fx/message{l}"))
        })
        .await;
    let init = rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(h.post(&endpoint, init, &[]).await.status(), 202);
    let call = rpc(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "over sse"}}),
    );
    assert_eq!(h.post(&endpoint, call, &[]).await.status(), 202);
    let answer = stream.message(|m| m["id"] == 2).await;
    assert_eq!(answer["result"]["content"][0]["text"], "over sse");
    // An unknown session id is refused with 404.
    let r = h
        .post("/fx/message?sessionId=nope", rpc(3, "ping", json!({})), &[])
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_stateless_request_is_answered_with_no_session_and_its_question_is_held() {
    let h = harness().await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}});
    let hdr = |m: &'static str, n: &'static str| {
        [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", m),
            ("mcp-name", n),
        ]
    };
    // A per-client server: a transient session the hub initializes.
    let call = rpc(
        7,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "now"}, "_meta": meta}),
    );
    let r = h.post("/pc/mcp", call, &hdr("tools/call", "echo")).await;
    assert!(r.headers().get("mcp-session-id").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["content"][0]["text"], "now", "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    // The question becomes input_required; the retry carries the answer.
    let ask = json!({"name": "ask", "arguments": {}, "_meta": meta});
    let r = h
        .post(
            "/pc/mcp",
            rpc(8, "tools/call", ask.clone()),
            &hdr("tools/call", "ask"),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    let (key, _) = v["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let mut retry = ask;
    retry["requestState"] = v["result"]["requestState"].clone();
    retry["inputResponses"] = json!({key.clone(): {"action": "accept", "content": {"name": "bo"}}});
    let r = h
        .post(
            "/pc/mcp",
            rpc(9, "tools/call", retry),
            &hdr("tools/call", "ask"),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "answered bo", "{v}");
    // A header that disagrees with the body: 400 with -32020.
    let call = rpc(
        10,
        "tools/call",
        json!({"name": "echo", "arguments": {}, "_meta": meta}),
    );
    let r = h.post("/pc/mcp", call, &hdr("tools/list", "echo")).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32020, "{v}");
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
    let server = json!({"command": "/bin/true", "sandbox": false});
    let text = json!({"mcpProxy": {"options": {"sessionIdleTimeout": "1s"}},
        "mcpServers": {"fx": server}})
    .to_string();
    let hub = Hub::new(crate::config::parse(&text, "t", &|_| None).unwrap());
    let cfg = hub.current().server("fx").unwrap().cfg.clone();
    let h = harness_with(hub, cfg).await;
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
    let ended = tokio::time::timeout(Duration::from_secs(5), events.rest()).await;
    assert!(ended.is_ok(), "shutdown ends the SSE stream");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.ctx.live.counts(), super::live::Counts::default());
}
