//! MCP 2026-07-28 requests on `/<name>/mcp`, beside the 2025 sessions.
//!
//! A POST whose request carries `_meta["io.modelcontextprotocol/protocolVersion"]`
//! is modern (so is one whose `MCP-Protocol-Version` header names a modern
//! version): no session, no handshake, everything the hub needs is in the
//! request. Headers are checked against the body (`MCP-Protocol-Version`,
//! `Mcp-Method`, `Mcp-Name`: 400 with -32020 when they differ), required
//! `_meta` keys too (-32602), and an unknown version gets -32022 with the
//! modern versions the hub serves, as `server/discover` lists them.
//!
//! Each request is an exchange of its own on the route's upstream:
//! - on a shared server, an entry in the upstream's in-flight table with no
//!   client session at all (`session::stateless`), unless it asked for a log
//!   level (its log messages need a session-wide sink: then a transient
//!   session, as below);
//! - on a per-client server, a transient upstream the hub initializes with the
//!   request's own client capabilities;
//! - on a group (`/g/<group>/mcp`), a transient group session the hub
//!   initializes with the request's capabilities: the group fans `tools/list`
//!   out and merges it, routes a call by the member's prefix, and relays a
//!   member's question to this request. The group speaks the 2025 era to its
//!   members' sessions, which each speak their upstream's own.
//!
//! A request's params are read once, where its era is decided ([`Read`]):
//! the envelope and what names the call.
//! Whether it goes up is the session layer's decision, taken after the link
//! negotiated its era: a legacy upstream never sees the modern keys. Back
//! toward the client every result gets `resultType`, and the six cacheable
//! ones `ttlMs: 0` and `cacheScope: "private"` (what the hub answers can
//! change with a reload or a tool filter and may depend on the token). A
//! question the upstream asks during the call (sampling, elicitation, roots)
//! becomes `input_required` and the call is held (`hold.rs`) until the client
//! retries with its answers. `server/discover` is answered from the
//! upstream's (or the group's merged) identity; `subscriptions/listen` is a
//! long-lived SSE stream of the change notifications the client asked for.

use super::hold::{self, Carrier, Held};
use super::{sse_response, ClientSession, Ctx, Route, SseStream};
use crate::http::response::{bytes_response, Body, Rejection};
use crate::jsonrpc::{
    to_raw, Id, Kind, Message, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, UPSTREAM_ERROR,
};
use crate::mcp;
use crate::session::outbound::{self, Inbound, Outbound};
use crate::session::stateless::Stateless;
use crate::session::{Downstream, SessionInfo, Token};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod listen;
mod round;

use listen::listen;
pub use listen::MAX_LISTEN_URIS;
use round::Round;

/// The few request headers a modern request is checked against, copied
/// before the body is read.
pub struct Headers {
    version: Option<HeaderValue>,
    method: Option<HeaderValue>,
    name: Option<HeaderValue>,
    /// A header that came more than once: which one (the request is refused).
    repeated: Option<&'static str>,
}

impl Headers {
    pub fn from(h: &HeaderMap) -> Headers {
        let names = ["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"];
        Headers {
            version: h.get("mcp-protocol-version").cloned(),
            method: h.get("mcp-method").cloned(),
            name: h.get("mcp-name").cloned(),
            repeated: names
                .into_iter()
                .find(|n| h.get_all(*n).iter().nth(1).is_some()),
        }
    }

    /// Whether `MCP-Protocol-Version` names a 2026-07-28+ version: such a
    /// request is modern even when its body lacks the `_meta` envelope, and
    /// is refused as one (-32602), not as an unknown legacy version.
    pub fn claims_modern(&self) -> bool {
        self.version
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| mcp::MODERN_VERSIONS.contains(&v))
    }
}

/// A JSON-RPC error with the HTTP status 2026-07-28 maps its code to.
fn rpc_status(code: i64) -> StatusCode {
    match code {
        -32700 | INVALID_REQUEST | INVALID_PARAMS | -32022..=-32020 => StatusCode::BAD_REQUEST,
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

fn error(id: Option<Id>, code: i64, msg: impl Into<String>, data: Option<Value>) -> Response<Body> {
    render(&Message::error_with(id, code, msg, data))
}

/// An error message as the response 2026-07-28 maps its code to.
fn render(m: &Message) -> Response<Body> {
    bytes_response(
        m.error_code().map_or(StatusCode::OK, rpc_status),
        m.to_bytes(),
    )
}

/// What a request says of itself in its params, read in one pass
/// (`mcp::params`) where its era is decided, and owned, so the message moves
/// on with nothing left to find in it.
pub struct Read {
    headers: Headers,
    /// `_meta`'s protocol version: the request is modern. The fields below
    /// are read only then.
    version: Option<String>,
    /// Its client capabilities (what the server may ask it); an object once
    /// [`validate`] passed.
    caps: Value,
    /// It set a log level: log messages go to its stream.
    log: bool,
    progress: Option<Value>,
    /// The param `Mcp-Name` mirrors, as a string.
    named: Option<String>,
    /// `requestState`: a retry of a held call carries its handle.
    state: Option<String>,
    /// What a hold of this call is bound to (`hold::binding_of`).
    binding: u64,
}

impl Read {
    /// Reads `m`'s params, and leaves in it what the session layer reads of
    /// them (`Message::know`), so they are not scanned again there.
    pub fn of(headers: Headers, m: &mut Message) -> Read {
        let mut p = mcp::params(m);
        let known = p.whole.then(|| {
            let progress = p.meta.as_ref().and_then(|e| e.progress);
            (
                p.name.map(ToOwned::to_owned),
                progress.map(ToOwned::to_owned),
            )
        });
        let env = p.meta.take().unwrap_or_default();
        let mut read = Read {
            headers,
            version: env.version.map(std::borrow::Cow::into_owned),
            caps: Value::Null,
            log: false,
            progress: None,
            named: None,
            state: None,
            binding: 0,
        };
        // A 2025 request (an `initialize`) needs nothing more.
        if read.version.is_some() {
            let method = m.method().unwrap_or("");
            read.caps = env
                .capabilities
                .and_then(|c| serde_json::from_str(c.get()).ok())
                .unwrap_or_default();
            read.log = env.log_level.is_some();
            read.progress = env
                .progress
                .and_then(|p| serde_json::from_str(p.get()).ok());
            read.named = mcp::name_param(method).and_then(|k| p.string(k));
            read.state = p.string("requestState");
            read.binding = hold::binding_of(method, [p.name, p.uri, p.arguments]);
        }
        if let Some((name, progress)) = known {
            m.know(name, progress);
        }
        read
    }

    /// Whether `_meta` names a protocol version, or the headers claim a
    /// modern one (then a body without the envelope is refused as modern).
    pub fn is_modern(&self) -> bool {
        self.version.is_some() || self.headers.claims_modern()
    }
}

/// Checks a modern request's headers and `_meta`; the error response if they fail.
fn validate(m: &Message, read: &Read, version: &str) -> Result<(), Message> {
    let h = &read.headers;
    let id = m.id().cloned();
    let method = m.method().unwrap_or("");
    if !read.caps.is_object() {
        return Err(Message::error_with(
            id,
            INVALID_PARAMS,
            format!("params._meta[\"{}\"] is required", mcp::META_CAPABILITIES),
            None,
        ));
    }
    if let Some(h) = h.repeated {
        // Two values and one body: which one was meant is anybody's guess.
        return Err(Message::error_with(
            id,
            mcp::HEADER_MISMATCH,
            format!("the {h} header must be sent once"),
            None,
        ));
    }
    let header =
        |v: &Option<HeaderValue>| v.as_ref().and_then(|v| v.to_str().ok()).map(str::to_string);
    if header(&h.version).as_deref() != Some(version) {
        return Err(Message::error_with(
            id,
            mcp::HEADER_MISMATCH,
            format!("the MCP-Protocol-Version header must equal params._meta protocolVersion ({version:?})"),
            None,
        ));
    }
    if !mcp::MODERN_VERSIONS.contains(&version) {
        return Err(Message::error_with(
            id,
            mcp::UNSUPPORTED_VERSION,
            format!("unsupported protocol version {version:?}"),
            // Only the versions this path serves: a client checks them
            // against what server/discover offered.
            Some(json!({"supported": mcp::MODERN_VERSIONS, "requested": version})),
        ));
    }
    if header(&h.method).as_deref() != Some(method) {
        return Err(Message::error_with(
            id,
            mcp::HEADER_MISMATCH,
            format!("the Mcp-Method header must equal the body's method ({method:?})"),
            None,
        ));
    }
    if let Some(p) = mcp::name_param(method) {
        let given = header(&h.name).and_then(|v| mcp::decode_header(&v));
        if given.is_none() || given != read.named {
            return Err(Message::error_with(
                id,
                mcp::HEADER_MISMATCH,
                format!("the Mcp-Name header must equal params.{p}"),
                None,
            ));
        }
    }
    Ok(())
}

/// A modern request (or notification) on `/<name>/mcp` or `/g/<group>/mcp`.
pub async fn post(
    ctx: &Arc<Ctx>,
    snap: &crate::hub::Snapshot,
    server: Route,
    msg: Message,
    read: Read,
    token: Option<Token>,
    charge: crate::http::bodies::Charge,
) -> Result<Response<Body>, Rejection> {
    let Ok(Kind::Request { id, method }) = msg.kind() else {
        // The core defines no client notification over HTTP but cancellation,
        // which is closing the stream.
        return Ok(crate::http::response::empty(StatusCode::ACCEPTED));
    };
    let Some(version) = read.version.as_deref() else {
        // The header claims 2026-07-28 but the body carries no version.
        return Ok(error(
            Some(id),
            INVALID_PARAMS,
            format!("params._meta[\"{}\"] is required", mcp::META_VERSION),
            None,
        ));
    };
    if let Err(e) = validate(&msg, &read, version) {
        return Ok(render(&e));
    }
    let keepalive = snap.settings.sse_keep_alive;
    match method {
        "server/discover" => Ok(discover(ctx, &server, id, &read.caps, token).await),
        "subscriptions/listen" => Ok(listen(ctx, keepalive, server, msg, read.caps, token).await),
        "initialize"
        | "ping"
        | "logging/setLevel"
        | "resources/subscribe"
        | "resources/unsubscribe" => Ok(error(
            Some(id),
            METHOD_NOT_FOUND,
            format!("{method} does not exist in protocol {version}"),
            None,
        )),
        _ => Ok(call(ctx, keepalive, server, msg, read, token, charge).await),
    }
}

/// Where a modern client's session-wide traffic goes: its log messages (when
/// the request asked for a level) to the current call's stream; for a listen
/// stream, the change notifications it asked for.
struct Sink {
    out: Mutex<Option<Outbound>>,
    log: bool,
    listen: Option<Filter>,
}

impl Downstream for Sink {
    fn deliver(&self, mut msg: Message) {
        let wanted = match (&self.listen, msg.method()) {
            (Some(f), Some(m)) => f.wants(m, msg.param::<String>("uri").as_deref()),
            (None, Some("notifications/message")) => self.log,
            _ => false,
        };
        if !wanted {
            return;
        }
        if let Some(f) = &self.listen {
            let mut meta = mcp::request_meta(&msg).unwrap_or_default();
            meta.insert(mcp::META_SUBSCRIPTION.into(), f.id.to_value());
            msg.set_param("_meta", &to_raw(&meta));
        }
        if let Some(o) = self.out.lock().ok().and_then(|o| o.clone()) {
            let _ = o.push(msg);
        }
    }
    fn closed(&self, _reason: &str) {
        if let Some(o) = self.out.lock().ok().and_then(|o| o.clone()) {
            o.close();
        }
    }
}

/// What a `subscriptions/listen` asked for.
struct Filter {
    id: Id,
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
}

impl Filter {
    fn wants(&self, method: &str, uri: Option<&str>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => {
                uri.is_some_and(|u| self.uris.iter().any(|x| x == u))
            }
            _ => false,
        }
    }
}

/// The legacy capabilities a modern client's per-request ones amount to.
fn legacy_caps(caps: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["sampling", "elicitation", "roots", "experimental"] {
        if let Some(v) = caps.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Opens a transient session for one modern exchange. A per-client upstream
/// is initialized here, with the request's own capabilities, and so is a
/// group session (its members learn what the client can be asked).
async fn open(
    ctx: &Arc<Ctx>,
    route: &Route,
    sink: Arc<Sink>,
    caps: &Value,
    token: Option<&Token>,
    need_identity: bool,
) -> Result<(ClientSession, Option<Message>), Response<Body>> {
    let id = format!("modern-{}", crate::session::new_id());
    let mut info = SessionInfo::for_token(token, &id, route.token_source(), Default::default());
    // A group speaks the 2025 era to its members' sessions (this request is
    // translated at this edge), so they carry no modern client of their own.
    info.modern = matches!(route, Route::Server(_));
    let session = route
        .open(ctx, sink, info)
        .await
        .map_err(|e| Rejection::from(e).into_response())?;
    // The shared upstream was initialized by the hub; a per-client one and a
    // group session now.
    let fresh = match route {
        Route::Server(s) => s.cfg.session == crate::config::SessionMode::PerClient,
        Route::Group(_) => true,
    };
    if !fresh && !need_identity {
        return Ok((session, None));
    }
    let init = Message::request(
        Id::Str("mcp-hub-initialize".into()),
        "initialize",
        mcp::hub_initialize(legacy_caps(caps)),
    );
    let answer = crate::session::ask(
        &session,
        init,
        crate::session::OnServerRequest::Refuse(
            crate::jsonrpc::UPSTREAM_ERROR,
            "mcp-hub cannot route this request: it came during the hub's own initialize",
        ),
        None,
        (route.key(), "modern-init"),
    )
    .await
    .map_err(|e| {
        error(
            None,
            UPSTREAM_ERROR,
            format!("{:?}: initialize: {e}", route.key()),
            None,
        )
    })?;
    if fresh {
        session
            .notify(Message::notification("notifications/initialized", None))
            .await;
    }
    Ok((session, Some(answer)))
}

/// `server/discover`, synthesized from the upstream's `initialize` answer.
async fn discover(
    ctx: &Arc<Ctx>,
    server: &Route,
    id: Id,
    caps: &Value,
    token: Option<Token>,
) -> Response<Body> {
    let sink = Arc::new(Sink {
        out: Mutex::new(None),
        log: false,
        listen: None,
    });
    let (session, init) = match open(ctx, server, sink, caps, token.as_ref(), true).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    drop(session);
    let Some(init) = init.filter(|m| !m.is_error()) else {
        return error(
            Some(id),
            UPSTREAM_ERROR,
            format!("{:?} did not initialize", server.key()),
            None,
        );
    };
    let r: Value = init
        .result_raw()
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null);
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": mcp::MODERN_VERSIONS,
        "capabilities": r.get("capabilities").cloned().unwrap_or(json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {mcp::META_SERVER_INFO: r.get("serverInfo").cloned().unwrap_or(json!({}))},
    });
    if let Some(i) = r.get("instructions") {
        result["instructions"] = i.clone();
    }
    bytes_response(StatusCode::OK, Message::response(id, result).to_bytes())
}

/// One modern call: forwarded as an exchange, answered as JSON or, when
/// progress or logs come first, as an SSE stream ending with the answer.
async fn call(
    ctx: &Arc<Ctx>,
    keepalive: Duration,
    server: Route,
    mut msg: Message,
    read: Read,
    token: Option<Token>,
    charge: crate::http::bodies::Charge,
) -> Response<Body> {
    let Some(id) = msg.id().cloned() else {
        return error(None, INVALID_REQUEST, "a request needs an id", None);
    };
    let method = msg.method().unwrap_or("").to_string();

    // A retry of a held call: answer the server's questions and go on waiting.
    let resumed = match read.state.as_deref().filter(|s| hold::is_handle(s)) {
        Some(state) => {
            match ctx.live.holds.resume(
                state,
                token.as_ref().map(|t| &t.secret),
                server.key(),
                read.binding,
            ) {
                Ok(h) => Some(h),
                Err(e) => return error(Some(id), INVALID_PARAMS, e.to_string(), None),
            }
        }
        None => None,
    };
    // The client's stream when the answer does not come first; for a
    // transient session, also where its log messages go. Made only when
    // needed: the common call is answered before any stream is.
    let mut stream = None;
    let (carrier, rx) = match resumed {
        Some(held) => {
            let answers: serde_json::Map<String, Value> =
                msg.param("inputResponses").unwrap_or_default();
            for key in &held.pending {
                let reply = match answers.get(key) {
                    Some(v) => Message::response(Id::Num(key.as_str().into()), v.clone()),
                    None => Message::error(
                        Some(Id::Num(key.as_str().into())),
                        UPSTREAM_ERROR,
                        "the client retried without answering this request",
                    ),
                };
                held.session.answer(reply).await;
            }
            (held.session, held.rx)
        }
        // The common case: a shared server, no log level asked for. An entry
        // in the upstream's in-flight table, and no session.
        None if !read.log && shared(&server) => {
            let Route::Server(s) = &server else {
                unreachable!("shared() is a server's")
            };
            let up = match ctx.endpoint.shared(s) {
                Ok(up) => up,
                Err(e) => return Rejection::from(e).into_response(),
            };
            let mut info =
                SessionInfo::for_token(token.as_ref(), "", &s.cfg.token_source, Default::default());
            info.modern = true;
            let (reply, rx) = outbound::channel(server.key(), "modern");
            let ex = Stateless::start(&up, msg, &reply, &Arc::new(info)).await;
            (Carrier::Exchange(ex), rx)
        }
        None => {
            let (out, out_rx) = outbound::channel(server.key(), "modern");
            let sink = Arc::new(Sink {
                out: Mutex::new(Some(out.clone())),
                log: read.log,
                listen: None,
            });
            let (session, _) =
                match open(ctx, &server, sink, &read.caps, token.as_ref(), false).await {
                    Ok(s) => s,
                    Err(r) => return r,
                };
            // On a server, whether the envelope goes up is the session
            // layer's decision, taken once the upstream's era is known. A
            // group speaks 2025 to its members' sessions.
            if let Route::Group(_) = server {
                msg = crate::session::strip_modern(msg).await;
            }
            stream = Some((out, out_rx));
            let (reply, rx) = outbound::channel(server.key(), "modern");
            session.request(msg, &reply).await;
            (Carrier::Session(session), rx)
        }
    };
    // The body's message is handed on: its bytes no longer count.
    drop(charge);
    let round = Round {
        ctx: ctx.clone(),
        server: server.key().to_owned(),
        id,
        method,
        progress: read.progress,
        caps: read.caps,
        log: read.log,
        token: token.map(|t| t.secret),
        binding: read.binding,
    };
    // The common case, the answer coming first, is answered from here: no
    // task and no second queue. (A client that hangs up drops this future,
    // and with it the exchange or session, which cancels the call upstream.)
    let mut rx = rx;
    let first = match rx.recv().await {
        Some(mut m) if m.is_response() => {
            m.set_id(round.id.clone());
            let m = round.modernize(m);
            drop(carrier);
            return render(&m);
        }
        first => first,
    };
    let (out, out_rx) = stream.unwrap_or_else(|| outbound::channel(&round.server, "modern"));
    tokio::spawn(round.pump(carrier, rx, out, first));
    respond(out_rx, ctx, keepalive).await
}

/// A server whose upstream all clients share: its modern calls need no session.
fn shared(route: &Route) -> bool {
    matches!(route, Route::Server(s) if s.cfg.session == crate::config::SessionMode::Shared)
}

/// The client's answer: JSON when the result is the first thing to say, else
/// SSE ending with the result.
async fn respond(mut rx: Inbound, ctx: &Ctx, keepalive: Duration) -> Response<Body> {
    let Some(first) = rx.recv().await else {
        return error(
            None,
            UPSTREAM_ERROR,
            "the call ended without an answer",
            None,
        );
    };
    if first.is_response() {
        let status = first.error_code().map_or(StatusCode::OK, rpc_status);
        return bytes_response(status, first.to_bytes());
    }
    sse_response(
        SseStream {
            first: VecDeque::from([super::message_event(&first)]),
            rx,
            keepalive,
            shutdown: ctx.shutdown.clone(),
            done: Box::new(|m: &Message| m.is_response()),
            ended: false,
            guard: (),
        },
        &[],
    )
}
