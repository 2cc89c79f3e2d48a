//! The hub as an MCP client: one connection to one upstream server, whatever
//! is behind it: a stdio child (`stdio`), a legacy SSE server (`sse`) or a
//! streamable-HTTP server (`streamable`). The session layer and the supervisor
//! see only [`Upstream`]: an [`Outbox`] to send with, `recv` for what comes back
//! (`None` when the connection is gone), and for children their process.

pub mod events;
pub mod link;
pub mod sse;
pub mod stdio;
pub mod streamable;

use crate::config;
use crate::jsonrpc::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The connection is closed: the child exited or the remote session is gone.
#[derive(Debug)]
pub struct Closed;

/// Why a connection failed last: a child's last stderr line, or the remote error.
pub type LastError = Arc<Mutex<Option<String>>>;

pub fn set_last_error(slot: &LastError, why: impl Into<String>) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(why.into());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Spawn(#[from] stdio::SpawnError),
    #[error("{0}")]
    Remote(String),
}

/// Where messages to the upstream go. Cheap to clone.
#[derive(Clone)]
pub enum Outbox {
    Stdin(stdio::Stdin),
    Sse(sse::Poster),
    Streamable(streamable::Poster),
    /// An in-memory upstream ([`memory`]), for tests of the routing core.
    Memory(mpsc::Sender<Message>),
}

impl Outbox {
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        match self {
            Outbox::Stdin(s) => s.send(msg).await,
            Outbox::Sse(p) => p.send(msg).await,
            Outbox::Streamable(p) => p.send(msg).await,
            Outbox::Memory(tx) => tx.send(msg).await.map_err(|_| Closed),
        }
    }

    /// Sends from code that cannot wait (a reply to a ping, a cancellation).
    /// Gives up after [`DETACHED_SEND`]: a child that stopped reading must not
    /// collect a task per message.
    pub fn send_detached(&self, msg: Message) {
        let me = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(DETACHED_SEND, me.send(msg)).await;
        });
    }

    /// Ends the conversation politely: EOF on stdin, DELETE of a remote session.
    pub async fn close(&self) {
        match self {
            Outbox::Stdin(s) => s.close().await,
            Outbox::Sse(_) | Outbox::Memory(_) => {}
            Outbox::Streamable(p) => p.close().await,
        }
    }
}

const DETACHED_SEND: Duration = Duration::from_secs(10);

/// What the upstream said: a message, or a line that is not JSON-RPC (with
/// the id it seems to answer, so that request can fail at once).
#[derive(Debug)]
pub enum Received {
    Msg(Message),
    /// A server request that arrived on the stream of one of the hub's
    /// requests (a streamable-HTTP POST's answer): it belongs to that request.
    OnRequest {
        msg: Message,
        request: crate::jsonrpc::Id,
    },
    Garbage {
        id: Option<crate::jsonrpc::Id>,
        why: String,
    },
}

/// Where messages from the upstream arrive.
pub enum Inbox {
    Stdio(stdio::Reader),
    Channel(mpsc::Receiver<Message>),
    /// Messages with the request whose stream they came on, if any.
    Tagged(mpsc::Receiver<(Message, Option<crate::jsonrpc::Id>)>),
}

impl Inbox {
    /// The next message from the server; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        match self {
            Inbox::Stdio(r) => r.recv().await,
            Inbox::Channel(c) => c.recv().await.map(Received::Msg),
            Inbox::Tagged(c) => c.recv().await.map(|(msg, on)| match on {
                Some(request) if msg.is_request() => Received::OnRequest { msg, request },
                _ => Received::Msg(msg),
            }),
        }
    }
}

/// Resolves when a child exits; never for a remote server (its end shows in `recv`).
/// A free function so a `select!` can borrow it beside the inbox.
pub async fn exited(
    process: &mut Option<stdio::Process>,
) -> std::io::Result<std::process::ExitStatus> {
    match process {
        Some(p) => p.child.wait().await,
        None => std::future::pending().await,
    }
}

/// What a child's stderr leaves behind (see [`Upstream::stderr_tail`]).
pub struct StderrTail(stdio::Recent, Option<tokio::task::JoinHandle<()>>);

impl StderrTail {
    /// The last lines, once the reader reached EOF (or after a second: a
    /// grandchild may hold the pipe open).
    pub async fn lines(self) -> Vec<String> {
        if let Some(t) = self.1 {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        self.0
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

pub struct Upstream {
    pub tx: Outbox,
    pub rx: Inbox,
    pub process: Option<stdio::Process>,
    last_error: LastError,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Upstream {
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }

    pub async fn exited(&mut self) -> std::io::Result<std::process::ExitStatus> {
        exited(&mut self.process).await
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }

    /// A child's last stderr lines, to read once it is gone, and the task
    /// still reading them.
    pub fn stderr_tail(&mut self) -> Option<StderrTail> {
        self.process
            .as_mut()
            .map(|p| StderrTail(p.recent.clone(), p.stderr_task.take()))
    }

    pub fn is_remote(&self) -> bool {
        self.process.is_none()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens a connection: spawns the child, or connects to the remote server.
/// `timeout` bounds a remote connect (the SSE `endpoint` event); `request_timeout`
/// bounds each remote request.
pub async fn connect(
    server: &str,
    upstream: &config::Upstream,
    timeout: Duration,
    request_timeout: Duration,
) -> Result<Upstream, ConnectError> {
    match upstream {
        config::Upstream::Stdio(spec) => Ok(stdio::spawn(server, spec).await?),
        config::Upstream::Sse {
            url,
            headers,
            max_response,
        } => sse::connect(
            server,
            url,
            headers,
            *max_response,
            timeout,
            request_timeout,
        )
        .await
        .map_err(ConnectError::Remote),
        config::Upstream::Streamable {
            url,
            headers,
            max_response,
        } => streamable::connect(server, url, headers, *max_response, request_timeout)
            .map_err(ConnectError::Remote),
    }
}

/// An HTTP client for one remote server: its configured headers on every request,
/// rustls with the system's roots, and no redirects to other places.
pub fn http_client(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<reqwest::Client, String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("header {k:?}: {e}"))?;
        let mut value =
            reqwest::header::HeaderValue::from_str(v).map_err(|e| format!("header {k:?}: {e}"))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    reqwest::Client::builder()
        .default_headers(map)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mcp-hub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Why a remote server's body was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("over the limit")]
    TooLarge,
    #[error("{}", sse::error_chain(.0))]
    Failed(#[from] reqwest::Error),
}

/// Reads a response body of at most `max` bytes, in bounded memory: a
/// declared length over the limit is refused before reading, and a body
/// that grows past it is dropped as soon as it does.
pub async fn read_body(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    use futures_util::StreamExt;
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    let mut chunks = resp.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error page, for a message: at most 200 characters, read
/// without reading the rest of the body.
pub async fn snippet(resp: reqwest::Response) -> String {
    use futures_util::StreamExt;
    let mut head = Vec::new();
    let mut chunks = resp.bytes_stream();
    while head.len() < 1024 {
        match chunks.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk[..chunk.len().min(1024)]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).chars().take(200).collect()
}

/// The error for a request whose answer passed `max` bytes, naming the limit.
pub fn too_large(server: &str, max: usize) -> String {
    format!(
        "the answer from {server} is larger than its maxResponseSize ({}); refused \
         (raise mcpServers.{server}.maxResponseSize to accept it)",
        bytesize::ByteSize::b(max as u64)
    )
}

/// The id of the message an oversized event started, read from its first
/// bytes, so the request it answers fails at once instead of at its deadline.
pub fn salvage_id(prefix: &[u8]) -> Option<crate::jsonrpc::Id> {
    let valid = match std::str::from_utf8(prefix) {
        Ok(_) => prefix,
        Err(e) => &prefix[..e.valid_up_to()],
    };
    crate::jsonrpc::salvage_id(valid)
}

/// Parses a body or event that holds one message or a batch.
pub fn parse_messages(bytes: &[u8]) -> Result<Vec<Message>, String> {
    match crate::jsonrpc::parse_body(bytes) {
        Ok(crate::jsonrpc::Incoming::Single(m)) => Ok(vec![m]),
        Ok(crate::jsonrpc::Incoming::Batch(v)) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

fn channel_upstream(
    tx: Outbox,
    rx: mpsc::Receiver<Message>,
    last_error: LastError,
    tasks: Vec<tokio::task::AbortHandle>,
) -> Upstream {
    Upstream {
        tx,
        rx: Inbox::Channel(rx),
        process: None,
        last_error,
        tasks,
    }
}

/// Like [`channel_upstream`], for a transport that knows which request a
/// message came with.
fn tagged_upstream(
    tx: Outbox,
    rx: mpsc::Receiver<(Message, Option<crate::jsonrpc::Id>)>,
    last_error: LastError,
) -> Upstream {
    Upstream {
        tx,
        rx: Inbox::Tagged(rx),
        process: None,
        last_error,
        tasks: vec![],
    }
}

/// An upstream in memory: what the hub sends arrives on the returned
/// receiver, and what is sent on the returned sender reaches the hub
/// (dropping it is the upstream going away). The routing core's tests drive
/// the session layer with it, without a child or HTTP.
pub fn memory(bound: usize) -> (Upstream, mpsc::Receiver<Message>, mpsc::Sender<Message>) {
    let (up_tx, up_rx) = mpsc::channel(bound);
    let (down_tx, down_rx) = mpsc::channel(bound);
    let up = channel_upstream(
        Outbox::Memory(up_tx),
        down_rx,
        Arc::new(Mutex::new(None)),
        vec![],
    );
    (up, up_rx, down_tx)
}
