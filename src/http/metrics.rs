//! `GET /metrics` (Prometheus text format; the series are `crate::metrics`'s),
//! the route templates `mcphub_http_requests_total` counts by, and the
//! optional `metricsListen` address that serves `/metrics` alone, with no token.
//!
//! On the main listener `/metrics` needs a bearer token: one of
//! `metricsTokens` when set, else any token the hub accepts. Without any
//! token configured anywhere it is open, like every other route then. The
//! second listener is meant for loopback (a local Prometheus); it answers
//! nothing but `GET /metrics`.

use super::{empty, Body, Rejection};
use crate::hub::{Hub, Snapshot};
use crate::systemd::listen::Listener;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The route template a request path belongs to: never the raw path (a
/// server name becomes `{server}`, anything unknown `other`).
pub fn route_template(first: &str, rest: &str) -> &'static str {
    match (first, rest) {
        ("", "") => "/",
        ("healthz", "") => "/healthz",
        ("status", "") => "/status",
        ("metrics", "") => "/metrics",
        (".well-known", _) => "/.well-known/*",
        (_, "sse") => "/{server}/sse",
        (_, "message") => "/{server}/message",
        (_, "mcp") => "/{server}/mcp",
        _ => "other",
    }
}

/// `GET /metrics` on the main listener.
pub fn serve(
    hub: &Arc<Hub>,
    snap: &Snapshot,
    method: &Method,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, Rejection> {
    match &snap.settings.metrics.tokens {
        Some(list) => super::authorize(list, headers)?,
        None => super::authorize(&snap.all_tokens(), headers)?,
    };
    if method != Method::GET && method != Method::HEAD {
        return Err(Rejection::Method("GET"));
    }
    Ok(exposition(hub))
}

fn exposition(hub: &Hub) -> Response<Body> {
    let text = crate::metrics::global().render(hub);
    let mut r = Response::new(super::response::full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    r
}

/// Serves `GET /metrics` with no token on `listener` until `shutdown`.
pub async fn serve_plain(hub: Arc<Hub>, listener: Listener, mut shutdown: watch::Receiver<bool>) {
    let Listener::Tcp(l) = listener else { return };
    loop {
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
            let hub = hub.clone();
            async move {
                let resp = match (req.method(), req.uri().path().trim_end_matches('/')) {
                    (&Method::GET | &Method::HEAD, "/metrics") => exposition(&hub),
                    (_, "/metrics") => Rejection::Method("GET").into_response(),
                    _ => empty(StatusCode::NOT_FOUND),
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
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
    }
}
