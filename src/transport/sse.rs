//! The legacy HTTP+SSE transport (protocol 2024-11-05), which TBXark/mcp-proxy
//! and most older clients speak: `GET /<name>/sse` opens the stream and receives
//! an `endpoint` event; the client POSTs to `/<name>/message?sessionId=…`, gets
//! 202, and reads every response as `event: message` on the stream. The session
//! lives exactly as long as the stream.
//!
//! A POST hands its messages to the session itself, in order (a per-session
//! gate keeps concurrent POSTs from overtaking each other), and is answered
//! 202 once they are on their way upstream: no queue and no extra task per
//! message. `initialize` alone is handed over from its own task, so a slow
//! upstream start never makes a client's POST time out (a client sends
//! nothing else until it has the answer). Everything for the client, answers
//! included, goes through the stream's one bounded queue
//! (`session::outbound`): a client that stops reading has its stream closed
//! and its session ended.

use super::{sse_response, ClientSession, Ctx, Route, SseStream};
use crate::http::bodies::read_body;
use crate::http::response::{empty, Body, Rejection};
use crate::hub::Snapshot;
use crate::jsonrpc::{Incoming, Message};
use crate::session::new_id as new_session_id;

use crate::session::outbound::{self, Outbound};
use crate::session::{Downstream, SessionInfo};
use http::{Request, Response, StatusCode};
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Clone)]
pub struct Conn {
    server: String,
    session: Arc<ClientSession>,
    /// The stream's queue: closed once the client left or fell behind.
    pub(super) out: Outbound,
    /// Keeps one session's messages in order across concurrent POSTs.
    gate: Arc<tokio::sync::Mutex<()>>,
}

struct Sink(Outbound);

impl Downstream for Sink {
    fn deliver(&self, msg: Message) {
        // On overflow the queue closes itself; the stream ends and so does the session.
        let _ = self.0.push(msg);
    }
    fn closed(&self, _reason: &str) {
        self.0.close();
    }
}

/// Removes the session when the stream's body is dropped (the client left).
struct Guard {
    app: Arc<Ctx>,
    id: String,
    server: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The last handle on the session goes with it, which closes the session.
        let removed = self.app.live.remove(&self.id);
        if removed.is_some() {
            tracing::debug!(mcp_server = %self.server, mcp_session = %self.id, "SSE session ended");
        }
    }
}

fn endpoint_url(snap: &Snapshot, server: &str, id: &str) -> String {
    let path = format!("/{server}/message?sessionId={id}");
    match &snap.settings.base_url {
        Some(b) => format!("{}{path}", b.as_str().trim_end_matches('/')),
        None => path,
    }
}

pub async fn open(
    app: &Arc<Ctx>,
    snap: &Snapshot,
    route: Route,
    req: Request<hyper::body::Incoming>,
    token: Option<crate::session::Token>,
) -> Result<Response<Body>, Rejection> {
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !(accept.contains("text/event-stream")
        || accept.contains("*/*")
        || accept.contains("text/*"))
    {
        return Err(Rejection::AcceptStream(
            "this endpoint serves text/event-stream",
        ));
    }
    let id = new_session_id();
    let (tx, rx) = outbound::channel(route.key(), &id);
    let info = SessionInfo {
        peer: crate::session::Peer::of(&req),
        ..SessionInfo::for_token(
            token.as_ref(),
            &id,
            route.token_source(),
            crate::metrics::Transport::Sse,
        )
    };
    let session = match route.open(app, Arc::new(Sink(tx.clone())), info).await {
        Ok(s) => s,
        Err(e) => return Err(e.into()),
    };
    let name = route.key().to_owned();
    app.live.insert(
        id.clone(),
        super::Session::Sse(Conn {
            server: name.clone(),
            session: Arc::new(session),
            out: tx,
            gate: Arc::default(),
        }),
    );
    tracing::debug!(mcp_server = %name, mcp_session = %id, "SSE session opened");
    let first = VecDeque::from([super::event(
        "endpoint",
        endpoint_url(snap, &name, &id).as_bytes(),
    )]);
    Ok(sse_response(
        SseStream {
            first,
            rx,
            keepalive: snap.settings.sse_keep_alive,
            shutdown: app.shutdown.clone(),
            done: Box::new(|_| false),
            ended: false,
            guard: Guard {
                app: app.clone(),
                id,
                server: name,
            },
        },
        &[],
    ))
}

/// Opening a session failed: the server cannot start, is between restarts,
/// or is at `maxClients`.
pub async fn post(
    app: &Arc<Ctx>,
    snap: &Snapshot,
    route: Route,
    req: Request<hyper::body::Incoming>,
    token: Option<crate::session::Token>,
) -> Result<Response<Body>, Rejection> {
    let id = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v.into_owned())
    });
    let Some(id) = id else {
        return Err(Rejection::NoSessionParam);
    };
    let conn = match app.live.get(&id) {
        Some(super::Session::Sse(c)) => Some(c),
        _ => None,
    };
    let Some(conn) = conn.filter(|c| c.server == route.key()) else {
        return Err(Rejection::UnknownSession(
            "unknown or expired session; open /sse again",
        ));
    };
    // Held until every message is handed on (see `http::bodies`).
    let (body, _charge) = read_body(req, &snap.settings).await?;
    let msgs = match super::parse(body).await? {
        Incoming::Single(m) => vec![m],
        Incoming::Batch(v) => v,
    };
    // Legacy SSE answers on the stream: a POST is in flight until accepted.
    let _admitted = super::admit(app, token.as_ref(), &msgs).await?;
    for m in msgs {
        if !conn.out.is_open() {
            return Err(Rejection::UnknownSession(
                "the session has ended; open /sse again",
            ));
        }
        if m.method() == Some("initialize") {
            let c = conn.clone();
            tokio::spawn(async move {
                let _order = c.gate.lock().await;
                c.session.request(m, &c.out).await;
            });
            continue;
        }
        let _order = conn.gate.lock().await;
        if m.is_request() {
            conn.session.request(m, &conn.out).await;
        } else {
            conn.session.notify(m).await;
        }
    }
    let mut r = empty(StatusCode::ACCEPTED);
    *r.body_mut() = crate::http::response::full("Accepted");
    Ok(r)
}
