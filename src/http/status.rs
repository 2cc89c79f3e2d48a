//! `/healthz` (open, for load balancers and systemd checks) and `/status`
//! (per-server state, behind a token: it names servers and their errors).

use super::response::{json_response, Body, Rejection};
use crate::hub::Hub;
use http::{Method, Response, StatusCode};
use serde_json::json;

pub fn healthz(method: &Method) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return Rejection::Method("GET").into_response();
    }
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `token`: show only the servers it is valid for (`None`: every server,
/// and the hub's live client state by kind, which is the operator's).
pub fn status(
    hub: &Hub,
    live: &crate::transport::live::Live<crate::transport::Session>,
    method: &Method,
    token: Option<&str>,
) -> Response<Body> {
    if method != Method::GET {
        return Rejection::Method("GET").into_response();
    }
    let mut body = hub.status(token);
    if token.is_none() {
        let c = live.counts();
        body["clientState"] = json!({
            "sseSessions": c.sse,
            "streamableSessions": c.streamable,
            "heldCalls": c.held,
            "facadeSessions": c.facades,
        });
    }
    json_response(StatusCode::OK, &body)
}
