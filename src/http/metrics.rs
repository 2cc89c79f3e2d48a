//! `GET /metrics` (Prometheus text format; the series are `crate::metrics`'s),
//! the route templates `mcphub_http_requests_total` counts by, and the
//! optional `metricsListen` address that serves `/metrics` alone, with no token.
//!
//! On the main listener `/metrics` needs a bearer token: one of
//! `metricsTokens` when set (it sees every server), else any token the hub
//! accepts, which sees the servers it is valid for and nothing of the others
//! (their names and tool names are not its business). Without any token
//! configured anywhere it is open, like every other route then.
//!
//! The second listener is meant for loopback (a local Prometheus); it answers
//! nothing but `GET /metrics`. Having no token, it is what a DNS-rebinding
//! page would read, so it checks Host and Origin like the main port and, with
//! no host names configured, takes only an IP address or `localhost` as
//! Host. It serves a few connections at once with short timeouts, so that
//! idle connections to it cannot take the descriptors the main port needs.

use super::{empty, Body, Rejection};
use crate::hub::{Hub, Snapshot};
use crate::systemd::listen::Listener;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// The route template a request path belongs to: never the raw path (a
/// server name becomes `{server}`, a group's `{group}`, a tool or prompt
/// name `{tool}` / `{prompt}`, anything unknown `other`).
pub fn route_template(first: &str, rest: &str) -> &'static str {
    match (first, rest) {
        ("", "") => "/",
        ("healthz", "") => "/healthz",
        ("status", "") => "/status",
        ("metrics", "") => "/metrics",
        (".well-known", _) => "/.well-known/*",
        ("g", r) if r.contains('/') => {
            let endpoint = r.split_once('/').map_or("", |(_, e)| e);
            endpoint_template(endpoint, &GROUP_ROUTES)
        }
        (_, r) => endpoint_template(r, &SERVER_ROUTES),
    }
}

/// The endpoints below `/<server>/` and `/g/<group>/`, in the order
/// [`endpoint_template`] tells them apart.
const SERVER_ROUTES: [&str; 11] = [
    "/{server}/sse",
    "/{server}/message",
    "/{server}/mcp",
    "/{server}/openapi.json",
    "/{server}/docs",
    "/{server}/healthz",
    "/{server}/resources",
    "/{server}/resources/read",
    "/{server}/prompts",
    "/{server}/tools/{tool}",
    "/{server}/prompts/{prompt}",
];
const GROUP_ROUTES: [&str; 11] = [
    "/g/{group}/sse",
    "/g/{group}/message",
    "/g/{group}/mcp",
    "/g/{group}/openapi.json",
    "/g/{group}/docs",
    "/g/{group}/healthz",
    "/g/{group}/resources",
    "/g/{group}/resources/read",
    "/g/{group}/prompts",
    "/g/{group}/tools/{tool}",
    "/g/{group}/prompts/{prompt}",
];

fn endpoint_template(endpoint: &str, routes: &[&'static str; 11]) -> &'static str {
    const FIXED: [&str; 9] = [
        "sse",
        "message",
        "mcp",
        "openapi.json",
        "docs",
        "healthz",
        "resources",
        "resources/read",
        "prompts",
    ];
    if let Some(i) = FIXED.iter().position(|f| *f == endpoint) {
        return routes[i];
    }
    match endpoint.split_once('/') {
        Some(("tools", t)) if !t.is_empty() => routes[9],
        Some(("prompts", p)) if !p.is_empty() => routes[10],
        _ => "other",
    }
}

/// Connections `metricsListen` serves at once; the next ones wait in the
/// listen backlog (holding no descriptor of the hub's) until one ends.
pub const PLAIN_MAX_CONNECTIONS: usize = 64;
/// How long a `metricsListen` connection may take to send its request headers.
pub const PLAIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `metricsListen` connection may live, however busy.
pub const PLAIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// `GET /metrics` on the main listener. `metricsTokens` see every server;
/// otherwise a token sees the servers it is valid for (and the hub-wide
/// series), nothing of the others'.
pub fn serve(
    hub: &Arc<Hub>,
    snap: &Snapshot,
    method: &Method,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, Rejection> {
    let scope = match &snap.settings.metrics.tokens {
        Some(list) => {
            super::authorize(list, headers)?;
            None
        }
        None => {
            let all = snap.all_tokens();
            super::authorize(&all, headers)?.map(|i| all[i].clone())
        }
    };
    if method != Method::GET && method != Method::HEAD {
        return Err(Rejection::Method("GET"));
    }
    Ok(exposition(hub, scope.as_deref()))
}

fn exposition(hub: &Hub, token: Option<&str>) -> Response<Body> {
    let text = crate::metrics::global().render(hub.upstream_readings(token));
    let mut r = Response::new(super::response::full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    r
}

/// A DNS name in Host is how a rebinding attack arrives (the page's own
/// name, now resolving to this address): with no `allowedHosts` or
/// `baseURL` to name the hub, the tokenless listener takes only an IP
/// address or `localhost`.
fn literal_host(headers: &http::HeaderMap) -> Result<(), Rejection> {
    let raw = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host = raw
        .parse::<http::uri::Authority>()
        .ok()
        .filter(|a| !a.as_str().contains('@'))
        .map(|a| a.host().to_string());
    let ok = host.is_some_and(|h| {
        let bare = h.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Rejection::Host(raw.into()))
    }
}

/// One request on `metricsListen`: the main port's Host/Origin check, then
/// `GET /metrics` and nothing else.
fn plain(hub: &Hub, req: &Request<hyper::body::Incoming>) -> Response<Body> {
    let snap = hub.current();
    let checked = match snap.policy.check(req.headers()) {
        Err(super::origin::Rejected::Origin(o)) => Err(Rejection::Origin(o)),
        Err(super::origin::Rejected::Host(h)) => Err(Rejection::Host(h)),
        Ok(_) if snap.settings.allowed_hosts.is_none() && snap.settings.base_url.is_none() => {
            literal_host(req.headers())
        }
        Ok(_) => Ok(()),
    };
    if let Err(rej) = checked {
        return rej.into_response();
    }
    match (req.method(), req.uri().path().trim_end_matches('/')) {
        (&Method::GET | &Method::HEAD, "/metrics") => exposition(hub, None),
        (_, "/metrics") => Rejection::Method("GET").into_response(),
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// Serves `GET /metrics` with no token on `listener` until `shutdown`, at
/// most [`PLAIN_MAX_CONNECTIONS`] connections at once: this port must never
/// take the descriptors the main one needs.
pub async fn serve_plain(hub: Arc<Hub>, listener: Listener, mut shutdown: watch::Receiver<bool>) {
    let Listener::Tcp(l) = listener else { return };
    let slots = Arc::new(Semaphore::new(PLAIN_MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let stream = tokio::select! {
            a = l.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    crate::ratelimit::warn("metrics-accept", format_args!("metricsListen: accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let hub = hub.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let resp = plain(&hub, &req);
            async move { Ok::<_, std::convert::Infallible>(resp) }
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(PLAIN_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(PLAIN_CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::route_template;

    #[test]
    fn templates_never_carry_the_path() {
        assert_eq!(route_template("fetch", "mcp"), "/{server}/mcp");
        assert_eq!(route_template("secret-token", "sse"), "/{server}/sse");
        assert_eq!(route_template("x", "y/z"), "other");
        assert_eq!(route_template("metrics", ""), "/metrics");
        assert_eq!(route_template("abc", ""), "other");
        assert_eq!(
            route_template("fetch", "openapi.json"),
            "/{server}/openapi.json"
        );
        assert_eq!(
            route_template("fetch", "tools/rm -rf"),
            "/{server}/tools/{tool}"
        );
        assert_eq!(
            route_template("fetch", "prompts/x"),
            "/{server}/prompts/{prompt}"
        );
        assert_eq!(route_template("fetch", "tools/"), "other");
        assert_eq!(route_template("g", "secret-group/mcp"), "/g/{group}/mcp");
        assert_eq!(
            route_template("g", "all/tools/a__echo"),
            "/g/{group}/tools/{tool}"
        );
        assert_eq!(route_template("g", "mcp"), "/{server}/mcp");
    }
}
