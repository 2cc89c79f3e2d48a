//! The legacy HTTP+SSE transport (protocol 2024-11-05), which TBXark/mcp-proxy
//! and most older clients speak: `GET /<name>/sse` opens the stream and receives
//! an `endpoint` event; the client POSTs to `/<name>/message?sessionId=…`, gets
//! 202, and reads every response as `event: message` on the stream. The session
//! lives exactly as long as the stream.
//!
//! POSTs are answered 202 as soon as the message is queued; a per-session task
//! hands messages to the session in order, so a slow upstream start never makes
//! a client's POST time out. That queue holds [`UPLINK`] messages; past it a
//! POST gets 503. Everything for the client, answers included, goes through
//! the stream's one bounded queue (`session::outbound`): a client that stops
//! reading has its stream closed and its session ended.

use super::{new_session_id, sse_response, SseStream};
use super::{read_body, Ctx};
use crate::http::response::{empty, Body, Rejection};
use crate::hub::{OpenError, Server};
use crate::jsonrpc::{parse_body, Incoming, Message};
use crate::session::outbound::{self, Outbound, Refused};
use crate::session::{Downstream, Session, SessionInfo};
use http::{Request, Response, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Client messages queued toward the session, per legacy SSE session.
const UPLINK: usize = 64;

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, Conn>>,
}

#[derive(Clone)]
struct Conn {
    server: String,
    uplink: mpsc::Sender<Message>,
}

struct Sink(Outbound);

impl Downstream for Sink {
    fn deliver(&self, msg: Message) {
        // On overflow the queue closes itself; the stream ends and so does the session.
        if let Err(Refused::Closed(_)) = self.0.push(msg) {}
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
        // Dropping the uplink sender ends the uplink task, which closes the session.
        let removed = self
            .app
            .sse
            .sessions
            .lock()
            .map(|mut m| m.remove(&self.id))
            .ok()
            .flatten();
        if removed.is_some() {
            tracing::debug!(mcp_server = %self.server, mcp_session = %self.id, "SSE session ended");
        }
    }
}

fn endpoint_url(app: &Ctx, server: &str, id: &str) -> String {
    let path = format!("/{server}/message?sessionId={id}");
    match &app.hub.current().settings.base_url {
        Some(b) => format!("{}{path}", b.as_str().trim_end_matches('/')),
        None => path,
    }
}

pub async fn open(
    app: &Arc<Ctx>,
    server: Arc<Server>,
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
    let (tx, rx) = outbound::channel(&server.cfg.name, &id);
    let info = match &token {
        Some(t) => t.info(&id, &server.cfg.token_source),
        None => SessionInfo {
            id: id.clone(),
            ..Default::default()
        },
    };
    let session = match app
        .hub
        .open_session(&server, Arc::new(Sink(tx.clone())), info)
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(open_error(e)),
    };
    let (up_tx, up_rx) = mpsc::channel(UPLINK);
    tokio::spawn(uplink(session, up_rx, tx));
    let name = server.cfg.name.clone();
    if let Ok(mut m) = app.sse.sessions.lock() {
        m.insert(
            id.clone(),
            Conn {
                server: name.clone(),
                uplink: up_tx,
            },
        );
    }
    tracing::debug!(mcp_server = %name, mcp_session = %id, "SSE session opened");
    let first = VecDeque::from([super::event(
        "endpoint",
        endpoint_url(app, &name, &id).as_bytes(),
    )]);
    Ok(sse_response(
        SseStream {
            first,
            rx,
            keepalive: app.hub.current().settings.sse_keep_alive,
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
pub fn open_error(e: OpenError) -> Rejection {
    match e {
        OpenError::Disabled(name) => Rejection::Disabled(name),
        OpenError::Full(why) => Rejection::Busy(why),
        e => Rejection::Unavailable(e.to_string()),
    }
}

/// Hands the client's messages to the session in order, until the client
/// leaves or its stream closes (overflow, the upstream ended).
async fn uplink(session: Session, mut rx: mpsc::Receiver<Message>, out: Outbound) {
    while let Some(m) = rx.recv().await {
        if !out.is_open() {
            break;
        }
        if m.is_request() {
            session.request(m, &out).await;
        } else {
            session.notify(m).await;
        }
    }
    session.close();
}

pub async fn post(
    app: &Arc<Ctx>,
    server: Arc<Server>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Rejection> {
    let id = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v.into_owned())
    });
    let Some(id) = id else {
        return Err(Rejection::NoSessionParam);
    };
    let conn = app
        .sse
        .sessions
        .lock()
        .ok()
        .and_then(|m| m.get(&id).cloned());
    let Some(conn) = conn.filter(|c| c.server == server.cfg.name) else {
        return Err(Rejection::UnknownSession(
            "unknown or expired session; open /sse again",
        ));
    };
    let body = read_body(req, &app.hub.current().settings).await?;
    let msgs = match parse_body(&body)? {
        Incoming::Single(m) => vec![m],
        Incoming::Batch(v) => v,
    };
    for m in msgs {
        match conn.uplink.try_send(m) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(Rejection::Busy(format!(
                    "{UPLINK} messages are already queued for this session; retry later"
                )))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(Rejection::UnknownSession(
                    "the session has ended; open /sse again",
                ))
            }
        }
    }
    let mut r = empty(StatusCode::ACCEPTED);
    *r.body_mut() = crate::http::response::full("Accepted");
    Ok(r)
}
