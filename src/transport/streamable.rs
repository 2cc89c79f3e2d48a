//! Streamable HTTP (2025-03-26 … 2025-11-25) on `/<name>/mcp`.
//!
//! - POST carries client messages. Only notifications/responses: 202. Requests:
//!   a JSON response when the result is the first thing the server says, else an
//!   SSE stream (progress, logging or a server→client request came first) that
//!   ends with the last response. Batches (2025-03-26) are accepted.
//! - `Mcp-Session-Id` is issued on initialize (128 random bits). Missing: 400.
//!   Unknown, deleted or expired: 404, and the client initializes again.
//! - GET opens the stream for messages tied to no request; DELETE ends the session.
//! - An unsupported `MCP-Protocol-Version` is 400; a missing one means 2025-03-26.
//!
//! Routing of what the session delivers: a response goes to the POST that asked;
//! a progress notification to the POST whose request carries the token; a
//! server→client request or a log message to the newest POST stream still open;
//! anything else to the GET stream, and while none is open into a bounded backlog
//! the next GET receives. Resumption with Last-Event-ID is not offered (events
//! carry no ids), which the spec allows.

use super::{new_session_id, sse_response, Out, SseStream};
use crate::http::{empty, http_error, json_response, read_body, App, Body};
use crate::hub::Server;
use crate::jsonrpc::{parse_body, Id, Incoming, Kind, Message, INVALID_REQUEST, UPSTREAM_ERROR};
use crate::session::{Downstream, Session, SessionInfo, PROTOCOL_VERSIONS};
use http::{header, HeaderMap, Request, Response, StatusCode};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Messages kept for a GET stream that is not open; the oldest go first.
const BACKLOG: usize = 256;

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<StreamSession>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<StreamSession>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct StreamEntry {
    tx: mpsc::UnboundedSender<Out>,
    /// The client accepts only JSON here: never route unsolicited messages to it.
    json_only: bool,
}

#[derive(Default)]
struct Router {
    waiting: HashMap<Id, u64>,
    streams: HashMap<u64, StreamEntry>,
    progress: HashMap<String, u64>,
    get: Option<(u64, mpsc::UnboundedSender<Out>)>,
    next: u64,
    backlog: VecDeque<Message>,
    closed: bool,
}

struct StreamSession {
    id: String,
    server: String,
    session: OnceLock<Session>,
    router: Mutex<Router>,
    last_active: Mutex<Instant>,
}

impl StreamSession {
    fn router(&self) -> MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }

    fn deliver(&self, mut msg: Message) {
        let mut r = self.router();
        let target = match msg.kind() {
            Ok(Kind::Response { id }) => r.waiting.remove(&id),
            Ok(Kind::Notification {
                method: "notifications/progress",
            }) => {
                let token = msg
                    .params()
                    .and_then(|p| p.get("progressToken"))
                    .map(Value::to_string);
                token.and_then(|t| r.progress.get(&t).copied())
            }
            Ok(Kind::Request { .. })
            | Ok(Kind::Notification {
                method: "notifications/message",
            }) => r
                .streams
                .iter()
                .filter(|(_, s)| !s.json_only)
                .map(|(n, _)| *n)
                .max(),
            _ => None,
        };
        if let Some(stream) = target.and_then(|n| r.streams.get(&n)) {
            match stream.tx.send(Out::Msg(msg)) {
                Ok(()) => return,
                Err(mpsc::error::SendError(Out::Msg(m))) => msg = m,
                Err(_) => return,
            }
        }
        if let Some((_, get)) = &r.get {
            match get.send(Out::Msg(msg)) {
                Ok(()) => return,
                Err(mpsc::error::SendError(Out::Msg(m))) => {
                    msg = m;
                    r.get = None;
                }
                Err(_) => return,
            }
        }
        if r.backlog.len() >= BACKLOG {
            r.backlog.pop_front();
            tracing::warn!(mcp_server = %self.server, mcp_session = %self.id, "no GET stream open; dropping the oldest queued message");
        }
        r.backlog.push_back(msg);
    }

    /// Ends every stream; waiting POSTs answer their requests with errors.
    fn shut(&self) {
        let mut r = self.router();
        r.closed = true;
        r.streams.clear();
        r.get = None;
        r.waiting.clear();
        r.progress.clear();
    }

    fn idle(&self) -> bool {
        let r = self.router();
        r.streams.is_empty() && r.get.as_ref().is_none_or(|(_, g)| g.is_closed())
    }

    fn close(&self) {
        self.shut();
        if let Some(s) = self.session.get() {
            s.close();
        }
    }
}

/// The session's sink, weak so the session layer does not keep a closed session alive.
struct Sink(Weak<StreamSession>);

impl Downstream for Sink {
    fn deliver(&self, msg: Message) {
        if let Some(s) = self.0.upgrade() {
            s.deliver(msg);
        }
    }
    fn closed(&self, reason: &str) {
        if let Some(s) = self.0.upgrade() {
            tracing::info!(mcp_server = %s.server, mcp_session = %s.id, "session ended: upstream {reason}");
            s.shut();
        }
    }
}

/// Unregisters one POST stream when its response (or the client) is gone.
struct StreamGuard {
    sess: Arc<StreamSession>,
    n: u64,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut r = self.sess.router();
        r.streams.remove(&self.n);
        let n = self.n;
        r.waiting.retain(|_, s| *s != n);
        r.progress.retain(|_, s| *s != n);
    }
}

struct GetGuard {
    sess: Arc<StreamSession>,
    n: u64,
}

impl Drop for GetGuard {
    fn drop(&mut self) {
        let mut r = self.sess.router();
        if r.get.as_ref().is_some_and(|(n, _)| *n == self.n) {
            r.get = None;
        }
        drop(r);
        self.sess.touch();
    }
}

struct Accepts {
    json: bool,
    sse: bool,
}

fn accepts(headers: &HeaderMap) -> Accepts {
    let a = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let any = a.contains("*/*");
    Accepts {
        json: any || a.contains("application/json") || a.contains("application/*"),
        sse: any || a.contains("text/event-stream") || a.contains("text/*"),
    }
}

fn rpc(status: StatusCode, code: i64, msg: impl Into<String>) -> Response<Body> {
    crate::http::rpc_error(status, code, msg)
}

fn check_version(headers: &HeaderMap) -> Result<(), Response<Body>> {
    match headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => Ok(()),
        Some(v) if PROTOCOL_VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(rpc(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            format!(
                "unsupported MCP-Protocol-Version {v:?}; supported: {}",
                PROTOCOL_VERSIONS.join(", ")
            ),
        )),
    }
}

/// Finds the session named by the header. 400 when absent, 404 when unknown.
fn lookup(
    app: &App,
    server: &Server,
    headers: &HeaderMap,
) -> Result<Arc<StreamSession>, Response<Body>> {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(rpc(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "missing Mcp-Session-Id header; send initialize first",
        ));
    };
    let found = app.streamable.lock().get(id).cloned();
    match found {
        Some(s) if s.server == server.cfg.name && !s.router().closed => Ok(s),
        Some(s) if s.server == server.cfg.name => {
            app.streamable.lock().remove(id);
            s.close();
            Err(rpc(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "session ended (the server restarted); initialize again",
            ))
        }
        _ => Err(rpc(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "unknown or expired session; initialize again",
        )),
    }
}

pub async fn post(
    app: &Arc<App>,
    server: Arc<Server>,
    req: Request<hyper::body::Incoming>,
    token: Option<String>,
) -> Response<Body> {
    let headers = req.headers().clone();
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return rpc(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Content-Type must be application/json",
        );
    }
    let acc = accepts(&headers);
    if !acc.json && !acc.sse {
        return rpc(
            StatusCode::NOT_ACCEPTABLE,
            INVALID_REQUEST,
            "Accept must include application/json and text/event-stream",
        );
    }
    if let Err(r) = check_version(&headers) {
        return r;
    }
    let body = match read_body(req, app.hub.current().settings.max_body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (msgs, batch) = match parse_body(&body) {
        Ok(Incoming::Single(m)) => (vec![m], false),
        Ok(Incoming::Batch(v)) => (v, true),
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &Value::Object(e.to_message().0)),
    };
    let is_init = msgs
        .iter()
        .any(|m| m.is_request() && m.method() == Some("initialize"));
    let (sess, new) = match headers.get(SESSION_HEADER) {
        Some(_) => match lookup(app, &server, &headers) {
            Ok(s) => (s, false),
            Err(r) => return r,
        },
        None if is_init => match create(app, &server, token).await {
            Ok(s) => (s, true),
            Err(r) => return r,
        },
        None => {
            return rpc(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "missing Mcp-Session-Id header; send initialize first",
            )
        }
    };
    sess.touch();
    let Some(session) = sess.session.get() else {
        return rpc(
            StatusCode::INTERNAL_SERVER_ERROR,
            UPSTREAM_ERROR,
            "session is not open",
        );
    };
    let requests: Vec<Id> = msgs
        .iter()
        .filter(|m| m.is_request())
        .filter_map(Message::id)
        .collect();
    if requests.is_empty() {
        for m in msgs {
            session.send(m).await;
        }
        return empty(StatusCode::ACCEPTED);
    }

    let (tx, mut rx) = mpsc::unbounded_channel();
    let guard = {
        let mut r = sess.router();
        let n = r.next;
        r.next += 1;
        r.streams.insert(
            n,
            StreamEntry {
                tx,
                json_only: !acc.sse,
            },
        );
        for id in &requests {
            r.waiting.insert(id.clone(), n);
        }
        if acc.sse {
            for m in msgs.iter().filter(|m| m.is_request()) {
                if let Some(t) = m.progress_token() {
                    r.progress.insert(t.to_string(), n);
                }
            }
        }
        StreamGuard {
            sess: sess.clone(),
            n,
        }
    };
    for m in msgs {
        session.send(m).await;
    }

    let mut remaining: HashSet<Id> = requests.into_iter().collect();
    let mut got: Vec<Message> = Vec::new();
    let mut streaming = false;
    while !remaining.is_empty() {
        match rx.recv().await {
            Some(Out::Msg(m)) => {
                let resp = m.is_response();
                if resp {
                    if let Some(id) = m.id() {
                        remaining.remove(&id);
                    }
                }
                got.push(m);
                if !resp && acc.sse {
                    streaming = true;
                    break;
                }
            }
            Some(Out::End) | None => {
                for id in remaining.drain() {
                    got.push(Message::error(
                        Some(id),
                        UPSTREAM_ERROR,
                        "the session ended before the server answered",
                    ));
                }
            }
        }
    }
    if !acc.json {
        streaming = true;
    }
    let extra: Vec<(&'static str, String)> = if new {
        vec![(SESSION_HEADER, sess.id.clone())]
    } else {
        vec![]
    };

    if new && !streaming {
        let failed = got
            .iter()
            .find(|m| m.method().is_none() && m.0.contains_key("error"));
        if let Some(err) = failed {
            // No session for a failed initialize; the client may retry.
            app.streamable.lock().remove(&sess.id);
            sess.close();
            let code = err.0["error"]["code"].as_i64();
            let status = if code == Some(UPSTREAM_ERROR) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            return json_response(status, &Value::Object(err.0.clone()));
        }
        tracing::info!(mcp_server = %server.cfg.name, mcp_session = %sess.id, "session opened");
    }

    if !streaming {
        drop(guard);
        let body = if batch {
            Value::Array(got.into_iter().map(|m| Value::Object(m.0)).collect())
        } else {
            got.into_iter()
                .next()
                .map(|m| Value::Object(m.0))
                .unwrap_or(Value::Null)
        };
        let mut r = json_response(StatusCode::OK, &body);
        for (k, v) in extra {
            if let Ok(v) = v.parse() {
                r.headers_mut().insert(k, v);
            }
        }
        return r;
    }
    let ended = remaining.is_empty();
    let first = got.iter().map(super::message_event).collect();
    let done = Box::new(move |m: &Message| {
        if m.is_response() {
            if let Some(id) = m.id() {
                remaining.remove(&id);
            }
        }
        remaining.is_empty()
    });
    sse_response(
        SseStream {
            first,
            rx,
            keepalive: app.hub.current().settings.sse_keep_alive,
            shutdown: app.shutdown.clone(),
            done,
            ended,
            guard,
        },
        &extra,
    )
}

async fn create(
    app: &Arc<App>,
    server: &Arc<Server>,
    token: Option<String>,
) -> Result<Arc<StreamSession>, Response<Body>> {
    let sess = Arc::new(StreamSession {
        id: new_session_id(),
        server: server.cfg.name.clone(),
        session: OnceLock::new(),
        router: Mutex::new(Router::default()),
        last_active: Mutex::new(Instant::now()),
    });
    let session = app
        .hub
        .open_session(
            server,
            Arc::new(Sink(Arc::downgrade(&sess))),
            SessionInfo {
                id: sess.id.clone(),
                token,
            },
        )
        .await
        .map_err(super::sse::open_error)?;
    let _ = sess.session.set(session);
    app.streamable.lock().insert(sess.id.clone(), sess.clone());
    Ok(sess)
}

pub async fn get(
    app: &Arc<App>,
    server: Arc<Server>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let headers = req.headers();
    if !accepts(headers).sse {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            "GET needs Accept: text/event-stream",
        );
    }
    if let Err(r) = check_version(headers) {
        return r;
    }
    let sess = match lookup(app, &server, headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    sess.touch();
    let (tx, rx) = mpsc::unbounded_channel();
    let n = {
        let mut r = sess.router();
        let n = r.next;
        r.next += 1;
        for m in r.backlog.drain(..).collect::<Vec<_>>() {
            let _ = tx.send(Out::Msg(m));
        }
        r.get = Some((n, tx));
        n
    };
    sse_response(
        SseStream {
            first: VecDeque::new(),
            rx,
            keepalive: app.hub.current().settings.sse_keep_alive,
            shutdown: app.shutdown.clone(),
            done: Box::new(|_| false),
            ended: false,
            guard: GetGuard {
                sess: sess.clone(),
                n,
            },
        },
        &[(SESSION_HEADER, sess.id.clone())],
    )
}

pub async fn delete(
    app: &Arc<App>,
    server: Arc<Server>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let sess = match lookup(app, &server, req.headers()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    app.streamable.lock().remove(&sess.id);
    sess.close();
    tracing::info!(mcp_server = %server.cfg.name, mcp_session = %sess.id, "session deleted by client");
    empty(StatusCode::OK)
}

/// Expires idle sessions, and closes every session when the hub shuts down.
pub fn spawn_expiry(app: Arc<App>) {
    let timeout = app.hub.current().settings.session_idle_timeout;
    let every = (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut shutdown = app.shutdown.clone();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    let all: Vec<_> = app.streamable.lock().drain().map(|(_, s)| s).collect();
                    for s in all {
                        s.close();
                    }
                    return;
                }
            }
            let expired: Vec<Arc<StreamSession>> = {
                let mut map = app.streamable.lock();
                let ids: Vec<String> = map
                    .iter()
                    .filter(|(_, s)| {
                        let last = s
                            .last_active
                            .lock()
                            .map(|t| *t)
                            .unwrap_or_else(|_| Instant::now());
                        (last.elapsed() >= timeout && s.idle()) || s.router().closed
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                ids.iter().filter_map(|k| map.remove(k)).collect()
            };
            for s in expired {
                tracing::info!(mcp_server = %s.server, mcp_session = %s.id, "session expired");
                s.close();
            }
        }
    });
}
