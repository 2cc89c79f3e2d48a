//! loadgen's clients: a keep-alive HTTP/1 connection that POSTs JSON (a 2025
//! streamable session, or the floor), a legacy SSE session (GET stream plus
//! POSTs, answers matched by id), and a 2026-07-28 caller (no session; every
//! call carries the `_meta` envelope and the `Mcp-*` headers).

use super::bearer;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// One keep-alive HTTP/1 connection that POSTs JSON to one path.
pub struct Conn {
    pub send: http1::SendRequest<Full<Bytes>>,
    addr: String,
    path: String,
    pub session: Option<String>,
}

impl Conn {
    pub async fn open(addr: &str, path: &str) -> Conn {
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
            .header("authorization", format!("Bearer {}", bearer()))
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req
    }

    pub async fn post(&mut self, body: &Value) -> (hyper::http::HeaderMap, Bytes) {
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
    pub async fn initialize(&mut self) {
        let (h, _) = self.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "loadgen", "version": "1"}}})).await;
        self.session = Some(h["mcp-session-id"].to_str().unwrap().to_string());
        self.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
    }

    pub async fn delete(&mut self) {
        self.send.ready().await.expect("connection open");
        let req = self
            .request("DELETE")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _ = self.send.send_request(req).await;
    }
}

pub type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

/// A legacy SSE session: the GET stream (read by a task that hands each answer
/// to the call waiting for its id) and a connection for POSTs to the endpoint.
pub struct Sse {
    post: Conn,
    waiters: Waiters,
    stream: tokio::task::JoinHandle<()>,
}

impl Sse {
    pub async fn open(addr: &str) -> Sse {
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

    pub async fn call(&mut self, id: u64, body: &Value) {
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

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    Floor,
    Streamable,
    Sse,
    /// 2026-07-28: no session; every call carries its `_meta` and headers.
    Modern,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Floor => "floor (HTTP→stdio)",
            Path::Streamable => "hub streamable HTTP",
            Path::Sse => "hub legacy SSE",
            Path::Modern => "hub 2026-07-28",
        }
    }
}

pub enum Client {
    Post(Conn),
    Sse(Sse),
    Modern(Conn),
}

impl Client {
    pub async fn open(path: Path, floor: &str, hub: &str) -> Client {
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

    pub async fn call(&mut self, id: u64) {
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

    pub async fn close(self) {
        if let Client::Post(mut c) = self {
            if c.session.is_some() {
                c.delete().await;
            }
        }
    }
}
