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

/// `token`: show only the servers it is valid for (`None`: every server).
pub fn status(hub: &Hub, method: &Method, token: Option<&str>) -> Response<Body> {
    if method != Method::GET {
        return Rejection::Method("GET").into_response();
    }
    json_response(StatusCode::OK, &hub.status(token))
}
