//! The HTTP front: accept loop, routing, and the checks every request passes
//! before a transport sees it (Host/Origin, CORS preflight, bearer token).
//!
//! Routes: `/<name>/sse` + `/<name>/message?sessionId=` (legacy SSE),
//! `/<name>/mcp` (streamable HTTP), `/healthz` (open), `/status` (token),
//! `/` (open; lists servers with a token).
//! A trailing slash routes the same; nothing redirects.

pub mod auth;
pub mod origin;
mod root;
mod status;

use crate::hub::{Hub, Snapshot};
use crate::systemd::listen::Listener;
use crate::transport::{sse, streamable};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A plain JSON error for the HTTP layer (not a JSON-RPC exchange).
pub fn http_error(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    json_response(status, &json!({"error": msg.into()}))
}

/// A JSON-RPC error response with no id, for a request the hub refuses outright.
pub fn rpc_error(status: StatusCode, code: i64, msg: impl Into<String>) -> Response<Body> {
    let m = crate::jsonrpc::Message::error(None, code, msg);
    json_response(status, &Value::Object(m.0))
}

pub struct App {
    pub hub: Arc<Hub>,
    /// When the last request arrived, in ms since `started`: for exit-on-idle.
    last_request: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    pub sse: sse::Registry,
    pub streamable: streamable::Registry,
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    pub fn new(hub: Arc<Hub>, shutdown: watch::Receiver<bool>) -> Arc<App> {
        let app = Arc::new(App {
            last_request: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
            sse: sse::Registry::default(),
            streamable: streamable::Registry::default(),
            hub,
            shutdown,
        });
        streamable::spawn_expiry(app.clone());
        app
    }
}

/// A connection from any listener: TCP or Unix.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Accepts on one listener and hands connections to the serve loop.
async fn accept_loop(listener: Listener, tx: tokio::sync::mpsc::Sender<(Box<dyn Io>, String)>) {
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                let _ = s.set_nodelay(true);
                (Box::new(s) as Box<dyn Io>, peer.to_string())
            }),
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(s, _)| (Box::new(s) as Box<dyn Io>, "unix".to_string())),
        };
        match accepted {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves HTTP on every listener until `shutdown` turns true, then waits up to
/// `drain` for open connections to finish.
pub async fn serve(app: Arc<App>, listeners: Vec<Listener>, drain: Duration) {
    let mut shutdown = app.shutdown.clone();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let acceptors: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(l, tx.clone())))
        .collect();
    drop(tx);
    loop {
        let (stream, peer) = tokio::select! {
            c = rx.recv() => match c {
                Some(c) => c,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        let app = app.clone();
        let svc = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(app, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    // Stop accepting at once: close the listening sockets.
    for a in acceptors {
        a.abort();
    }
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {}s; closing them",
            drain.as_secs()
        );
    }
}

impl App {
    /// How long since the last request, and whether any session is open.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.hub.counts().0 > 0 {
            return None;
        }
        let last =
            Duration::from_millis(self.last_request.load(std::sync::atomic::Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(last))
    }
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    app.last_request.store(
        app.started.elapsed().as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let path = req.uri().path().to_string();
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let (first, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));

    if first == "healthz" && rest.is_empty() {
        return status::healthz(req.method());
    }
    if req.method() == Method::OPTIONS {
        return preflight(&app, &req);
    }
    let snap = app.hub.current();
    let cors_origin = match snap.policy.check(req.headers()) {
        Ok(o) => o,
        Err(origin::Rejected::Origin(o)) => {
            return http_error(
                StatusCode::FORBIDDEN,
                format!("origin {o:?} is not allowed; add it to mcpProxy.options.allowedOrigins"),
            )
        }
        Err(origin::Rejected::Host(h)) => {
            return http_error(
                StatusCode::FORBIDDEN,
                format!("host {h:?} is not allowed; add it to mcpProxy.options.allowedHosts"),
            )
        }
    };
    let mut resp = route(&app, &snap, req, first, rest).await;
    if let Some(o) = cors_origin {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&o) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("mcp-session-id, mcp-protocol-version"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

async fn route(
    app: &Arc<App>,
    snap: &Snapshot,
    req: Request<Incoming>,
    first: &str,
    rest: &str,
) -> Response<Body> {
    if first.is_empty() {
        return root::root(app, snap, &req);
    }
    if first == "status" && rest.is_empty() {
        if let Err(r) = authorize(&snap.all_tokens(), req.headers()) {
            return r;
        }
        return status::status(&app.hub, req.method());
    }
    let Some(server) = snap.server(first) else {
        // Do not confirm which names exist to a caller without the global token.
        if let Err(r) = authorize(&snap.settings.auth_tokens, req.headers()) {
            return r;
        }
        return http_error(
            StatusCode::NOT_FOUND,
            format!("no server named {first:?} is configured"),
        );
    };
    let token = match authorize(&server.cfg.auth_tokens, req.headers()) {
        Ok(i) => i.map(|i| format!("{}[{i}]", server.cfg.token_source)),
        Err(r) => return r,
    };
    if server.cfg.disabled {
        return http_error(
            StatusCode::NOT_FOUND,
            format!("server {first:?} is disabled in the config"),
        );
    }
    match (rest, req.method()) {
        ("sse", &Method::GET) => sse::open(app, server, req, token).await,
        ("message", &Method::POST) => sse::post(app, server, req).await,
        ("mcp", &Method::POST) => streamable::post(app, server, req, token).await,
        ("mcp", &Method::GET) => streamable::get(app, server, req).await,
        ("mcp", &Method::DELETE) => streamable::delete(app, server, req).await,
        ("sse", _) => not_allowed("GET"),
        ("message", _) => not_allowed("POST"),
        ("mcp", _) => not_allowed("GET, POST, DELETE"),
        _ => http_error(
            StatusCode::NOT_FOUND,
            format!(
                "no route {:?}; use /{first}/sse or /{first}/mcp",
                req.uri().path()
            ),
        ),
    }
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = http_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn authorize(
    tokens: &[String],
    headers: &http::HeaderMap,
) -> Result<Option<usize>, Response<Body>> {
    auth::check(tokens, headers).map_err(|e| {
        let msg = match e {
            auth::AuthError::Missing => "missing bearer token: send Authorization: Bearer <token>",
            auth::AuthError::Invalid => "invalid bearer token",
        };
        let mut r = http_error(StatusCode::UNAUTHORIZED, msg);
        let challenge = match e {
            auth::AuthError::Missing => "Bearer realm=\"mcp-hub\"",
            auth::AuthError::Invalid => "Bearer realm=\"mcp-hub\", error=\"invalid_token\"",
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        r
    })
}

/// CORS preflight: answered without a token (browsers send none), and only with
/// CORS headers for configured origins.
fn preflight(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let mut r = empty(StatusCode::NO_CONTENT);
    let snap = app.hub.current();
    if let (true, Ok(Some(origin))) = (snap.policy.cors_enabled(), snap.policy.check(req.headers()))
    {
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}

/// Reads a request body up to `limit` bytes; past it, 413 with a JSON-RPC error.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::jsonrpc::INVALID_REQUEST,
                format!("request body is larger than {limit} bytes (mcpProxy.options.maxBodySize)"),
            ))
        }
        Err(e) => Err(http_error(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {e}"),
        )),
    }
}
