//! The OpenAPI facade of one server, for Open WebUI's tool servers (MCPO's
//! job): `GET /<name>/openapi.json`, one `POST /<name>/tools/<tool>` per
//! tool, `GET /<name>/docs`, and the open `GET /<name>/healthz`. With
//! `openapi.resources` also `GET /<name>/resources` and
//! `GET /<name>/resources/read?uri=`; with `openapi.prompts` also
//! `GET /<name>/prompts` and `POST /<name>/prompts/<prompt>`. Tools only by
//! default, as MCPO: Open WebUI offers every operation to the model as a tool.
//! A route left out of the document answers 404, as an unknown tool does.
//!
//! - `backend`: the seam. The facade needs one thing of what it fronts:
//!   "send this JSON-RPC request, give me its answer" ([`Backend`]). For a
//!   server that goes through the session layer ([`ServerBackend`]), so calls
//!   are filtered, limited and audited as MCP clients' calls are. A group of
//!   servers can be served at `/g/<group>/openapi.json` by the same code
//!   through a `Backend` over the group ([`serve`] is generic over it).
//! - `spec`: the document, from a fresh `tools/list` per GET (so a changed
//!   list or tool filter shows at once), built off the async workers and
//!   bounded by `openapi.maxDocumentSize`.
//! - `cache`: the tool list calls are checked against, kept between calls.
//! - `body`: a call's body parsed once and checked in place, within bounds.
//! - `call`: an operation's body in, MCPO-compatible response out.
//! - `docs`: the HTML page (no scripts, nothing from a CDN).
//!
//! Auth is the MCP routes' (the HTTP layer checks the token before routing
//! here), the spec and docs included; only `healthz` is open.
//! Each call checks the tool exists (after the filter) and its arguments fit
//! its `inputSchema` against the cached list (`cache`), for a 404 or 422 that
//! never reaches the server, with no round trip more.

pub mod backend;
pub mod body;
pub mod cache;
pub mod call;
pub mod docs;
mod schema;
pub mod spec;

pub use backend::{Backend, Facades, GroupBackend, ServerBackend, Unreachable};

use crate::config::HubSettings;
use crate::http::response::{json_response, Body, Rejection};
use crate::hub::Server;
use call::Reply;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

/// Whether `rest` (the path after `/<name>/`) is one of the facade's routes.
pub fn handles(rest: &str) -> bool {
    matches!(
        rest,
        "openapi.json" | "docs" | "resources" | "resources/read" | "prompts"
    ) || rest.starts_with("tools/")
        || rest.starts_with("prompts/")
}

/// `GET /<name>/healthz`: the server's state without a token. 200 when it
/// can serve now: ready, or stopped and started on the next call (a lazy or
/// idle server, a per-client server with no client); 503 while it starts,
/// restarts after a crash, has failed, or is disabled.
pub fn healthz(server: &Server, method: &Method) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return Rejection::Method("GET").into_response();
    }
    let state = server.state();
    let ready = matches!(state, "ready" | "stopped");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({"server": server.cfg.name, "state": state, "ready": ready}),
    )
}

/// One facade request. `path` is where the backend's routes live
/// (`/<name>`), `rest` the route below it.
pub async fn serve<B: Backend>(
    b: &B,
    settings: &HubSettings,
    path: &str,
    auth: bool,
    req: Request<Incoming>,
    rest: &str,
) -> Result<Response<Body>, Rejection> {
    let method = req.method().clone();
    let view = b.settings();
    let off = |what: &str, key: &str| {
        let (status, body) = call::detail(
            StatusCode::NOT_FOUND,
            format!(
                "{:?}'s OpenAPI view has no {what} (openapi.{key} is false)",
                b.name()
            ),
        );
        Ok(json_response(status, &body))
    };
    if !view.resources && (rest == "resources" || rest == "resources/read") {
        return off("resources", "resources");
    }
    if !view.prompts && (rest == "prompts" || rest.starts_with("prompts/")) {
        return off("prompts", "prompts");
    }
    let reply = match (rest, &method) {
        ("openapi.json", &Method::GET) => return Ok(document(b, settings, path, auth).await),
        ("docs", &Method::GET) => return Ok(page(b, settings, path, auth).await),
        ("resources", &Method::GET) => list(b, "resources/list").await,
        ("prompts", &Method::GET) => list(b, "prompts/list").await,
        ("resources/read", &Method::GET) => read(b, req.uri().query()).await,
        (r, &Method::POST) if r.starts_with("tools/") => {
            let name = decode(&r["tools/".len()..]);
            // The charge is held through the call: the body becomes its message.
            let (body, _charge) = crate::http::bodies::read_body(req, settings).await?;
            tool(b, &name, body).await
        }
        (r, &Method::POST) if r.starts_with("prompts/") => {
            let name = decode(&r["prompts/".len()..]);
            let (body, _charge) = crate::http::bodies::read_body(req, settings).await?;
            prompt(b, &name, &body).await
        }
        (r, _) if r.starts_with("tools/") || r.starts_with("prompts/") => {
            return Err(Rejection::Method("POST"))
        }
        _ => return Err(Rejection::Method("GET")),
    };
    let (status, body) = reply;
    Ok(json_response(status, &body))
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn unreachable(e: Unreachable) -> Reply {
    call::detail(e.status, e.message)
}

fn too_big(b: &impl Backend, method: &str, what: String) -> Reply {
    call::detail(
        StatusCode::BAD_GATEWAY,
        format!("server {:?}'s {method} {what}", b.name()),
    )
}

/// Every item of a paginated list (`tools`, `prompts`), or the reply to give
/// when a page fails or the list is over `maxListSize` or `maxListPages`.
/// `stamp` is taken once the first page is in: the upstream has started by
/// then (a lazy one starts on that request, with a new pid).
async fn list_all<B: Backend, T: serde::de::DeserializeOwned>(
    b: &B,
    method: &str,
    key: &str,
    mut stamp: Option<&mut Vec<u64>>,
) -> Result<Vec<T>, Reply> {
    let caps = b.settings();
    let mut items = Vec::new();
    let mut cursor: Option<Value> = None;
    let mut bytes = 0usize;
    for _ in 0..caps.max_list_pages {
        let params = match cursor.take() {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let m = b.send(method, params).await.map_err(unreachable)?;
        if let Some(s) = stamp.take() {
            *s = b.stamp();
        }
        if let Some(r) = call::rpc_error(&m) {
            return Err(r);
        }
        let Some(raw) = m.result_raw() else { break };
        bytes += raw.get().len();
        if bytes > caps.max_list_size {
            return Err(too_big(
                b,
                method,
                format!(
                    "is over {} bytes, the facade's openapi.maxListSize",
                    caps.max_list_size
                ),
            ));
        }
        let page: std::collections::HashMap<&str, &serde_json::value::RawValue> =
            serde_json::from_str(raw.get()).unwrap_or_default();
        if let Some(list) = page.get(key) {
            // An item of another shape is left out, as one without a name was.
            let list: Vec<Option<T>> = match serde_json::from_str::<Vec<Value>>(list.get()) {
                Ok(vs) => vs
                    .into_iter()
                    .map(|v| serde_json::from_value(v).ok())
                    .collect(),
                Err(_) => vec![],
            };
            items.extend(list.into_iter().flatten());
        }
        match page
            .get("nextCursor")
            .map(|c| c.get())
            .filter(|c| *c != "null")
        {
            Some(c) => cursor = serde_json::from_str(c).ok(),
            None => return Ok(items),
        }
    }
    if cursor.is_none() {
        return Ok(items);
    }
    Err(too_big(
        b,
        method,
        format!(
            "goes on past {} pages, the facade's openapi.maxListPages",
            caps.max_list_pages
        ),
    ))
}

/// The cached tool list, read when stale, and the named tool's schema in it
/// (`None` for a tool without one); 404 for a name it does not have.
async fn known_tool<B: Backend>(b: &B, name: &str) -> Result<Option<std::sync::Arc<str>>, Reply> {
    let (cache, key) = b.cache();
    let slot = cache.slot(key);
    let mut held = slot.lock().await;
    let stamp = b.stamp();
    let missing = || {
        call::detail(
            StatusCode::NOT_FOUND,
            format!("server {:?} has no tool {name:?}", b.name()),
        )
    };
    if let Some(t) = held.as_ref().filter(|t| t.fresh(&stamp)) {
        match t.schema(name) {
            Some(s) => return Ok(s),
            None if t.read.elapsed() < cache::MISS_REFRESH => return Err(missing()),
            None => {}
        }
    }
    let mut stamp = stamp;
    let listed: Vec<cache::Listed> = list_all(b, "tools/list", "tools", Some(&mut stamp)).await?;
    let t = std::sync::Arc::new(cache::Tools::new(stamp, listed));
    *held = Some(t.clone());
    t.schema(name).ok_or_else(missing)
}

/// What the document and the page are made of.
async fn gather<B: Backend>(b: &B) -> Result<(Vec<Value>, spec::Extras), Reply> {
    // A server without tools (-32601) is described with none.
    let mut stamp = b.stamp();
    let tools: Vec<Value> = match list_all(b, "tools/list", "tools", Some(&mut stamp)).await {
        Err((StatusCode::NOT_FOUND, _)) => vec![],
        other => other?,
    };
    // The list just read is the freshest there is: calls use it.
    let (cache, key) = b.cache();
    let fresh = std::sync::Arc::new(cache::Tools::from_values(stamp, &tools));
    *cache.slot(key).lock().await = Some(fresh);
    // Prompts and resources are described when the view includes them and
    // the server has them; otherwise they are not even asked for.
    let view = b.settings();
    let prompts = match view.prompts {
        true => list_all(b, "prompts/list", "prompts", None).await.ok(),
        false => None,
    };
    let resources = view.resources
        && b.send("resources/list", json!({}))
            .await
            .is_ok_and(|m| !m.is_error());
    Ok((tools, spec::Extras { resources, prompts }))
}

fn about<'a, B: Backend>(
    b: &'a B,
    settings: &HubSettings,
    path: &str,
    auth: bool,
) -> spec::About<'a> {
    let base = match &settings.base_url {
        Some(u) => format!("{}{path}", u.as_str().trim_end_matches('/')),
        None => path.to_string(),
    };
    spec::About {
        name: b.name(),
        base,
        auth,
        ids: b.settings().operation_ids,
    }
}

/// The document, built and written off the async workers (a list of many
/// tools takes a while), refused past `maxDocumentSize`.
async fn document<B: Backend>(
    b: &B,
    settings: &HubSettings,
    path: &str,
    auth: bool,
) -> Response<Body> {
    let (tools, extras) = match gather(b).await {
        Ok(g) => g,
        Err((status, body)) => return json_response(status, &body),
    };
    let a = about(b, settings, path, auth);
    let (name, base, ids) = (a.name.to_string(), a.base, a.ids);
    let cap = b.settings().max_document_size;
    let built = tokio::task::spawn_blocking(move || {
        let about = spec::About {
            name: &name,
            base,
            auth,
            ids,
        };
        serde_json::to_vec(&spec::build(&about, &tools, &extras)).unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    if built.is_empty() {
        let (status, body) = call::detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "building the document failed",
        );
        return json_response(status, &body);
    }
    if built.len() > cap {
        let (status, body) = call::detail(
            StatusCode::BAD_GATEWAY,
            format!(
                "the OpenAPI document of {:?} is {} bytes, over the facade's openapi.maxDocumentSize ({cap})",
                b.name(),
                built.len()
            ),
        );
        return json_response(status, &body);
    }
    crate::http::response::bytes_response(StatusCode::OK, built)
}

async fn page<B: Backend>(b: &B, settings: &HubSettings, path: &str, auth: bool) -> Response<Body> {
    match gather(b).await {
        Ok((tools, extras)) => docs::render(&about(b, settings, path, auth), &tools, &extras),
        Err((status, body)) => json_response(status, &body),
    }
}

async fn list<B: Backend>(b: &B, method: &str) -> Reply {
    match b.send(method, json!({})).await {
        Ok(m) => call::plain_reply(&m),
        Err(e) => unreachable(e),
    }
}

async fn read<B: Backend>(b: &B, query: Option<&str>) -> Reply {
    let uri = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "uri")
        .map(|(_, v)| v.into_owned());
    let Some(uri) = uri.filter(|u| !u.is_empty()) else {
        return call::invalid_input(vec![json!({
            "type": "missing", "loc": ["query", "uri"], "msg": "the uri query parameter is required"
        })]);
    };
    match b.send("resources/read", json!({ "uri": uri })).await {
        Ok(m) => call::resource_reply(&m),
        Err(e) => unreachable(e),
    }
}

async fn tool<B: Backend>(b: &B, name: &str, body: bytes::Bytes) -> Reply {
    let schema = match known_tool(b, name).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let checked = match body::check(body, schema).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let params = json!({"name": name, "arguments": checked.args});
    match b.send("tools/call", params).await {
        Ok(m) => call::tool_reply(&m),
        Err(e) => unreachable(e),
    }
}

async fn prompt<B: Backend>(b: &B, name: &str, body: &[u8]) -> Reply {
    let args = match call::arguments(body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Prompt arguments are strings; other JSON values are sent as their text.
    let args: Map<String, Value> = args
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, Value::String(s)),
            other => (k, Value::String(other.to_string())),
        })
        .collect();
    match b
        .send("prompts/get", json!({"name": name, "arguments": args}))
        .await
    {
        Ok(m) => call::plain_reply(&m),
        Err(e) => unreachable(e),
    }
}
