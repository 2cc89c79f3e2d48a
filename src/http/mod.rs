//! The HTTP front: accept loop, routing, and the checks every request passes
//! before a transport sees it (Host/Origin, CORS preflight, bearer token).
//!
//! Routes: `/<name>/sse` + `/<name>/message?sessionId=` (legacy SSE),
//! `/<name>/mcp` (streamable HTTP), `/healthz` (open), `/status` (token),
//! `/` (open; lists servers with a token), and the OpenAPI facade
//! (`views::openapi`): `/<name>/openapi.json`, `/<name>/tools/<tool>`,
//! `/<name>/docs`, `/<name>/resources[/read]`, `/<name>/prompts[/<p>]`
//! (token), `/<name>/healthz` (open), `/metrics` (token; see `metrics`). A group of servers has the MCP and
//! OpenAPI routes under `/g/<group>/` (with the group's tokens).
//! With `mcpProxy.options.oidc`, `/.well-known/oauth-protected-resource[/<route>]`
//! (open; RFC 9728) and tokens of the identity provider (`crate::oidc`).
//! A trailing slash routes the same; nothing redirects.

pub mod auth;
pub mod bodies;
mod caller;
pub mod conns;
pub mod metrics;
pub mod origin;
pub mod response;
mod root;
mod status;

use crate::hub::{Hub, Snapshot};
use crate::systemd::listen::Listener;
use crate::transport::{self, sse, streamable, Route};
use crate::views::openapi;
use caller::{authorize, caller, hidden};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use conns::Conns;
pub use response::{empty, Body, Rejection};

pub struct App {
    pub hub: Arc<Hub>,
    /// What the transports see of the hub.
    pub ctx: Arc<transport::Ctx>,
    /// When the last request arrived, in ms since `started`: for exit-on-idle.
    last_request: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    pub conns: Arc<Conns>,
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    pub fn new(hub: Arc<Hub>, shutdown: watch::Receiver<bool>) -> Arc<App> {
        let ctx = Arc::new(transport::Ctx {
            endpoint: Arc::new(HubEndpoint(hub.clone())),
            live: transport::live::Live::new(hub.current().settings.hub_id.as_deref()),
            limits: Default::default(),
            shutdown: shutdown.clone(),
        });
        transport::live::spawn_expiry(ctx.clone());
        Arc::new(App {
            last_request: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
            ctx,
            conns: Arc::default(),
            hub,
            shutdown,
        })
    }
}

/// The hub as the transports' endpoint: a server's session through the
/// registry, a group's session over its members.
struct HubEndpoint(Arc<Hub>);

impl transport::Endpoint for HubEndpoint {
    fn open<'a>(
        &'a self,
        route: &'a Route,
        sink: Arc<dyn crate::session::Downstream>,
        info: crate::session::SessionInfo,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<transport::ClientSession, crate::hub::OpenError>,
                > + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            match route {
                Route::Server(s) => self
                    .0
                    .open_session(s, sink, info)
                    .await
                    .map(transport::ClientSession::Server),
                Route::Group(g) => Ok(transport::ClientSession::Group(crate::views::group::open(
                    g, &self.0, sink, info,
                ))),
            }
        })
    }

    fn shared(
        &self,
        server: &Arc<crate::hub::Server>,
    ) -> Result<Arc<crate::session::Upstream>, crate::hub::OpenError> {
        server.shared_upstream()
    }

    fn current(&self) -> Arc<Snapshot> {
        self.0.current()
    }
}

/// A connection from any listener: TCP or Unix.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Accepts on one listener and hands connections to the serve loop.
async fn accept_loop(
    listener: Listener,
    tx: tokio::sync::mpsc::Sender<(Box<dyn Io>, String, Option<std::net::IpAddr>)>,
) {
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| {
                let _ = s.set_nodelay(true);
                (
                    Box::new(s) as Box<dyn Io>,
                    peer.to_string(),
                    Some(peer.ip()),
                )
            }),
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(s, _)| (Box::new(s) as Box<dyn Io>, "unix".to_string(), None)),
        };
        match accepted {
            Ok(c) => {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                crate::ratelimit::warn("accept", format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers a connection past a limit with 503 and closes it, without reading
/// the request: a flood must cost as little as possible.
async fn refuse(mut stream: Box<dyn Io>, limit: &'static str) {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        "{{\"error\":\"too many open connections (mcpProxy.options.{limit}); try again later\"}}"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
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
        let (stream, peer, ip) = tokio::select! {
            c = rx.recv() => match c {
                Some(c) => c,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        let slot = {
            let s = &app.hub.current().settings;
            app.conns
                .admit(ip, s.max_connections, s.max_connections_per_ip)
        };
        let slot = match slot {
            Ok(slot) => slot,
            Err(limit) => {
                crate::ratelimit::warn(
                    limit,
                    format_args!("refused a connection from {peer}: {limit} reached"),
                );
                tokio::spawn(refuse(stream, limit));
                continue;
            }
        };
        let app2 = app.clone();
        let conn_slot = slot.clone();
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // Not evictable from its request head until its answer is sent.
            let busy = conn_slot.busy();
            if let Some(ip) = ip {
                req.extensions_mut().insert(crate::session::Peer(ip));
            }
            let app = app2.clone();
            async move {
                let resp = handle(app, req).await;
                Ok::<_, Infallible>(resp.map(|b| conns::Tracked::wrap(b, busy)))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, "connection ended: {e}");
                },
                _ = slot.handle.close.notified() => {
                    crate::ratelimit::warn(
                        "evict-silent",
                        format_args!("maxConnections reached: closed the oldest connection that was not in a request ({peer}) to admit a new one"),
                    );
                }
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

/// One request, counted in `mcphub_http_requests_total` by route template.
async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let route = {
        let p = req.uri().path().trim_start_matches('/');
        let p = p.strip_suffix('/').unwrap_or(p);
        let (first, rest) = p.split_once('/').unwrap_or((p, ""));
        metrics::route_template(first, rest)
    };
    let resp = handle_routed(app, req).await;
    crate::metrics::global().http(route, resp.status().as_u16());
    resp
}

async fn handle_routed(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    app.last_request.store(
        app.started.elapsed().as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    // Routing borrows the path from a copy of the URI (a reference count, no
    // allocation), so the request itself can move on to a transport.
    let uri = req.uri().clone();
    let trimmed = uri.path().trim_start_matches('/');
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
        Err(origin::Rejected::Origin(o)) => return Rejection::Origin(o).into_response(),
        Err(origin::Rejected::Host(h)) => return Rejection::Host(h).into_response(),
    };
    let mut resp = match route(&app, &snap, req, first, rest).await {
        Ok(r) => r,
        Err(rej) => rej.into_response(),
    };
    // Every 401 tells an OAuth client where this route's metadata is (MCP
    // authorization, RFC 9728 §5.1), whichever check refused it.
    if let (Some(o), StatusCode::UNAUTHORIZED) = (&snap.oidc, resp.status()) {
        caller::challenge(o, uri.path(), &mut resp);
    }
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
) -> Result<Response<Body>, Rejection> {
    if first.is_empty() {
        return Ok(root::root(app, snap, &req));
    }
    if first == "status" && rest.is_empty() {
        // statusTokens see every server; otherwise a token sees the servers
        // it is valid for, and nothing of the others.
        let scope = match &snap.settings.status_tokens {
            Some(list) => {
                authorize(list, req.headers())?;
                None
            }
            None => {
                let all = snap.all_tokens();
                authorize(&all, req.headers())?.map(|i| all[i].clone())
            }
        };
        return Ok(status::status(
            &app.hub,
            &app.ctx.live,
            req.method(),
            scope.as_deref(),
        ));
    }
    if first == "metrics" && rest.is_empty() {
        return metrics::serve(&app.hub, snap, req.method(), req.headers());
    }
    // OAuth discovery: with an identity provider configured, the protected
    // resource metadata of the hub and of each route (RFC 9728). Without
    // one the hub uses configured bearer tokens, and says so with a 404
    // rather than a 401 that would start an OAuth flow.
    if let (".well-known", Some(o)) = (first, &snap.oidc) {
        if let Some(r) = caller::metadata(o, req.method(), rest) {
            return Ok(r);
        }
    }
    if first == ".well-known" {
        return Err(Rejection::NoRoute {
            path: req.uri().path().into(),
            server: "<name>".into(),
        });
    }
    if first == "g" && snap.has_groups() {
        return group(app, snap, req, rest).await;
    }
    let Some(server) = snap.server(first) else {
        // Do not confirm which names exist to a caller without the global token.
        caller(
            snap,
            &snap.settings.auth_tokens,
            req.headers(),
            None,
            |_| true,
            |_| {},
        )
        .await?;
        return Err(Rejection::UnknownServer(first.into()));
    };
    if rest == "healthz" {
        return Ok(openapi::healthz(&server, req.method()));
    }
    let token = caller(
        snap,
        &server.cfg.auth_tokens,
        req.headers(),
        Some(&format!("/{first}")),
        |c| c.reaches_server(first),
        |c| app.hub.seen(c),
    )
    .await
    .map_err(|e| hidden(e, first))?;
    if server.cfg.disabled {
        return Err(Rejection::Disabled(first.into()));
    }
    if openapi::handles(rest) {
        let auth = !server.cfg.auth_tokens.is_empty()
            || !snap.settings.clients.is_empty()
            || snap.oidc.is_some();
        let backend = openapi::ServerBackend {
            hub: &app.hub,
            facades: &app.ctx.live.facades,
            server,
            token,
        };
        let path = format!("/{first}");
        // One facade request is one JSON-RPC request against the client's limits.
        let _admitted = facade_admit(app, backend.token.as_ref()).await?;
        return openapi::serve(&backend, &snap.settings, &path, auth, req, rest).await;
    }
    mcp_route(app, snap, Route::Server(server), req, rest, token).await
}

/// `/g/<group>/{sse,message,mcp}` and the group's OpenAPI facade: the
/// group's own tokens, then the same transports and facade as a server's.
async fn group(
    app: &Arc<App>,
    snap: &Snapshot,
    req: Request<Incoming>,
    rest: &str,
) -> Result<Response<Body>, Rejection> {
    let (name, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(group) = snap.group(name) else {
        caller(
            snap,
            &snap.settings.auth_tokens,
            req.headers(),
            None,
            |_| true,
            |_| {},
        )
        .await?;
        return Err(Rejection::UnknownServer(format!("g/{name}")));
    };
    let tokens = &group.cfg.auth_tokens;
    let token = caller(
        snap,
        tokens,
        req.headers(),
        Some(&format!("/g/{name}")),
        |c| c.reaches_group(name),
        |c| app.hub.seen(c),
    )
    .await
    .map_err(|e| hidden(e, &format!("g/{name}")))?;
    if openapi::handles(endpoint) {
        let auth = !tokens.is_empty() || !snap.settings.clients.is_empty() || snap.oidc.is_some();
        let path = format!("/{}", group.route);
        let backend = openapi::GroupBackend {
            hub: &app.hub,
            facades: &app.ctx.live.facades,
            group,
            token,
        };
        let _admitted = facade_admit(app, backend.token.as_ref()).await?;
        return openapi::serve(&backend, &snap.settings, &path, auth, req, endpoint).await;
    }
    mcp_route(app, snap, Route::Group(group), req, endpoint, token).await
}

/// The MCP endpoints of a server or a group, served under the request's
/// one snapshot of the config.
async fn mcp_route(
    app: &Arc<App>,
    snap: &Snapshot,
    route: Route,
    req: Request<Incoming>,
    endpoint: &str,
    token: Option<crate::session::Token>,
) -> Result<Response<Body>, Rejection> {
    match (endpoint, req.method()) {
        ("sse", &Method::GET) => sse::open(&app.ctx, snap, route, req, token).await,
        ("message", &Method::POST) => sse::post(&app.ctx, snap, route, req, token).await,
        ("mcp", &Method::POST) => streamable::post(&app.ctx, snap, route, req, token).await,
        ("mcp", &Method::GET) => streamable::get(&app.ctx, snap, route, req).await,
        ("mcp", &Method::DELETE) => streamable::delete(&app.ctx, route, req).await,
        ("sse", _) => Err(Rejection::Method("GET")),
        ("message", _) => Err(Rejection::Method("POST")),
        ("mcp", _) => Err(Rejection::Method("GET, POST, DELETE")),
        _ => Err(Rejection::NoRoute {
            path: req.uri().path().into(),
            server: route.key().into(),
        }),
    }
}

async fn facade_admit(
    app: &App,
    token: Option<&crate::session::Token>,
) -> Result<Option<crate::limits::Admitted>, Rejection> {
    let Some(c) = token.and_then(|t| t.client.as_ref()) else {
        return Ok(None);
    };
    Ok(Some(app.ctx.limits.admit(c, 1).await?))
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
