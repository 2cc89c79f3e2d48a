//! Downstream transports: how clients reach the hub. `sse` is the 2024-11-05
//! HTTP+SSE transport, `streamable` the 2025-03-26+ streamable HTTP transport.
//! Both sit on the same session layer, so every server speaks both at once,
//! and so does every group ([`Route`]: a server or a group of them).
//!
//! Here: Server-Sent Events framing and the streaming response body they share.
//! Framing is small enough to own: a JSON message serializes to one line (JSON
//! escapes newlines in strings), so each event is `event:` + one `data:` line.

pub mod hold;
pub mod live;
pub mod modern;
pub mod sse;
pub mod streamable;

/// What a transport needs, and nothing more: an endpoint that opens sessions,
/// the registry of live client state ([`live`]), and the shutdown signal.
/// The HTTP layer owns one and hands it to every request it routes here, with
/// the one snapshot of the config that request is served under.
pub struct Ctx {
    pub endpoint: std::sync::Arc<dyn Endpoint>,
    /// Sessions, held calls and facade sessions, with their one expiry task.
    pub live: live::Live<Session>,
    /// Named clients' rates and requests in flight.
    pub limits: crate::limits::Limits,
    pub shutdown: watch::Receiver<bool>,
}

/// A client's session as the registry of live state ([`live`]) holds it,
/// by the transport that made it.
#[derive(Clone)]
pub enum Session {
    Sse(sse::Conn),
    Streamable(std::sync::Arc<streamable::StreamSession>),
}

impl live::Entry for Session {
    fn kind(&self) -> live::Kind {
        match self {
            Session::Sse(_) => live::Kind::Sse,
            Session::Streamable(_) => live::Kind::Streamable,
        }
    }

    fn expired(&self, now: std::time::Instant, idle_timeout: Duration) -> bool {
        match self {
            // The stream's guard removes it when the client leaves; a queue
            // closed for a client that fell behind (or an upstream that
            // ended) goes here even while the stream body lingers.
            Session::Sse(c) => !c.out.is_open(),
            Session::Streamable(s) => {
                s.is_closed()
                    || (s.idle() && now.saturating_duration_since(s.last_active()) >= idle_timeout)
            }
        }
    }

    /// An SSE session is never idle: its stream is its life.
    fn idle_of(&self, owner: &str) -> Option<std::time::Instant> {
        match self {
            Session::Streamable(s)
                if s.owner.as_deref() == Some(owner) && s.idle() && !s.is_closed() =>
            {
                Some(s.last_active())
            }
            _ => None,
        }
    }

    fn close(&self) {
        match self {
            // Closing the queue ends the stream; the registry's handle on
            // the session goes with the entry (the stream's guard holds none).
            Session::Sse(c) => c.out.close(),
            Session::Streamable(s) => s.close(),
        }
    }

    fn expire(&self) {
        if let Session::Streamable(s) = self {
            if !s.is_closed() {
                tracing::info!(mcp_server = %s.server, mcp_session = %s.id, "session expired");
            }
        }
        self.close()
    }
}

/// Lets the requests among `msgs` through the named client's limits
/// (notifications and responses are free). While the result lives, they
/// count as in flight.
pub async fn admit(
    ctx: &Ctx,
    token: Option<&crate::session::Token>,
    msgs: &[Message],
) -> Result<Option<crate::limits::Admitted>, crate::http::response::Rejection> {
    let Some(client) = token.and_then(|t| t.client.as_ref()) else {
        return Ok(None);
    };
    let n = msgs.iter().filter(|m| m.is_request()).count() as u32;
    Ok(Some(ctx.limits.admit(client, n).await?))
}

/// What opens a client's session on a route. The daemon's is the hub (a
/// server's upstream, or a group session over its members); a test's may
/// open sessions on in-memory upstreams.
pub trait Endpoint: Send + Sync {
    fn open<'a>(
        &'a self,
        route: &'a Route,
        sink: std::sync::Arc<dyn crate::session::Downstream>,
        info: crate::session::SessionInfo,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<ClientSession, crate::hub::OpenError>>
                + Send
                + 'a,
        >,
    >;

    /// The shared upstream a stateless request on `server` runs on, as an
    /// exchange with no session.
    fn shared(
        &self,
        server: &std::sync::Arc<crate::hub::Server>,
    ) -> Result<std::sync::Arc<crate::session::Upstream>, crate::hub::OpenError>;

    /// The config in force now, for work no request carries (expiry).
    fn current(&self) -> std::sync::Arc<crate::hub::Snapshot>;
}

/// What a downstream session is opened on: one server, or a group of them.
/// The transports serve both alike; only opening differs.
#[derive(Clone)]
pub enum Route {
    Server(std::sync::Arc<crate::hub::Server>),
    Group(std::sync::Arc<crate::hub::GroupEntry>),
}

impl Route {
    /// The key its sessions are registered under: the server's name, or
    /// `g/<group>` (no server name has a `/`). Also its label in logs.
    pub fn key(&self) -> &str {
        match self {
            Route::Server(s) => &s.cfg.name,
            Route::Group(g) => &g.route,
        }
    }

    /// The config path of the tokens this route takes, for logs.
    pub fn token_source(&self) -> &str {
        match self {
            Route::Server(s) => &s.cfg.token_source,
            Route::Group(g) => &g.cfg.token_source,
        }
    }

    /// Opens a client session. `sink` takes what belongs to no request.
    pub async fn open(
        &self,
        ctx: &Ctx,
        sink: std::sync::Arc<dyn crate::session::Downstream>,
        info: crate::session::SessionInfo,
    ) -> Result<ClientSession, crate::hub::OpenError> {
        ctx.endpoint.open(self, sink, info).await
    }
}

/// A client's session as the transports hold it: on one server (the hot
/// path, a plain match away), or on a group.
// The server variant is the common one and is held in place: boxing it would
// cost every server session an allocation and an indirection to save bytes
// only on group sessions.
#[allow(clippy::large_enum_variant)]
pub enum ClientSession {
    Server(crate::session::Session),
    Group(crate::views::group::GroupSession),
}

impl ClientSession {
    /// One request; its answer, progress and server requests go to `reply`.
    pub async fn request(&self, msg: Message, reply: &crate::session::outbound::Outbound) {
        match self {
            ClientSession::Server(s) => s.request(msg, reply).await,
            ClientSession::Group(g) => g.request(msg, reply).await,
        }
    }

    /// A notification or a response from the client.
    pub async fn notify(&self, msg: Message) {
        match self {
            ClientSession::Server(s) => s.notify(msg).await,
            ClientSession::Group(g) => g.notify(msg).await,
        }
    }

    /// The client left.
    pub fn close(&self) {
        match self {
            ClientSession::Server(s) => s.close(),
            ClientSession::Group(g) => g.close(),
        }
    }
}

/// Parses a request body. A large one (over [`offload::INLINE`]) is parsed
/// off the async workers, in its turn: a few megabytes of JSON (within
/// `maxBodySize`) take long enough to hold up every other request on a
/// 2-core machine, `/healthz` included. What the session reads of each
/// message on its way up (its tool name, its progress token) is found in the
/// same pass, so a large message costs the async workers no scan of it there.
pub async fn parse(body: Bytes) -> Result<crate::jsonrpc::Incoming, crate::jsonrpc::BodyError> {
    Ok(parse_and(body, |_| ()).await?.0)
}

/// [`parse`], and `also` on what was parsed, in the same place: a large
/// body's is off the async workers too.
pub async fn parse_and<R: Send + 'static>(
    body: Bytes,
    also: impl FnOnce(&mut crate::jsonrpc::Incoming) -> R + Send + 'static,
) -> Result<(crate::jsonrpc::Incoming, R), crate::jsonrpc::BodyError> {
    if body.len() <= offload::INLINE {
        let mut parsed = crate::jsonrpc::parse_body(&body)?;
        let r = also(&mut parsed);
        return Ok((parsed, r));
    }
    offload::run(move || {
        let mut parsed = crate::jsonrpc::parse_body(&body)?;
        // `also` first: what it finds (a 2026-07-28 request's read) is not
        // looked for again. What the session reads of each message is found
        // here too.
        let r = also(&mut parsed);
        match &mut parsed {
            crate::jsonrpc::Incoming::Single(m) => m.warm(),
            crate::jsonrpc::Incoming::Batch(v) => v.iter_mut().for_each(Message::warm),
        }
        Ok((parsed, r))
    })
    .await
}

/// The hub's own request on a client's session (the `initialize` it makes
/// for a 2026-07-28 client): on a server not counted as a client's call.
impl crate::session::ask::Asker for ClientSession {
    async fn send(&self, msg: Message, reply: &crate::session::outbound::Outbound) {
        match self {
            ClientSession::Server(s) => s.request_own(msg, reply).await,
            ClientSession::Group(g) => g.request(msg, reply).await,
        }
    }
    async fn tell(&self, msg: Message) {
        self.notify(msg).await
    }
}

use crate::http::response::Body;
use crate::jsonrpc::Message;
use crate::offload;
use crate::session::outbound::Inbound;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::watch;

pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

pub fn event(name: &str, data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(data.len() + name.len() + 16);
    b.extend_from_slice(b"event: ");
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(b"\ndata: ");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    b.into()
}

/// One `message` event, serialized straight into one buffer.
pub fn message_event(m: &Message) -> Bytes {
    let mut b = Vec::with_capacity(m.weight() + 48);
    b.extend_from_slice(b"event: message\ndata: ");
    m.write_to(&mut b);
    b.extend_from_slice(b"\n\n");
    b.into()
}

/// The state behind an SSE response body. `guard` is dropped with the body,
/// which is how a transport learns that the client went away.
pub struct SseStream<G: Send + 'static> {
    pub first: VecDeque<Bytes>,
    pub rx: Inbound,
    pub keepalive: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Ends the stream once this returns true for a delivered message (a POST
    /// stream ends after its last response).
    pub done: Box<dyn FnMut(&Message) -> bool + Send>,
    /// Nothing more will come: end after `first`.
    pub ended: bool,
    #[allow(dead_code)] // held only for its Drop
    pub guard: G,
}

pub fn sse_response<G: Send + 'static>(
    s: SseStream<G>,
    extra: &[(&'static str, String)],
) -> Response<Body> {
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + s.keepalive, s.keepalive);
    let ended = s.ended;
    let state = (s, tick, ended);
    let stream = futures_util::stream::unfold(state, |(mut s, mut tick, finished)| async move {
        if let Some(b) = s.first.pop_front() {
            return Some((b, (s, tick, finished)));
        }
        if finished || *s.shutdown.borrow() {
            return None;
        }
        tokio::select! {
            m = s.rx.recv() => match m {
                Some(m) => {
                    let end = (s.done)(&m);
                    Some((message_event(&m), (s, tick, end)))
                }
                None => None,
            },
            _ = tick.tick() => Some((Bytes::from_static(KEEPALIVE), (s, tick, finished))),
            _ = s.shutdown.changed() => None,
        }
    });
    let body = StreamBody::new(stream.map(|b| Ok::<_, Infallible>(Frame::data(b)))).boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    // Tell nginx and friends not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    r
}

#[cfg(test)]
mod tests;
