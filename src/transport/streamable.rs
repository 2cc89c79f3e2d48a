//! Streamable HTTP (2025-03-26 … 2025-11-25) on `/<name>/mcp`.
//!
//! - POST carries client messages. Only notifications/responses: 202. Requests:
//!   a JSON response when the result is the first thing the server says, else an
//!   SSE stream (progress or a server→client request came first) that ends
//!   with the last response. Batches (2025-03-26) are accepted.
//! - `Mcp-Session-Id` is issued on initialize (128 random bits). Missing: 400.
//!   Unknown, deleted or expired: 404, and the client initializes again.
//! - GET opens the stream for messages tied to no request; DELETE ends the session.
//! - An unsupported `MCP-Protocol-Version` is 400; a missing one means 2025-03-26.
//!
//! Each POST owns the reply stream of the requests it carries: their answers,
//! progress and server requests go there straight from the session layer
//! (`session::inflight`). What belongs to no request goes to the session-wide
//! queue: a log message to the newest open POST stream (clients show it with
//! the call), anything else to the GET stream, queued while none is open. Every
//! queue is bounded (`session::outbound`). Resumption with Last-Event-ID is not
//! offered (events carry no ids), which the spec allows.

use super::{sse_response, ClientSession, Ctx, Route, SseStream};
use crate::http::bodies::read_body;
use crate::http::response::{bytes_response, empty, message_response, Body, Rejection};
use crate::hub::Snapshot;
use crate::jsonrpc::{Id, Incoming, Message, UPSTREAM_ERROR};
use crate::mcp::LEGACY_VERSIONS as PROTOCOL_VERSIONS;
use crate::session::new_id as new_session_id;
use crate::session::outbound::{self, Outbound, Refused};
use crate::session::{Downstream, SessionInfo};
use http::{header, HeaderMap, Request, Response, StatusCode};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

pub struct StreamSession {
    pub(super) id: String,
    pub(super) server: String,
    /// Whose session it is (a named client's key), so a client at its
    /// `maxSessions` can make room by closing its own idle ones.
    pub(super) owner: Option<String>,
    session: OnceLock<ClientSession>,
    /// The session-wide queue; its reader is the open GET stream, or parked
    /// here while none is open.
    ambient: Outbound,
    parked: outbound::Slot,
    /// Open POST streams that take unsolicited messages, newest last.
    posts: Mutex<Vec<Outbound>>,
    closed: std::sync::atomic::AtomicBool,
    last_active: Mutex<Instant>,
}

impl StreamSession {
    fn touch(&self) {
        if let Ok(mut t) = self.last_active.lock() {
            *t = Instant::now();
        }
    }

    pub(super) fn last_active(&self) -> Instant {
        self.last_active
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ends every stream.
    fn shut(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.ambient.close();
        if let Ok(mut p) = self.posts.lock() {
            for o in p.drain(..) {
                o.close();
            }
        }
    }

    /// No open stream: the session may expire.
    pub(super) fn idle(&self) -> bool {
        let parked = self.parked.lock().map(|p| p.is_some()).unwrap_or(true);
        let posts = self
            .posts
            .lock()
            .map(|p| p.iter().all(|o| !o.is_open()))
            .unwrap_or(true);
        parked && posts
    }

    pub(super) fn close(&self) {
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
        let Some(s) = self.0.upgrade() else { return };
        let mut msg = msg;
        if msg.method() == Some("notifications/message") {
            let newest = s.posts.lock().ok().and_then(|mut p| {
                p.retain(Outbound::is_open);
                p.last().cloned()
            });
            if let Some(o) = newest {
                match o.push(msg) {
                    Ok(()) | Err(Refused::Overflow) => return,
                    Err(Refused::Closed(m)) => msg = m,
                }
            }
        }
        let _ = s.ambient.push(msg);
    }
    fn closed(&self, reason: &str) {
        if let Some(s) = self.0.upgrade() {
            tracing::info!(mcp_server = %s.server, mcp_session = %s.id, "session ended: upstream {reason}");
            s.shut();
        }
    }
}

/// Keeps a session's activity clock honest when its GET stream ends.
struct Lease {
    sess: Arc<StreamSession>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.sess.touch();
    }
}

/// Keeps a POST stream registered for unsolicited messages while it is open.
struct PostGuard;

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

fn check_version(headers: &HeaderMap) -> Result<(), Rejection> {
    match headers
        .get(VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => Ok(()),
        Some(v) if PROTOCOL_VERSIONS.contains(&v) => Ok(()),
        Some(v) => Err(Rejection::Version { got: v.into() }),
    }
}

/// Finds the session named by the header. 400 when absent, 404 when unknown.
fn lookup(app: &Ctx, route: &Route, headers: &HeaderMap) -> Result<Arc<StreamSession>, Rejection> {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Rejection::NoSession);
    };
    let found = match app.live.get(id) {
        Some(super::Session::Streamable(s)) => Some(s),
        _ => None,
    };
    match found {
        Some(s) if s.server == route.key() && !s.is_closed() => Ok(s),
        Some(s) if s.server == route.key() => {
            app.live.remove(id);
            s.close();
            Err(Rejection::UnknownSession(
                "session ended (the server restarted or went idle); initialize again",
            ))
        }
        _ => Err(Rejection::UnknownSession(
            "unknown or expired session; initialize again",
        )),
    }
}

pub async fn post(
    app: &Arc<Ctx>,
    snap: &Snapshot,
    route: Route,
    req: Request<hyper::body::Incoming>,
    token: Option<crate::session::Token>,
) -> Result<Response<Body>, Rejection> {
    let mut admitted = None;
    let r = post_admitted(app, snap, route, req, token, &mut admitted).await?;
    // The POST's requests are in flight until their answers are sent.
    Ok(match admitted {
        Some(a) => r.map(|b| crate::http::response::hold(b, a)),
        None => r,
    })
}

async fn post_admitted(
    app: &Arc<Ctx>,
    snap: &Snapshot,
    route: Route,
    req: Request<hyper::body::Incoming>,
    token: Option<crate::session::Token>,
    admitted: &mut Option<crate::limits::Admitted>,
) -> Result<Response<Body>, Rejection> {
    let peer = crate::session::Peer::of(&req);
    let headers = req.headers();
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(Rejection::ContentType);
    }
    let acc = accepts(headers);
    if !acc.json && !acc.sse {
        return Err(Rejection::Accept);
    }
    // A 2026-07-28 request carries its version in a header the legacy check
    // refuses: decide once the body says which era it is.
    let version = check_version(headers);
    let modern_headers = super::modern::Headers::from(headers);
    let sess = match headers.get(SESSION_HEADER) {
        Some(_) => Some(lookup(app, &route, headers)?),
        None => None,
    };
    // Held until the body's messages are handed on (see `http::bodies`).
    let (body, charge) = read_body(req, &snap.settings).await?;
    // Modern: the request names its version in `_meta` and needs no
    // session, on a server and on a group alike. Its params are read where
    // it is parsed (a large one's off the async workers).
    let sessionless = sess.is_none();
    let (parsed, read) = super::parse_and(body, move |p| match p {
        Incoming::Single(m) if sessionless => Some(super::modern::Read::of(modern_headers, m)),
        _ => None,
    })
    .await?;
    let all = match &parsed {
        Incoming::Single(m) => std::slice::from_ref(m),
        Incoming::Batch(v) => v.as_slice(),
    };
    *admitted = super::admit(app, token.as_ref(), all).await?;
    let (msgs, batch) = match (parsed, read) {
        // Era: a modern request is answered on its own, with no session;
        // anything else is a 2025 message of a session (or its initialize).
        (Incoming::Single(m), Some(read)) if read.is_modern() => {
            return super::modern::post(app, snap, route, m, read, token, charge).await;
        }
        (Incoming::Single(m), _) => (vec![m], false),
        (Incoming::Batch(v), _) => (v, true),
    };
    version?;
    let is_init = msgs
        .iter()
        .any(|m| m.is_request() && m.method() == Some("initialize"));
    let (sess, new) = match sess {
        Some(s) => (s, false),
        None if is_init => (create(app, &route, token, peer).await?, true),
        None => return Err(Rejection::NoSession),
    };
    sess.touch();
    let Some(session) = sess.session.get() else {
        return Err(Rejection::UnknownSession("session is not open"));
    };
    let mut remaining: HashSet<Id> = msgs
        .iter()
        .filter(|m| m.is_request())
        .filter_map(|m| m.id().cloned())
        .collect();
    if remaining.is_empty() {
        for m in msgs {
            session.notify(m).await;
        }
        return Ok(empty(StatusCode::ACCEPTED));
    }

    // This POST's own stream: its requests' answers, progress and server requests.
    let (reply, mut rx) = outbound::channel(route.key(), &sess.id);
    if acc.sse {
        if let Ok(mut p) = sess.posts.lock() {
            p.retain(Outbound::is_open);
            p.push(reply.clone());
        }
    }
    for m in msgs {
        if m.is_request() {
            session.request(m, &reply).await;
        } else {
            session.notify(m).await;
        }
    }
    // Handed on: the answers are not the body's to wait for.
    drop(charge);

    let mut got: Vec<Message> = Vec::new();
    let mut streaming = !acc.json;
    while !remaining.is_empty() && !streaming {
        match rx.recv().await {
            Some(m) if m.is_response() => {
                if let Some(id) = m.id() {
                    remaining.remove(id);
                }
                got.push(m);
            }
            // Progress or a server request came first: stream, if the client takes it.
            Some(m) if acc.sse => {
                got.push(m);
                streaming = true;
            }
            // A JSON-only client cannot take it on this POST: the GET stream can.
            Some(m) => {
                let _ = sess.ambient.push(m);
            }
            None => {
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
    let extra: Vec<(&'static str, String)> = if new {
        vec![(SESSION_HEADER, sess.id.clone())]
    } else {
        vec![]
    };

    if new && !streaming {
        if let Some(err) = got.iter().find(|m| m.is_response() && m.is_error()) {
            // No session for a failed initialize; the client may retry.
            app.live.remove(&sess.id);
            sess.close();
            let status = if err.error_code() == Some(UPSTREAM_ERROR) {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            return Ok(message_response(status, err));
        }
        tracing::info!(mcp_server = %route.key(), mcp_session = %sess.id, "session opened");
    }

    if !streaming {
        reply.close();
        let mut out = Vec::with_capacity(got.iter().map(Message::weight).sum::<usize>() + 16);
        if batch {
            out.push(b'[');
            for (i, m) in got.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                m.write_to(&mut out);
            }
            out.push(b']');
        } else if let Some(m) = got.first() {
            m.write_to(&mut out);
        }
        let mut r = bytes_response(StatusCode::OK, out);
        for (k, v) in extra {
            if let Ok(v) = v.parse() {
                r.headers_mut().insert(k, v);
            }
        }
        return Ok(r);
    }
    let ended = remaining.is_empty();
    let first = got.iter().map(super::message_event).collect();
    let done = Box::new(move |m: &Message| {
        if m.is_response() {
            if let Some(id) = m.id() {
                remaining.remove(id);
            }
        }
        remaining.is_empty()
    });
    Ok(sse_response(
        SseStream {
            first,
            rx,
            keepalive: snap.settings.sse_keep_alive,
            shutdown: app.shutdown.clone(),
            done,
            ended,
            guard: PostGuard,
        },
        &extra,
    ))
}

async fn create(
    app: &Arc<Ctx>,
    route: &Route,
    token: Option<crate::session::Token>,
    peer: Option<std::net::IpAddr>,
) -> Result<Arc<StreamSession>, Rejection> {
    let id = new_session_id();
    let (ambient, parked) = outbound::channel(route.key(), &id);
    let sess = Arc::new(StreamSession {
        id,
        server: route.key().to_owned(),
        owner: token
            .as_ref()
            .filter(|t| t.client.is_some())
            .map(crate::session::Token::key),
        session: OnceLock::new(),
        ambient,
        parked: Arc::new(Mutex::new(Some(parked))),
        posts: Mutex::new(Vec::new()),
        closed: std::sync::atomic::AtomicBool::new(false),
        last_active: Mutex::new(Instant::now()),
    });
    let info = SessionInfo {
        peer,
        ..SessionInfo::for_token(
            token.as_ref(),
            &sess.id,
            route.token_source(),
            Default::default(),
        )
    };
    let sink = || Arc::new(Sink(Arc::downgrade(&sess)));
    let session = match route.open(app, sink(), info.clone()).await {
        // A named client at its cap makes room by closing its own least
        // recently used idle session, never another client's.
        Err(crate::hub::OpenError::ClientFull(_))
            if sess.owner.as_deref().is_some_and(|o| evict_idle(app, o)) =>
        {
            route.open(app, sink(), info).await?
        }
        r => r?,
    };
    let _ = sess.session.set(session);
    app.live
        .insert(sess.id.clone(), super::Session::Streamable(sess.clone()));
    Ok(sess)
}

/// Closes `owner`'s least recently used session with no open stream, if it
/// has one; its slot is free when this returns.
fn evict_idle(app: &Ctx, owner: &str) -> bool {
    let Some(super::Session::Streamable(v)) = app.live.take_idle_of(owner) else {
        return false;
    };
    crate::ratelimit::warn(
        "evict-client-session",
        format_args!(
            "{owner} is at its maxSessions: closed its least recently used idle session {} to open a new one",
            v.id
        ),
    );
    v.close();
    // The last holder: dropping it frees the session's slot.
    drop(v);
    true
}

pub async fn get(
    app: &Arc<Ctx>,
    snap: &Snapshot,
    route: Route,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Rejection> {
    let headers = req.headers();
    if !accepts(headers).sse {
        return Err(Rejection::AcceptStream(
            "GET needs Accept: text/event-stream",
        ));
    }
    check_version(headers)?;
    // No session: 2026-07-28 has no GET stream (subscriptions/listen replaced it).
    if !headers.contains_key(SESSION_HEADER) {
        return Err(Rejection::Method("POST"));
    }
    let sess = lookup(app, &route, headers)?;
    sess.touch();
    let Some(rx) = sess.parked.lock().ok().and_then(|mut p| p.take()) else {
        return Err(Rejection::StreamOpen);
    };
    Ok(sse_response(
        SseStream {
            first: VecDeque::new(),
            rx: rx.parking(sess.parked.clone()),
            keepalive: snap.settings.sse_keep_alive,
            shutdown: app.shutdown.clone(),
            done: Box::new(|_| false),
            ended: false,
            guard: Lease { sess: sess.clone() },
        },
        &[(SESSION_HEADER, sess.id.clone())],
    ))
}

pub async fn delete(
    app: &Arc<Ctx>,
    route: Route,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Rejection> {
    if !req.headers().contains_key(SESSION_HEADER) {
        return Err(Rejection::Method("POST"));
    }
    let sess = lookup(app, &route, req.headers())?;
    app.live.remove(&sess.id);
    sess.close();
    tracing::info!(mcp_server = %route.key(), mcp_session = %sess.id, "session deleted by client");
    Ok(empty(StatusCode::OK))
}
