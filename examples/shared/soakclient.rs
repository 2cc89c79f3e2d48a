//! The soak's clients, one kind each, all asking `echo` for a unique string:
//! a legacy SSE session, a 2025 streamable session (on a server or a group),
//! a 2026-07-28 stateless call, and an OpenAPI call. A call ends as `Right`
//! (exactly the string back), `Error` (an HTTP or JSON-RPC error, a dropped
//! stream: expected while a child is killed or the config reloads; the
//! client then starts a new session), or `Wrong` (an answer that is not the
//! string). Timeouts are the caller's (`soak.rs` counts them as hangs).

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub const TOKEN: &str = "soak-token";

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Sse,
    Streamable,
    Modern,
    OpenApi,
    Group,
}

pub enum Outcome {
    Right,
    Error(String),
    Wrong(String),
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A legacy SSE session: the stream's reader hands each answer to its waiter.
struct SseSession {
    endpoint: String,
    waiters: Waiters,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseSession {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub struct Client {
    kind: Kind,
    base: String,
    /// The server (or for `Group`, the member whose `echo` is called).
    server: String,
    http: reqwest::Client,
    session: Option<String>,
    sse: Option<SseSession>,
    next_id: u64,
}

/// The echo's text out of a tools/call result; None if it has another shape.
fn echoed(result: &Value) -> Option<&str> {
    result["content"][0]["text"].as_str()
}

fn judge(answer: &Value, want: &str) -> Outcome {
    if let Some(e) = answer.get("error") {
        return Outcome::Error(format!("JSON-RPC error {e}"));
    }
    if answer["result"]["isError"] == json!(true) {
        return Outcome::Error(format!("tool error {}", answer["result"]));
    }
    match echoed(&answer["result"]) {
        Some(t) if t == want => Outcome::Right,
        _ => Outcome::Wrong(format!("asked {want}, got {answer}")),
    }
}

/// The message with `id` in a POST's answer, JSON or an SSE stream.
fn find_answer(body: &[u8], id: u64) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Some(v);
    }
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m["id"] == json!(id))
}

impl Client {
    pub fn new(kind: Kind, base: &str, server: &str) -> Client {
        Client {
            kind,
            base: base.into(),
            server: server.into(),
            http: reqwest::Client::new(),
            session: None,
            sse: None,
            next_id: 1,
        }
    }

    fn post(&self, url: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .post(url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream");
        match &self.session {
            Some(s) => r.header("mcp-session-id", s),
            None => r,
        }
    }

    async fn rpc(&self, url: &str, msg: &Value, id: u64) -> Result<Value, String> {
        let resp = self
            .post(url)
            .json(msg)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        find_answer(&body, id).ok_or_else(|| format!("no answer to {id} in {status}"))
    }

    fn mcp_url(&self) -> String {
        match self.kind {
            Kind::Group => format!("{}/g/all/mcp", self.base),
            _ => format!("{}/{}/mcp", self.base, self.server),
        }
    }

    async fn open_streamable(&mut self) -> Result<(), String> {
        self.session = None;
        let url = self.mcp_url();
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}});
        let resp = self
            .post(&url)
            .json(&init)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("initialize: HTTP {}", resp.status()));
        }
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("initialize: no session id")?
            .to_string();
        let _ = resp.bytes().await;
        self.session = Some(sid);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(&url)
            .json(&note)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn open_sse(&mut self) -> Result<(), String> {
        self.sse = None;
        let resp = self
            .http
            .get(format!("{}/{}/sse", self.base, self.server))
            .bearer_auth(TOKEN)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("GET sse: HTTP {}", resp.status()));
        }
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        let (ep_tx, ep_rx) = oneshot::channel();
        let reader = tokio::spawn(async move {
            let mut ep_tx = Some(ep_tx);
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = buf.drain(..end + 2).collect();
                    let event = String::from_utf8_lossy(&event);
                    let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                        continue;
                    };
                    if event.starts_with("event: endpoint") {
                        if let Some(tx) = ep_tx.take() {
                            let _ = tx.send(data.to_string());
                        }
                    } else if let Ok(m) = serde_json::from_str::<Value>(data) {
                        let tx = m["id"]
                            .as_u64()
                            .and_then(|id| w.lock().unwrap().remove(&id));
                        if let Some(tx) = tx {
                            let _ = tx.send(m);
                        }
                    }
                }
            }
            // Dropping the waiters tells every pending call the stream ended.
            w.lock().unwrap().clear();
        });
        let ep = ep_rx
            .await
            .map_err(|_| "SSE stream ended before its endpoint")?;
        let endpoint = if ep.starts_with("http") {
            ep
        } else {
            format!("{}{}", self.base, ep)
        };
        self.sse = Some(SseSession {
            endpoint,
            waiters,
            reader,
        });
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}});
        self.sse_call(0, &init).await?;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let ep = self.sse.as_ref().unwrap().endpoint.clone();
        self.post(&ep)
            .json(&note)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn sse_call(&self, id: u64, msg: &Value) -> Result<Value, String> {
        let s = self.sse.as_ref().ok_or("no SSE session")?;
        let (tx, rx) = oneshot::channel();
        s.waiters.lock().unwrap().insert(id, tx);
        let resp = self
            .post(&s.endpoint)
            .json(msg)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            s.waiters.lock().unwrap().remove(&id);
            return Err(format!("POST endpoint: HTTP {}", resp.status()));
        }
        rx.await.map_err(|_| "SSE stream ended".to_string())
    }

    /// One echo of `text`; on an error the session is ended (a streamable
    /// one with DELETE, as a polite client does: an abandoned one would count
    /// against `maxSessionsPerToken` until `sessionIdleTimeout`), to be
    /// opened again.
    pub async fn echo(&mut self, text: &str) -> Outcome {
        let r = self.try_echo(text).await;
        if matches!(r, Outcome::Error(_)) {
            self.end().await;
        }
        r
    }

    /// Ends the session, if any (after a hang too).
    pub async fn end(&mut self) {
        self.sse = None;
        if self.session.is_some() {
            let url = self.mcp_url();
            let delete = self.http.delete(url).bearer_auth(TOKEN);
            let delete = delete.header("mcp-session-id", self.session.take().unwrap());
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), delete.send()).await;
        }
    }

    async fn try_echo(&mut self, text: &str) -> Outcome {
        let id = self.next_id;
        self.next_id += 1;
        let tool = match self.kind {
            Kind::Group => format!("{}__echo", self.server),
            _ => "echo".into(),
        };
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": text}}});
        let answer = match self.kind {
            Kind::Sse => {
                if self.sse.is_none() {
                    if let Err(e) = self.open_sse().await {
                        return Outcome::Error(e);
                    }
                }
                self.sse_call(id, &call).await
            }
            Kind::Streamable | Kind::Group => {
                if self.session.is_none() {
                    if let Err(e) = self.open_streamable().await {
                        return Outcome::Error(e);
                    }
                }
                self.rpc(&self.mcp_url(), &call, id).await
            }
            Kind::Modern => {
                let mut call = call;
                call["params"]["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}});
                let resp = self
                    .post(&self.mcp_url())
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "echo")
                    .json(&call)
                    .send()
                    .await;
                match resp {
                    Err(e) => Err(e.to_string()),
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Err(e) => Err(e.to_string()),
                            Ok(b) => find_answer(&b, id)
                                .ok_or_else(|| format!("HTTP {status}: no answer")),
                        }
                    }
                }
            }
            Kind::OpenApi => return self.openapi(text).await,
        };
        match answer {
            Ok(a) => judge(&a, text),
            Err(e) => Outcome::Error(e),
        }
    }

    /// OpenAPI: one text item comes back bare, as a JSON string.
    async fn openapi(&self, text: &str) -> Outcome {
        let url = format!("{}/{}/tools/echo", self.base, self.server);
        let resp = self
            .http
            .post(url)
            .bearer_auth(TOKEN)
            .json(&json!({"text": text}))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e.to_string()),
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Outcome::Error(e.to_string()),
        };
        if !status.is_success() {
            return Outcome::Error(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::String(t)) if t == text => Outcome::Right,
            _ => Outcome::Wrong(format!(
                "asked {text}, got HTTP {status} {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }
}
