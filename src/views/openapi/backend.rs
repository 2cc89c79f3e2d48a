//! The seam between the facade and what it fronts: "send one JSON-RPC
//! request, get its answer". [`Backend`] is all the facade's other modules
//! know; [`ServerBackend`] implements it over one configured server through
//! the session layer, so a facade call is routed, limited, filtered and
//! audited exactly as an MCP client's call is.
//!
//! Sessions. A shared server gets a transient client session on its shared
//! upstream per HTTP request (opening one costs a router entry, no process).
//! A per-client server must not start a child per HTTP request, so the facade
//! keeps one session per (server, token) in [`Facades`], keyed by the token's
//! place in the config (never its value), and initialized once by the hub
//! as its client. The server's own rules end it: `idleTimeout` stops its
//! upstream after that long without a request, `maxClients` may stop it to
//! make room, a reload that revokes its token ends it. Each of those closes
//! the session; the next request opens a new one. (With no tokens
//! configured, every caller shares the one anonymous session.) While a facade
//! session lives it counts as an open session, in `/status` and against
//! `exitOnIdle`, like any MCP client's.

use crate::config::openapi::OpenApi;
use crate::config::SessionMode;
use crate::hub::GroupEntry as Group;
use crate::hub::{Hub, OpenError, Server};
use crate::jsonrpc::{Id, Message, METHOD_NOT_FOUND};
use crate::session::{Downstream, OnServerRequest, Secret, Session, SessionInfo, Token};
use http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a request did not reach the backend, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Unreachable {
    pub status: StatusCode,
    pub message: String,
}

impl Unreachable {
    fn unavailable(message: impl Into<String>) -> Unreachable {
        Unreachable {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

impl From<OpenError> for Unreachable {
    fn from(e: OpenError) -> Self {
        let status = match e {
            OpenError::Disabled(_) => StatusCode::NOT_FOUND,
            OpenError::Unavailable(_)
            | OpenError::Start(_)
            | OpenError::Full(_)
            | OpenError::ClientFull(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Unreachable {
            status,
            message: e.to_string(),
        }
    }
}

/// What the facade serves: a name for its routes and titles, its settings,
/// and one request at a time to the MCP side. A group of servers can be
/// served by the same facade code by implementing this over the group.
pub trait Backend: Send + Sync {
    /// The route name (`/<name>/…`), used in titles and examples.
    fn name(&self) -> &str;
    fn settings(&self) -> OpenApi;
    /// The tool-list cache and this backend's key in it.
    fn cache(&self) -> (&super::cache::Cache, super::cache::Key);
    /// What the cached list was read under; a different stamp is a stale list.
    fn stamp(&self) -> Vec<u64>;
    /// Sends one request and waits for its answer: a result or a JSON-RPC error.
    fn send(
        &self,
        method: &str,
        params: Value,
    ) -> impl Future<Output = Result<Message, Unreachable>> + Send;
}

/// The facade sessions of per-client servers, one per (server, token).
#[derive(Default)]
pub struct Facades {
    open: Mutex<HashMap<super::cache::Key, Slot>>,
    /// The tool lists of servers and groups, between calls.
    pub tools: super::cache::Cache,
}

impl Facades {
    /// Facade sessions open now.
    pub fn len(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.values()
            .filter(|slot| match slot.try_lock() {
                Ok(held) => held.as_ref().is_some_and(|f| f.session().is_some()),
                // Being opened or used.
                Err(_) => true,
            })
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the slots of sessions that ended (their upstream stopped,
    /// was evicted or restarted), so a hub that served many tokens keeps
    /// no slot per token it will never see again. A slot in use (locked,
    /// or cloned by a request about to lock it) stays.
    pub fn sweep(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, slot| {
            if Arc::strong_count(slot) > 1 {
                return true;
            }
            match slot.try_lock() {
                Ok(held) => held.as_ref().is_some_and(|f| f.session().is_some()),
                Err(_) => true,
            }
        });
    }

    /// Shutdown: every facade session ends.
    pub fn clear(&self) {
        let all: Vec<Slot> = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.drain().map(|(_, s)| s).collect()
        };
        for slot in all {
            if let Ok(mut held) = slot.try_lock() {
                if let Some(f) = held.take() {
                    drop(f.session.lock().ok().and_then(|mut s| s.take()));
                }
            }
        }
    }
}

/// One key's session; the async lock makes concurrent first requests wait
/// for one start rather than each start a child.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Facade>>>>;

struct Facade {
    /// Taken out when the session ends, so it closes (and stops counting
    /// as an open session) as soon as the calls that hold it are done.
    session: Mutex<Option<Arc<Session>>>,
    sink: Arc<Sink>,
    secret: Option<Secret>,
}

impl Facade {
    fn session(&self) -> Option<Arc<Session>> {
        if self.sink.gone.load(Ordering::SeqCst) {
            return None;
        }
        self.session.lock().ok()?.clone()
    }
}

/// A facade has no client to send notifications to; it needs to know when
/// its session ended, and when the server's tool list changed (both make
/// the cached list stale).
struct Sink {
    gone: AtomicBool,
    facade: std::sync::OnceLock<std::sync::Weak<Facade>>,
    generation: Arc<AtomicU64>,
}

impl Sink {
    fn new(generation: Arc<AtomicU64>) -> Sink {
        Sink {
            gone: AtomicBool::new(false),
            facade: std::sync::OnceLock::new(),
            generation,
        }
    }
}

impl Downstream for Sink {
    fn deliver(&self, msg: Message) {
        if msg.method() == Some("notifications/tools/list_changed") {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn closed(&self, _reason: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.gone.store(true, Ordering::SeqCst);
        let facade = self.facade.get().and_then(|w| w.upgrade());
        let session = facade.and_then(|f| f.session.lock().ok()?.take());
        drop(session);
    }
}

/// Request ids the facade sends: unique per process, so a per-client
/// session (whose ids pass through verbatim) never sees two alike.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> Id {
    Id::Str(format!("openapi-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)).into())
}

/// One configured server, as seen by one HTTP request with its token.
pub struct ServerBackend<'a> {
    pub hub: &'a Arc<Hub>,
    pub facades: &'a Facades,
    pub server: Arc<Server>,
    pub token: Option<Token>,
}

impl ServerBackend<'_> {
    fn info(&self) -> SessionInfo {
        SessionInfo::for_token(
            self.token.as_ref(),
            &format!("openapi-{}", crate::session::new_id()),
            &self.server.cfg.token_source,
            crate::metrics::Transport::Openapi,
        )
    }

    /// The per-client facade session for this token, opened if needed.
    async fn facade(&self) -> Result<Arc<Session>, Unreachable> {
        let key = (
            self.server.cfg.name.clone(),
            self.token.as_ref().map(Token::key),
        );
        let slot: Slot = {
            let mut open = self.facades.open.lock().unwrap_or_else(|e| e.into_inner());
            open.entry(key).or_default().clone()
        };
        let mut held = slot.lock().await;
        let secret = self.token.as_ref().map(|t| t.secret.clone());
        if let Some(f) = held.as_ref().filter(|f| f.secret == secret) {
            if let Some(s) = f.session() {
                return Ok(s);
            }
        }
        // Gone (idle, evicted, revoked) or opened with another token value.
        *held = None;
        let generation = self.facades.tools.generation(&self.server.cfg.name);
        // A new upstream may list other tools than the last one did.
        generation.fetch_add(1, Ordering::SeqCst);
        let sink = Arc::new(Sink::new(generation));
        let session = self
            .hub
            .open_session(&self.server, sink.clone(), self.info())
            .await?;
        let init = Message::request(
            next_id(),
            "initialize",
            json!({"protocolVersion": crate::session::LATEST_PROTOCOL,
                   "capabilities": {},
                   "clientInfo": {"name": "mcp-hub-openapi", "version": env!("CARGO_PKG_VERSION")}}),
        );
        let answer = exchange(&session, &self.server.cfg.name, init).await?;
        if let Some(e) = answer.error_raw() {
            return Err(Unreachable::unavailable(format!(
                "server {:?} refused initialize: {}",
                self.server.cfg.name,
                e.get()
            )));
        }
        session
            .notify(Message::notification("notifications/initialized", None))
            .await;
        let session = Arc::new(session);
        let f = Arc::new(Facade {
            session: Mutex::new(Some(session.clone())),
            sink: sink.clone(),
            secret,
        });
        let _ = sink.facade.set(Arc::downgrade(&f));
        *held = Some(f);
        Ok(session)
    }
}

impl Backend for ServerBackend<'_> {
    fn name(&self) -> &str {
        &self.server.cfg.name
    }

    fn settings(&self) -> OpenApi {
        self.server.cfg.openapi
    }

    fn cache(&self) -> (&super::cache::Cache, super::cache::Key) {
        let key = (
            self.server.cfg.name.clone(),
            self.token.as_ref().map(Token::key),
        );
        (&self.facades.tools, key)
    }

    fn stamp(&self) -> Vec<u64> {
        server_stamp(&self.facades.tools, &self.server)
    }

    async fn send(&self, method: &str, params: Value) -> Result<Message, Unreachable> {
        let msg = Message::request(next_id(), method, params);
        let name = &self.server.cfg.name;
        if self.server.cfg.session == SessionMode::PerClient {
            let session = self.facade().await?;
            return exchange(&session, name, msg).await;
        }
        let sink = Arc::new(Sink::new(self.facades.tools.generation(name)));
        let session = self
            .hub
            .open_session(&self.server, sink, self.info())
            .await?;
        exchange(&session, name, msg).await
    }
}

/// A server's part of a stamp: its config (a reload makes a new one), its
/// upstream's pid and restarts, its list generation as the facade heard it,
/// and as the shared upstream said it (heard with no facade session open,
/// and for a group's members).
fn server_stamp(cache: &super::cache::Cache, server: &Server) -> Vec<u64> {
    let up = server.sup.snapshot();
    vec![
        Arc::as_ptr(&server.cfg) as usize as u64,
        up.pid.map_or(0, u64::from),
        up.restarts,
        u64::from(server.down().is_some()),
        cache.current(&server.cfg.name),
        server.tool_list_generation(),
    ]
}

/// One request through a session, to its answer. A question the server asks
/// meanwhile (sampling, elicitation, roots) has nobody to answer it behind an
/// OpenAPI call: it gets an error at once rather than a wait.
async fn exchange(session: &Session, server: &str, msg: Message) -> Result<Message, Unreachable> {
    crate::session::ask(
        session,
        msg,
        OnServerRequest::Refuse(
            METHOD_NOT_FOUND,
            "this request is not available to a call through the OpenAPI facade",
        ),
        None,
        (server, "openapi"),
    )
    .await
    .map_err(|e| Unreachable {
        status: StatusCode::BAD_GATEWAY,
        message: format!("server {server:?}: {e}"),
    })
}

/// A group of servers (`/g/<group>/openapi.json`), as seen by one HTTP
/// request with its token: each request is a transient group session
/// ([`Group::request`]), so prefixed names, the group's and the members'
/// filters and tokens, and down members apply as for an MCP client of the
/// group. A per-client member starts an upstream per request here.
pub struct GroupBackend<'a> {
    pub hub: &'a Arc<Hub>,
    pub facades: &'a Facades,
    pub group: Arc<Group>,
    pub token: Option<Token>,
}

impl Backend for GroupBackend<'_> {
    fn name(&self) -> &str {
        &self.group.route
    }

    fn settings(&self) -> OpenApi {
        self.group.cfg.openapi
    }

    fn cache(&self) -> (&super::cache::Cache, super::cache::Key) {
        let key = (
            self.group.route.clone(),
            self.token.as_ref().map(Token::key),
        );
        (&self.facades.tools, key)
    }

    /// The group's config and each member's stamp: a member that restarts,
    /// goes down or comes back, or says its list changed (through its own
    /// facade) makes the group's list stale too.
    fn stamp(&self) -> Vec<u64> {
        let snap = self.hub.current();
        let mut stamp = vec![Arc::as_ptr(&self.group.cfg) as usize as u64];
        for name in &self.group.cfg.servers {
            match snap.server(name) {
                Some(s) => stamp.extend(server_stamp(&self.facades.tools, &s)),
                None => stamp.push(0),
            }
        }
        stamp
    }

    async fn send(&self, method: &str, params: Value) -> Result<Message, Unreachable> {
        let msg = Message::request(next_id(), method, params);
        Ok(crate::views::group::request(&self.group, self.hub, self.token.clone(), msg).await)
    }
}
