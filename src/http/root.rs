//! `GET /`: a landing answer for people and for health checks that probe the
//! root URL (`curl -f http://host:9090/`, a compose `wget -qO- …/`).
//!
//! Without a token it answers 200 with only the hub's name and a pointer to
//! `/healthz`: nothing that names a server. With a token, it adds the servers
//! and groups that token may use, each with its MCP URLs and its OpenAPI
//! document; as JSON, or as a small HTML page when the client's `Accept`
//! prefers `text/html` (a browser).

use super::auth;
use super::response::{full, json_response, Body, Rejection};
use crate::hub::Snapshot;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

/// The base URL clients use: `baseURL`, else this request's Host.
fn base(snap: &Snapshot, req: &Request<hyper::body::Incoming>) -> String {
    if let Some(u) = &snap.settings.base_url {
        return u.as_str().trim_end_matches('/').to_string();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn wants_html(req: &Request<hyper::body::Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn root(
    app: &Arc<super::App>,
    snap: &Snapshot,
    req: &Request<hyper::body::Incoming>,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Rejection::Method("GET").into_response();
    }
    let name = snap.settings.name.clone();
    let mut body = json!({
        "name": name,
        "version": env!("CARGO_PKG_VERSION"),
        "health": "/healthz",
    });
    // Only a token some route accepts (or a hub without tokens) shows servers.
    let all = snap.all_tokens();
    let presented = req.headers().contains_key(header::AUTHORIZATION);
    let authorized = (all.is_empty() || presented) && auth::check(&all, req.headers()).is_ok();
    // (name, route below the base URL) of what the token may use.
    let mut routes: Vec<(String, String)> = vec![];
    if authorized {
        let status = app.hub.status(None);
        for n in status["servers"].as_array().into_iter().flatten() {
            let Some(n) = n["name"].as_str() else {
                continue;
            };
            let Some(s) = snap.server(n) else { continue };
            if s.cfg.disabled || auth::check(&s.cfg.auth_tokens, req.headers()).is_err() {
                continue;
            }
            routes.push((n.to_string(), n.to_string()));
        }
        for g in snap.groups() {
            if auth::check(&g.cfg.auth_tokens, req.headers()).is_ok() {
                routes.push((g.route.clone(), g.route.clone()));
            }
        }
        let base = base(snap, req);
        body["servers"] = Value::Array(
            routes
                .iter()
                .map(|(n, r)| {
                    json!({"name": n, "mcp": format!("{base}/{r}/mcp"), "sse": format!("{base}/{r}/sse"),
                           "openapi": format!("{base}/{r}/openapi.json")})
                })
                .collect(),
        );
    } else {
        body["hint"] = json!("send Authorization: Bearer <token> to list the servers");
    }
    if !wants_html(req) {
        return json_response(StatusCode::OK, &body);
    }
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{n}</title></head><body>\
         <h1>{n}</h1><p>mcp-hub {v}. Health: <a href=\"/healthz\">/healthz</a></p>",
        n = escape(&name),
        v = env!("CARGO_PKG_VERSION")
    );
    if authorized {
        html.push_str(
            "<table><tr><th>server</th><th>streamable HTTP</th><th>SSE</th><th>OpenAPI</th></tr>",
        );
        for s in body["servers"].as_array().into_iter().flatten() {
            let cell = |k: &str| escape(s[k].as_str().unwrap_or(""));
            html.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                cell("name"),
                cell("mcp"),
                cell("sse"),
                cell("openapi")
            ));
        }
        html.push_str("</table>");
    } else {
        html.push_str("<p>Send a bearer token to list the servers.</p>");
    }
    html.push_str("</body></html>\n");
    let mut r = Response::new(full(html));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}
