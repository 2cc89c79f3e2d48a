//! A streamable-HTTP (2025-03-26+) server as an upstream, e.g. dbhub with
//! `--transport http`, or another mcp-hub's `/<name>/mcp`.
//!
//! Each message is a POST. `initialize` is sent inline (the session id and
//! protocol version come back with it); other requests are posted from their own
//! task so a long call never holds up a notification or a reply to the server.
//! Responses arrive as JSON or as an SSE stream and all land in one inbox. After
//! initialize the GET stream is opened for server-initiated messages (405 means
//! there is none). A 404 on a known session, or a refused connection, ends the
//! connection: the supervisor reconnects and initializes again. The session is
//! DELETEd when the hub closes it.
//!
//! No answer is held in memory past `maxResponseSize`: a JSON body or an SSE
//! event over it fails the request that POST carried with an error naming the
//! limit, and that response is dropped; the connection lives on. An event
//! over it on the GET stream is skipped (failing the request it answers, when
//! its id can be read), and the stream read on.

use super::events::{Events, Item};
use super::sse::error_chain;
use super::{
    http_client, parse_messages, read_body, salvage_id, set_last_error, snippet, tagged_upstream,
    too_large, BodyError, Closed, LastError, Outbox, Upstream,
};
use crate::jsonrpc::{Id, Message, UPSTREAM_ERROR};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;

#[derive(Clone)]
pub struct Poster(Arc<Inner>);

/// A message, and the request whose POST stream it came on (none for the
/// GET stream): a server request there belongs to that request exactly.
type Arrived = (Message, Option<Id>);

struct Inner {
    server: String,
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
    /// The largest body or event taken (`maxResponseSize`).
    max: usize,
    session: Mutex<Option<String>>,
    version: Mutex<Option<String>>,
    /// The one strong sender: dropping it (on death) closes the inbox.
    alive: Mutex<Option<mpsc::Sender<Arrived>>>,
    inbox: mpsc::WeakSender<Arrived>,
    last_error: LastError,
    get_started: AtomicBool,
    get_task: Mutex<Option<tokio::task::AbortHandle>>,
}

pub fn connect(
    server: &str,
    url: &Url,
    headers: &BTreeMap<String, String>,
    max_response: usize,
    request_timeout: Duration,
) -> Result<Upstream, String> {
    let http = http_client(headers)?;
    let (tx, rx) = mpsc::channel(1024);
    let last_error: LastError = Arc::new(Mutex::new(None));
    let inner = Inner {
        server: server.into(),
        http,
        url: url.clone(),
        timeout: request_timeout,
        max: max_response,
        session: Mutex::new(None),
        version: Mutex::new(None),
        inbox: tx.downgrade(),
        alive: Mutex::new(Some(tx)),
        last_error: last_error.clone(),
        get_started: AtomicBool::new(false),
        get_task: Mutex::new(None),
    };
    Ok(tagged_upstream(
        Outbox::Streamable(Poster(Arc::new(inner))),
        rx,
        last_error,
    ))
}

fn header(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

impl Poster {
    fn alive(&self) -> bool {
        self.0.alive.lock().map(|a| a.is_some()).unwrap_or(false)
    }

    async fn deliver(&self, m: Message) {
        self.deliver_on(m, None).await
    }

    async fn deliver_on(&self, m: Message, on: Option<Id>) {
        if let Some(tx) = self.0.inbox.upgrade() {
            let _ = tx.send((m, on)).await;
        }
    }

    /// Fails the request an oversized answer belonged to (when there is one).
    async fn refuse(&self, id: Option<Id>) {
        let why = too_large(&self.0.server, self.0.max);
        tracing::warn!(mcp_server = %self.0.server, "{why}");
        if let Some(id) = id {
            self.deliver(Message::error(Some(id), UPSTREAM_ERROR, why))
                .await;
        }
    }

    /// Ends the connection: the inbox closes and the supervisor takes over.
    fn die(&self, why: String) {
        tracing::warn!(mcp_server = %self.0.server, "upstream connection lost: {why}");
        set_last_error(&self.0.last_error, why);
        if let Ok(mut a) = self.0.alive.lock() {
            a.take();
        }
        if let Some(t) = self.0.get_task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }

    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        if !self.alive() {
            return Err(Closed);
        }
        if msg.is_request() && msg.method() != Some("initialize") {
            // Posted from its own task: a long call must not hold up the next message.
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.exchange(msg).await;
            });
            return Ok(());
        }
        self.exchange(msg).await
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let i = &self.0;
        let mut r = i.http.request(method, i.url.clone());
        if let Some(s) = header(&i.session) {
            r = r.header("mcp-session-id", s);
        }
        if let Some(v) = header(&i.version) {
            r = r.header("mcp-protocol-version", v);
        }
        r
    }

    async fn exchange(&self, msg: Message) -> Result<(), Closed> {
        let i = &self.0;
        let is_init = msg.method() == Some("initialize");
        let sent = modern_headers(self.request(reqwest::Method::POST), &msg)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .timeout(i.timeout)
            .body(msg.to_bytes())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Ok(()), // the session layer's deadline answers it
            Err(e) => {
                self.die(format!("POST {}: {}", i.url, error_chain(&e)));
                return Err(Closed);
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND && header(&i.session).is_some() {
            self.die("the server no longer knows the session (404); initializing again".into());
            return Err(Closed);
        }
        let request_id = msg.id().cloned().filter(|_| msg.is_request());
        if !status.is_success() {
            let snippet = snippet(resp).await;
            if let Some(id) = request_id {
                self.deliver(Message::error(
                    Some(id),
                    UPSTREAM_ERROR,
                    format!("upstream answered HTTP {status}: {snippet}"),
                ))
                .await;
            }
            return Ok(());
        }
        if is_init {
            if let Some(s) = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                *i.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.to_string());
            }
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if sse {
            let mut events = Events::new(resp.bytes_stream(), i.max);
            while let Some(item) = events.next().await {
                match item {
                    Ok(Item::Event(ev)) if ev.is_message() => {
                        self.take_all(&ev.data, is_init, request_id.as_ref()).await
                    }
                    Ok(Item::Event(_)) => {}
                    Ok(Item::TooLarge { .. }) => {
                        // The rest of this answer is dropped with the response.
                        self.refuse(request_id).await;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(mcp_server = %i.server, "response stream ended: {}", error_chain(&e));
                        break;
                    }
                }
            }
        } else if status != reqwest::StatusCode::ACCEPTED {
            match read_body(resp, i.max).await {
                Ok(b) if !b.is_empty() => self.take_all(&b, is_init, request_id.as_ref()).await,
                Ok(_) => {}
                Err(BodyError::TooLarge) => self.refuse(request_id).await,
                Err(e) => {
                    tracing::warn!(mcp_server = %i.server, "reading a response: {e}")
                }
            }
        }
        if is_init {
            self.open_get_stream();
        }
        Ok(())
    }

    /// Delivers what one body or event holds; `on`: the request whose POST
    /// it answered.
    async fn take_all(&self, bytes: &[u8], is_init: bool, on: Option<&Id>) {
        match parse_messages(bytes) {
            Ok(msgs) => {
                for m in msgs {
                    if is_init {
                        if let Some(v) = m.result_field::<String>("protocolVersion") {
                            *self.0.version.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
                        }
                    }
                    self.deliver_on(m, on.cloned()).await;
                }
            }
            Err(e) => {
                tracing::warn!(mcp_server = %self.0.server, "upstream sent a body that is not JSON-RPC: {e}")
            }
        }
    }

    /// The stream for server-initiated messages, reopened while the connection lives.
    fn open_get_stream(&self) {
        if self.0.get_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_millis(500);
            while me.alive() {
                let resp = me
                    .request(reqwest::Method::GET)
                    .header("accept", "text/event-stream")
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == reqwest::StatusCode::METHOD_NOT_ALLOWED => return,
                    Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                        me.die("the server no longer knows the session (404 on the GET stream); initializing again".into());
                        return;
                    }
                    Ok(r) if r.status().is_success() => {
                        delay = Duration::from_millis(500);
                        let mut events = Events::new(r.bytes_stream(), me.0.max);
                        while let Some(Ok(item)) = events.next().await {
                            match item {
                                Item::Event(ev) if ev.is_message() => {
                                    me.take_all(&ev.data, false, None).await
                                }
                                Item::Event(_) => {}
                                Item::TooLarge { prefix } => me.refuse(salvage_id(&prefix)).await,
                            }
                        }
                    }
                    Ok(r) => {
                        tracing::debug!(mcp_server = %me.0.server, "GET stream answered {}", r.status())
                    }
                    Err(e) => {
                        tracing::debug!(mcp_server = %me.0.server, "GET stream: {}", error_chain(&e))
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        });
        if let Ok(mut t) = self.0.get_task.lock() {
            *t = Some(task.abort_handle());
        }
    }

    /// Ends the session on the server (DELETE), then the connection.
    pub async fn close(&self) {
        if header(&self.0.session).is_some() && self.alive() {
            let _ = self
                .request(reqwest::Method::DELETE)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
        }
        set_last_error(&self.0.last_error, "closed by the hub");
        if let Ok(mut a) = self.0.alive.lock() {
            a.take();
        }
        if let Some(t) = self.0.get_task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

/// The headers a 2026-07-28 request carries beside its body (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name`), taken from the body itself; nothing for a 2025 one.
fn modern_headers(mut r: reqwest::RequestBuilder, msg: &Message) -> reqwest::RequestBuilder {
    let crate::mcp::Era::Modern(version) = crate::mcp::classify(msg) else {
        return r;
    };
    let method = msg.method().unwrap_or("");
    r = r
        .header("mcp-protocol-version", version)
        .header("mcp-method", method);
    if let Some(name) = crate::mcp::name_param(method).and_then(|p| msg.param::<String>(p)) {
        r = r.header("mcp-name", crate::mcp::encode_header(&name));
    }
    r
}
