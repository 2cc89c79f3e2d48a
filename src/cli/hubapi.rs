//! The operator's commands as an MCP client of the running hub: `/status`, a
//! route's HTTP status, and sessions over both transports (streamable HTTP on
//! `/<name>/mcp`, legacy SSE on `/<name>/sse`) for `test`, `tools` and `call`.
//!
//! It goes through the hub's front door on purpose: a test that passes here
//! passed auth, Origin/Host checks, routing and the session layer, exactly as
//! a client's request would.

use anyhow::{anyhow, bail, Context};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

const PROTOCOL: &str = "2025-11-25";

pub struct HubApi {
    http: reqwest::Client,
    pub base: url::Url,
    token: Option<String>,
    pub timeout: Duration,
}

impl HubApi {
    pub fn new(base: url::Url, token: Option<String>, timeout: Duration) -> anyhow::Result<HubApi> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(HubApi {
            http,
            base,
            token,
            timeout,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// `GET /status`. `Err` when the hub does not answer or refuses.
    pub async fn status(&self) -> anyhow::Result<Value> {
        let url = self.url("/status");
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            self.auth(self.http.get(&url)).send(),
        )
        .await
        .map_err(|_| anyhow!("{url}: no answer within 5s"))?
        .with_context(|| format!("no hub answers at {url}"))?;
        let code = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if !code.is_success() {
            bail!(
                "{url} answered {code}: {}{}",
                String::from_utf8_lossy(&body),
                if code == 401 {
                    " (pass the hub's token with --token or MCP_HUB_TOKEN)"
                } else {
                    ""
                }
            );
        }
        serde_json::from_slice(&body).with_context(|| format!("{url}: not JSON"))
    }

    /// The HTTP status of `GET /<name>/mcp` with the token: 404 once a server
    /// is gone (or disabled), 400/405/… while it is routed.
    pub async fn route_code(&self, name: &str) -> anyhow::Result<u16> {
        let url = self.url(&format!("/{name}/mcp"));
        let r = self
            .auth(self.http.get(&url))
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("no hub answers at {url}"))?;
        Ok(r.status().as_u16())
    }

    /// Opens a session on `/<name>/mcp` or `/<name>/sse`. Nothing is sent but
    /// the SSE stream's GET; call [`Session::initialize`] next.
    pub async fn open(&self, name: &str, sse: bool) -> anyhow::Result<Session<'_>> {
        if !sse {
            return Ok(Session {
                api: self,
                kind: Kind::Streamable {
                    url: self.url(&format!("/{name}/mcp")),
                    session: None,
                },
                next_id: 1,
            });
        }
        let url = self.url(&format!("/{name}/sse"));
        let resp = tokio::time::timeout(
            self.timeout,
            self.auth(self.http.get(&url))
                .header("accept", "text/event-stream")
                .send(),
        )
        .await
        .map_err(|_| anyhow!("GET {url}: no answer within {:?}", self.timeout))?
        .with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            let code = resp.status();
            let body = resp.text().await.unwrap_or_default();
            bail!("GET {url} answered {code}: {body}");
        }
        let mut events = resp.bytes_stream().eventsource();
        let first = tokio::time::timeout(self.timeout, events.next())
            .await
            .map_err(|_| anyhow!("GET {url}: no endpoint event within {:?}", self.timeout))?
            .ok_or_else(|| anyhow!("GET {url}: the stream ended before the endpoint event"))?
            .with_context(|| format!("GET {url}: bad event stream"))?;
        if first.event != "endpoint" {
            bail!(
                "GET {url}: the first event is {:?}, not endpoint",
                first.event
            );
        }
        let endpoint = if first.data.starts_with("http") {
            first.data
        } else {
            self.url(&first.data)
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                if ev.event == "message" {
                    if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Session {
            api: self,
            kind: Kind::Sse {
                endpoint,
                rx,
                reader,
            },
            next_id: 1,
        })
    }
}

enum Kind {
    Streamable {
        url: String,
        session: Option<String>,
    },
    Sse {
        endpoint: String,
        rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
        reader: tokio::task::JoinHandle<()>,
    },
}

/// One MCP session through the hub.
pub struct Session<'a> {
    api: &'a HubApi,
    kind: Kind,
    next_id: u64,
}

impl Session<'_> {
    /// `initialize` then `notifications/initialized`; returns the result.
    pub async fn initialize(&mut self) -> anyhow::Result<Value> {
        let r = self
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "mcp-hub-cli", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        self.notify("notifications/initialized").await?;
        Ok(r)
    }

    /// Every tool, following `nextCursor`.
    pub async fn tools(&mut self) -> anyhow::Result<Vec<Value>> {
        let mut all = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let r = self.request("tools/list", params).await?;
            if let Some(t) = r["tools"].as_array() {
                all.extend(t.iter().cloned());
            }
            match r["nextCursor"].as_str() {
                Some(c) if !c.is_empty() && all.len() < 100_000 => cursor = Some(c.into()),
                _ => return Ok(all),
            }
        }
    }

    /// One request; the result, or the JSON-RPC error as `Err`.
    pub async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let timeout = self.api.timeout;
        let reply = tokio::time::timeout(timeout, self.exchange(&msg, id))
            .await
            .map_err(|_| anyhow!("{method}: no answer within {}s", timeout.as_secs()))??;
        if let Some(e) = reply.get("error") {
            bail!(
                "{method}: error {}: {}",
                e["code"],
                e["message"].as_str().unwrap_or("(no message)")
            );
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }

    async fn notify(&mut self, method: &str) -> anyhow::Result<()> {
        let msg = json!({"jsonrpc": "2.0", "method": method});
        let code = self.post(&msg).await?.status();
        if !code.is_success() {
            bail!("{method}: the hub answered {code}");
        }
        Ok(())
    }

    async fn post(&mut self, msg: &Value) -> anyhow::Result<reqwest::Response> {
        let (url, session) = match &self.kind {
            Kind::Streamable { url, session } => (url.clone(), session.clone()),
            Kind::Sse { endpoint, .. } => (endpoint.clone(), None),
        };
        let mut r = self
            .api
            .auth(self.api.http.post(&url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(serde_json::to_vec(msg)?);
        if let Some(s) = session {
            r = r
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", PROTOCOL);
        }
        r.send().await.with_context(|| format!("POST {url}"))
    }

    async fn exchange(&mut self, msg: &Value, id: u64) -> anyhow::Result<Value> {
        let resp = self.post(msg).await?;
        let code = resp.status();
        match &mut self.kind {
            Kind::Streamable { url, session } => {
                if !code.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    bail!("POST {url} answered {code}: {}", body.trim());
                }
                if let Some(s) = resp.headers().get("mcp-session-id") {
                    *session = s.to_str().ok().map(String::from);
                }
                let sse = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
                if sse {
                    let mut events = resp.bytes_stream().eventsource();
                    while let Some(ev) = events.next().await {
                        let ev = ev.with_context(|| format!("POST {url}: bad event stream"))?;
                        if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                            if v["id"] == json!(id) {
                                return Ok(v);
                            }
                        }
                    }
                    bail!("POST {url}: the stream ended without the answer")
                }
                let body = resp.bytes().await?;
                let v: Value = serde_json::from_slice(&body)
                    .with_context(|| format!("POST {url}: the answer is not JSON"))?;
                let found = match v {
                    Value::Array(a) => a.into_iter().find(|m| m["id"] == json!(id)),
                    v => Some(v),
                };
                found.ok_or_else(|| anyhow!("POST {url}: no answer to request {id}"))
            }
            Kind::Sse { endpoint, rx, .. } => {
                if code != reqwest::StatusCode::ACCEPTED && !code.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    bail!("POST {endpoint} answered {code}: {}", body.trim());
                }
                while let Some(v) = rx.recv().await {
                    if v["id"] == json!(id) {
                        return Ok(v);
                    }
                }
                bail!("the SSE stream closed before the answer")
            }
        }
    }

    /// Ends the session (DELETE for streamable HTTP; closing the stream for SSE).
    pub async fn close(self) {
        match self.kind {
            Kind::Streamable {
                url,
                session: Some(s),
            } => {
                let _ = self
                    .api
                    .auth(self.api.http.delete(&url))
                    .header("mcp-session-id", s)
                    .send()
                    .await;
            }
            Kind::Streamable { .. } => {}
            Kind::Sse { reader, .. } => reader.abort(),
        }
    }
}
