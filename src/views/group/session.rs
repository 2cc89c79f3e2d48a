//! One client's session on a group: a member session per server, opened
//! through the hub as any client's would be, and the routing between them
//! and the client (see the module doc of `views::group`).
//!
//! Every client request is handled on its own task, so a transport is never
//! held up by a fan-out or a long call (a legacy SSE POST must come back at
//! once, and the client's answer to a sampling request must get through while
//! its call is open). A call's answer, progress and server requests come
//! back on a stream of the group's own, relayed to the client's reply stream:
//! server requests get ids the group mints, because two members' ids may
//! collide.

use super::merge::{self, List, MemberInit, Names};
use super::{naming, Group};
use crate::hub::{Hub, Server};
use crate::jsonrpc::{to_raw, Id, Message, INVALID_PARAMS, METHOD_NOT_FOUND, UPSTREAM_ERROR};
use crate::session::outbound::{self, Outbound, Refused};
use crate::session::{Downstream, Session, SessionInfo, LATEST_PROTOCOL};
use crate::upstream::link::LinkState;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long one member may take to answer one page of a list once it is
/// up: one hung member must not hold the whole group's list.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages of one list taken from one member at most.
const MAX_PAGES: usize = 100;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client's session on a group.
pub struct GroupSession(Arc<Inner>);

pub(super) struct Inner {
    group: Arc<Group>,
    hub: Arc<Hub>,
    /// The client's session-wide stream.
    sink: Arc<dyn Downstream>,
    info: SessionInfo,
    members: Vec<Member>,
    /// The client's `initialize`, replayed to members opened later.
    init: Mutex<Option<Message>>,
    /// The client sent `notifications/initialized`.
    initialized: AtomicBool,
    tools: Mutex<Names>,
    prompts: Mutex<Names>,
    /// Server requests on their way to the client: group id → (member, member's id).
    asks: Mutex<HashMap<u64, (usize, Id)>>,
    /// Client requests in flight on a member, for cancellation.
    calls: Mutex<HashMap<Id, usize>>,
    seq: AtomicU64,
    closed: AtomicBool,
    /// Server requests may go to the client (false for one-shot requests).
    can_ask: bool,
}

struct Member {
    name: String,
    slot: Mutex<Option<Arc<Session>>>,
    /// One open at a time.
    opening: tokio::sync::Mutex<()>,
    /// Its `initialize` result.
    init: Mutex<Option<Value>>,
    /// The watched server (a reload may replace it) and the watching task.
    watch: Mutex<Option<(Weak<Server>, JoinHandle<()>)>>,
}

/// Why a member is not part of an answer.
enum Reach {
    /// Its own tokens do not accept the client's: not part of this view.
    Hidden,
    /// Down, or it could not be reached: why, naming the server.
    Down(String),
}

impl GroupSession {
    pub(super) fn new(
        group: Arc<Group>,
        hub: Arc<Hub>,
        sink: Arc<dyn Downstream>,
        info: SessionInfo,
        can_ask: bool,
    ) -> GroupSession {
        let members = group
            .cfg
            .servers
            .iter()
            .map(|name| Member {
                name: name.clone(),
                slot: Mutex::default(),
                opening: tokio::sync::Mutex::default(),
                init: Mutex::default(),
                watch: Mutex::default(),
            })
            .collect();
        let inner = Arc::new(Inner {
            group,
            hub,
            sink,
            info,
            members,
            init: Mutex::default(),
            // A one-shot session has no client to say it; members need it.
            initialized: AtomicBool::new(!can_ask),
            tools: Mutex::default(),
            prompts: Mutex::default(),
            asks: Mutex::default(),
            calls: Mutex::default(),
            seq: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            can_ask,
        });
        let snap = inner.hub.current();
        for i in 0..inner.members.len() {
            if let Some(s) = snap.server(&inner.members[i].name) {
                if inner.visible(&s) {
                    inner.watch(i, &s);
                }
            }
        }
        GroupSession(inner)
    }

    pub(super) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    /// One request from the client; its answer, progress and any server
    /// request tied to it go to `reply`.
    pub async fn request(&self, msg: Message, reply: &Outbound) {
        let inner = self.0.clone();
        let reply = reply.clone();
        tokio::spawn(async move { inner.handle(msg, reply).await });
    }

    /// A notification or a response (to a server request) from the client.
    pub async fn notify(&self, msg: Message) {
        self.0.notify(msg).await;
    }

    /// The client left.
    pub fn close(&self) {
        self.0.shut();
    }
}

impl Drop for GroupSession {
    fn drop(&mut self) {
        self.0.shut();
    }
}

/// A member session's sink: what the member sends that belongs to no call.
struct MemberSink {
    inner: Weak<Inner>,
    member: usize,
}

impl Downstream for MemberSink {
    fn deliver(&self, mut msg: Message) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if inner.is_closed() {
            return;
        }
        if msg.is_request() {
            inner.ask_client(self.member, msg, None);
            return;
        }
        match msg.method() {
            Some("notifications/resources/updated") => {
                let Some(uri) = msg.param::<String>("uri") else {
                    return;
                };
                let public = naming::public_uri(&inner.members[self.member].name, &uri);
                msg.set_param("uri", &to_raw(&public));
            }
            Some("notifications/cancelled") => {
                // The member withdrew a request it sent the client.
                let Some(up) = msg
                    .param::<Value>("requestId")
                    .and_then(|v| Id::from_value(&v))
                else {
                    return;
                };
                let mut asks = lock(&inner.asks);
                let Some(g) = asks
                    .iter()
                    .find(|(_, (m, id))| *m == self.member && *id == up)
                    .map(|(g, _)| *g)
                else {
                    return;
                };
                asks.remove(&g);
                drop(asks);
                msg.set_param("requestId", &to_raw(&g));
            }
            _ => {}
        }
        inner.sink.deliver(msg);
    }

    fn closed(&self, reason: &str) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let m = &inner.members[self.member];
        lock(&m.slot).take();
        if inner.is_closed() {
            return;
        }
        tracing::warn!(
            mcp_server = %m.name,
            mcp_session = %inner.info.id,
            "group {:?}: the session on server {:?} ended ({reason}); its tools are left out until it can be reached again",
            inner.group.cfg.name,
            m.name
        );
        inner.sink.deliver(list_changed());
    }
}

fn list_changed() -> Message {
    Message::notification("notifications/tools/list_changed", None)
}

fn is_down(s: &LinkState) -> bool {
    matches!(
        s,
        LinkState::Backoff(_) | LinkState::Failed(_) | LinkState::Stopped
    )
}

/// Tells the client when a shared member goes down or comes back: its tools
/// leave or rejoin the list.
async fn watch_member(
    inner: Weak<Inner>,
    member: usize,
    mut rx: tokio::sync::watch::Receiver<LinkState>,
) {
    let mut down = is_down(&rx.borrow_and_update());
    while rx.changed().await.is_ok() {
        let now = is_down(&rx.borrow_and_update());
        if now == down {
            continue;
        }
        down = now;
        let Some(inner) = inner.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        let (group, name) = (&inner.group.cfg.name, &inner.members[member].name);
        if down {
            tracing::warn!(mcp_server = %name, mcp_session = %inner.info.id,
                "group {group:?}: server {name:?} is down; its tools are left out until it is back");
        } else {
            tracing::info!(mcp_server = %name, mcp_session = %inner.info.id,
                "group {group:?}: server {name:?} is back; its tools are listed again");
        }
        inner.sink.deliver(list_changed());
    }
}

impl Inner {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closes the member sessions; the client's streams are the transport's.
    fn shut(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        for m in &self.members {
            if let Some((_, h)) = lock(&m.watch).take() {
                h.abort();
            }
            if let Some(s) = lock(&m.slot).take() {
                s.close();
            }
        }
        lock(&self.asks).clear();
    }

    /// Ends the session and its client's streams (a reload changed the group).
    pub(super) fn end(self: &Arc<Self>, why: &str) {
        self.shut();
        tracing::info!(mcp_server = %self.group.route, mcp_session = %self.info.id, "group session ended: {why}");
        self.sink.closed(why);
    }

    /// Whether the member's own tokens accept the client's.
    fn visible(&self, server: &Server) -> bool {
        let tokens = &server.cfg.auth_tokens;
        tokens.is_empty()
            || self
                .info
                .secret
                .as_ref()
                .is_some_and(|s| tokens.iter().any(|t| *t == *s.0))
    }

    fn watch(self: &Arc<Self>, i: usize, server: &Arc<Server>) {
        let mut w = lock(&self.members[i].watch);
        let current = Arc::downgrade(server);
        if w.as_ref().is_some_and(|(s, _)| s.ptr_eq(&current)) {
            return;
        }
        if let Some((_, h)) = w.take() {
            h.abort();
        }
        // A per-client member has its own upstream: its session's end tells.
        let Some(rx) = server.watch_state() else {
            return;
        };
        let task = tokio::spawn(watch_member(Arc::downgrade(self), i, rx));
        *w = Some((current, task));
    }

    /// The member's open session, if any.
    fn slot(&self, i: usize) -> Option<Arc<Session>> {
        lock(&self.members[i].slot).clone()
    }

    fn member_index(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// The member's session, opened (and initialized) if need be.
    async fn member(self: &Arc<Self>, i: usize) -> Result<Arc<Session>, Reach> {
        let m = &self.members[i];
        let snap = self.hub.current();
        let Some(server) = snap.server(&m.name) else {
            return Err(Reach::Down(format!(
                "server {:?} is no longer configured",
                m.name
            )));
        };
        if !self.visible(&server) {
            return Err(Reach::Hidden);
        }
        self.watch(i, &server);
        if let Some(why) = server.down() {
            return Err(Reach::Down(why));
        }
        let _one = m.opening.lock().await;
        if let Some(s) = lock(&m.slot).clone() {
            return Ok(s);
        }
        if self.is_closed() {
            return Err(Reach::Down("the group session has ended".into()));
        }
        let sink = Arc::new(MemberSink {
            inner: Arc::downgrade(self),
            member: i,
        });
        let mut info = self.info.clone();
        info.slot = None;
        let session = self
            .hub
            .open_session(&server, sink, info)
            .await
            .map_err(|e| Reach::Down(format!("server {:?}: {e}", m.name)))?;
        let session = Arc::new(session);
        let answer = self
            .ask(&session, i, self.init_message())
            .await
            .map_err(Reach::Down)?;
        if let Some(e) = answer.error_raw() {
            return Err(Reach::Down(format!(
                "server {:?} refused initialize: {}",
                m.name,
                e.get()
            )));
        }
        *lock(&m.init) = answer
            .result_raw()
            .and_then(|r| serde_json::from_str(r.get()).ok());
        *lock(&m.slot) = Some(session.clone());
        if self.initialized.load(Ordering::SeqCst) {
            session
                .notify(Message::notification("notifications/initialized", None))
                .await;
        }
        Ok(session)
    }

    /// The client's `initialize`, or the hub's own when it sent none.
    fn init_message(&self) -> Message {
        lock(&self.init).clone().unwrap_or_else(|| {
            Message::request(
                0u64.into(),
                "initialize",
                json!({"protocolVersion": LATEST_PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "mcp-hub", "version": env!("CARGO_PKG_VERSION")}}),
            )
        })
    }

    /// Sends the group's own request to a member and waits for its answer.
    /// A server request tied to it has no client to go to and is refused.
    async fn ask(&self, session: &Session, i: usize, mut msg: Message) -> Result<Message, String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        msg.set_id(Id::Str(format!("mcp-hub-group-{n}").into()));
        let (tx, mut rx) = outbound::channel(&self.group.route, &self.info.id);
        session.request(msg, &tx).await;
        loop {
            match rx.recv().await {
                Some(m) if m.is_response() => return Ok(m),
                Some(m) if m.is_request() => {
                    if let Some(id) = m.id().cloned() {
                        let e = Message::error(
                            Some(id),
                            UPSTREAM_ERROR,
                            "mcp-hub cannot route this request to a client: it came during the group's own request",
                        );
                        session.notify(e).await;
                    }
                }
                Some(_) => {}
                None => {
                    return Err(format!(
                        "server {:?}: the session ended before it answered",
                        self.members[i].name
                    ))
                }
            }
        }
    }

    async fn handle(self: Arc<Self>, msg: Message, reply: Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let method = msg.method().unwrap_or("").to_owned();
        let answer = match method.as_str() {
            "initialize" => self.initialize(id, msg).await,
            "ping" => Message::response(id, json!({})),
            "tools/call" => return self.route_named(List::Tools, msg, &reply).await,
            "prompts/get" => return self.route_named(List::Prompts, msg, &reply).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                return self.route_uri(msg, &reply).await
            }
            "completion/complete" => return self.route_completion(msg, &reply).await,
            "logging/setLevel" => {
                let all = (0..self.members.len()).map(|i| {
                    let me = self.clone();
                    let msg = msg.clone();
                    async move {
                        if let Some(s) = me.slot(i) {
                            let _ = me.ask(&s, i, msg).await;
                        }
                    }
                });
                futures_util::future::join_all(all).await;
                Message::response(id, json!({}))
            }
            m => match List::from_method(m) {
                Some(list) => {
                    let items = self.gather(list).await;
                    Message::response(id, json!({ list.field(): items }))
                }
                None => Message::error(
                    Some(id),
                    METHOD_NOT_FOUND,
                    format!("Method not found: {method} (not served on group endpoints)"),
                ),
            },
        };
        push(&reply, answer, &self.sink);
    }

    async fn initialize(self: &Arc<Self>, id: Id, msg: Message) -> Message {
        let asked: Option<String> = msg.param("protocolVersion");
        *lock(&self.init) = Some(msg);
        let opened =
            futures_util::future::join_all((0..self.members.len()).map(|i| self.member(i))).await;
        let mut inits = Vec::new();
        for (i, r) in opened.into_iter().enumerate() {
            let name = self.members[i].name.as_str();
            let result = match r {
                Ok(_) => Ok(lock(&self.members[i].init).clone().unwrap_or_default()),
                Err(Reach::Hidden) => continue,
                Err(Reach::Down(why)) => {
                    self.left_out(name, &why);
                    Err(why)
                }
            };
            inits.push(MemberInit { name, result });
        }
        let hub_name = self.hub.current().settings.name.clone();
        let result = merge::initialize(&self.group.cfg, &hub_name, asked.as_deref(), &inits);
        Message::response(id, result)
    }

    fn left_out(&self, name: &str, why: &str) {
        crate::ratelimit::warn(
            &format!("group-member:{}:{name}", self.group.cfg.name),
            format_args!(
                "group {:?}: leaving out server {name:?}: {why}",
                self.group.cfg.name
            ),
        );
    }

    /// One member's whole list (every page).
    async fn collect(self: &Arc<Self>, i: usize, list: List) -> Result<Vec<Value>, Reach> {
        let session = self.member(i).await?;
        let name = &self.members[i].name;
        let has = lock(&self.members[i].init)
            .as_ref()
            .is_none_or(|r| r["capabilities"].get(list.capability()).is_some());
        if !has {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let ask = self.ask(
                &session,
                i,
                Message::request(0u64.into(), list.method(), params),
            );
            let m = tokio::time::timeout(LIST_TIMEOUT, ask)
                .await
                .map_err(|_| {
                    Reach::Down(format!(
                        "server {name:?} did not answer {} within {}s",
                        list.method(),
                        LIST_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(Reach::Down)?;
            if let Some(e) = m.error_raw() {
                return Err(Reach::Down(format!(
                    "server {name:?} answered {} with an error: {}",
                    list.method(),
                    e.get()
                )));
            }
            let r: Value = m
                .result_raw()
                .and_then(|r| serde_json::from_str(r.get()).ok())
                .unwrap_or_default();
            if let Some(a) = r.get(list.field()).and_then(Value::as_array) {
                out.extend(a.iter().cloned());
            }
            cursor = r
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Every member's list, renamed and merged; members that are down are
    /// left out with a log line.
    async fn gather(self: &Arc<Self>, list: List) -> Vec<Value> {
        let all = (0..self.members.len()).map(|i| self.collect(i, list));
        let results = futures_util::future::join_all(all).await;
        let (mut taken, mut names, mut items) = (HashSet::new(), Names::new(), Vec::new());
        let sep = &self.group.cfg.separator;
        for (i, r) in results.into_iter().enumerate() {
            let name = &self.members[i].name;
            match r {
                Ok(mut got) => {
                    let short = merge::rename(list, i, name, sep, &mut got, &mut taken, &mut names);
                    if let Some((public, full)) = short.first() {
                        crate::ratelimit::warn(
                            &format!("group-short:{}:{name}", self.group.cfg.name),
                            format_args!(
                                "group {:?}: {} name(s) of server {name:?} shortened to fit ^[a-zA-Z0-9_-]{{1,64}}$, e.g. {full:?} is {public:?}",
                                self.group.cfg.name,
                                short.len()
                            ),
                        );
                    }
                    items.extend(got);
                }
                Err(Reach::Hidden) => {}
                Err(Reach::Down(why)) => self.left_out(name, &why),
            }
        }
        if let (List::Tools, Some(f)) = (list, &self.group.cfg.tool_filter) {
            items.retain(|t| t["name"].as_str().is_some_and(|n| f.allows(n)));
        }
        match list {
            // Kept across lists: a member that is down now still routes
            // (and answers that it is down), rather than "unknown tool".
            List::Tools => lock(&self.tools).extend(names),
            List::Prompts => lock(&self.prompts).extend(names),
            _ => {}
        }
        items
    }

    /// The member and its own name for a public tool or prompt name: from
    /// the last list, or by its prefix when it was not shortened, or from a
    /// fresh list.
    async fn resolve(self: &Arc<Self>, list: List, public: &str) -> Option<(usize, String)> {
        let table = |me: &Self| {
            let t = if list == List::Tools {
                &me.tools
            } else {
                &me.prompts
            };
            lock(t).get(public).cloned()
        };
        if let Some(hit) = table(self) {
            return Some(hit);
        }
        let sep = &self.group.cfg.separator;
        let by_prefix = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let own = public
                    .strip_prefix(m.name.as_str())?
                    .strip_prefix(sep.as_str())?;
                (naming::public(&m.name, sep, own) == public).then(|| (i, own.to_string()))
            })
            .max_by_key(|(i, _)| self.members[*i].name.len());
        if by_prefix.is_some() {
            return by_prefix;
        }
        self.gather(list).await;
        table(self)
    }

    async fn route_named(self: &Arc<Self>, list: List, mut msg: Message, reply: &Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let name: String = msg.param("name").unwrap_or_default();
        let what = if list == List::Tools {
            "tool"
        } else {
            "prompt"
        };
        let unknown = |id| {
            let m = if list == List::Tools {
                format!("Unknown tool: {name}")
            } else {
                format!("Unknown prompt: {name}")
            };
            Message::error(Some(id), INVALID_PARAMS, m)
        };
        let blocked = list == List::Tools
            && self
                .group
                .cfg
                .tool_filter
                .as_ref()
                .is_some_and(|f| !f.allows(&name));
        let target = if blocked {
            None
        } else {
            self.resolve(list, &name).await
        };
        let Some((i, own)) = target else {
            return push(reply, unknown(id), &self.sink);
        };
        msg.set_param("name", &to_raw(&own));
        self.forward(i, msg, reply, &format!("{what} {name:?}"))
            .await;
    }

    async fn route_uri(self: &Arc<Self>, mut msg: Message, reply: &Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let uri: String = msg.param("uri").unwrap_or_default();
        let target = naming::private_uri(&uri)
            .and_then(|(server, own)| Some((self.member_index(server)?, own)));
        let Some((i, own)) = target else {
            let e = format!(
                "resource {uri:?} is not one of this group's: its URIs are {}://<server>/<percent-encoded URI>",
                naming::URI_SCHEME
            );
            return push(
                reply,
                Message::error(Some(id), INVALID_PARAMS, e),
                &self.sink,
            );
        };
        msg.set_param("uri", &to_raw(&own));
        self.forward(i, msg, reply, &format!("resource {uri:?}"))
            .await;
    }

    async fn route_completion(self: &Arc<Self>, mut msg: Message, reply: &Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let mut r: Value = msg.param("ref").unwrap_or_default();
        let target = match r["type"].as_str() {
            Some("ref/prompt") => {
                let name = r["name"].as_str().unwrap_or("").to_owned();
                self.resolve(List::Prompts, &name).await.map(|(i, own)| {
                    r["name"] = Value::String(own);
                    i
                })
            }
            Some("ref/resource") => {
                let uri = r["uri"].as_str().unwrap_or("").to_owned();
                naming::private_uri(&uri).and_then(|(server, own)| {
                    let i = self.member_index(server)?;
                    r["uri"] = Value::String(own);
                    Some(i)
                })
            }
            _ => None,
        };
        let Some(i) = target else {
            let e = Message::error(
                Some(id),
                INVALID_PARAMS,
                "params.ref names no prompt or resource of this group",
            );
            return push(reply, e, &self.sink);
        };
        msg.set_param("ref", &to_raw(&r));
        self.forward(i, msg, reply, "completion").await;
    }

    /// Sends a client request to member `i` and relays what comes back for
    /// it to the client's `reply`, until its answer.
    async fn forward(self: &Arc<Self>, i: usize, msg: Message, reply: &Outbound, what: &str) {
        let Some(id) = msg.id().cloned() else { return };
        let session = match self.member(i).await {
            Ok(s) => s,
            Err(Reach::Hidden) => {
                let e = Message::error(Some(id), INVALID_PARAMS, format!("Unknown {what}"));
                return push(reply, e, &self.sink);
            }
            Err(Reach::Down(why)) => {
                let e = Message::error(
                    Some(id),
                    UPSTREAM_ERROR,
                    format!("{what} is unavailable: {why}"),
                );
                return push(reply, e, &self.sink);
            }
        };
        lock(&self.calls).insert(id.clone(), i);
        let (tx, mut rx) = outbound::channel(&self.group.route, &self.info.id);
        session.request(msg, &tx).await;
        let mut answered = false;
        while let Some(m) = rx.recv().await {
            if m.is_response() {
                push(reply, m, &self.sink);
                answered = true;
                break;
            }
            if m.is_request() {
                self.ask_client(i, m, Some(reply));
            } else {
                push(reply, m, &self.sink);
            }
        }
        lock(&self.calls).remove(&id);
        if !answered {
            let e = Message::error(
                Some(id),
                UPSTREAM_ERROR,
                format!(
                    "server {:?}: the session ended before it answered",
                    self.members[i].name
                ),
            );
            push(reply, e, &self.sink);
        }
    }

    /// A member's request for the client (sampling, elicitation, roots): to
    /// the client under a group id, on the call's stream when it came with
    /// one; refused when there is no client to ask.
    fn ask_client(self: &Arc<Self>, i: usize, mut m: Message, reply: Option<&Outbound>) {
        let Some(up) = m.id().cloned() else { return };
        if !self.can_ask {
            let method = m.method().unwrap_or("request").to_owned();
            if let Some(s) = self.slot(i) {
                tokio::spawn(async move {
                    let e = Message::error(
                        Some(up),
                        UPSTREAM_ERROR,
                        format!("mcp-hub cannot route {method} to a client: this request came through a view with no MCP client to ask"),
                    );
                    s.notify(e).await;
                });
            }
            return;
        }
        let g = self.seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.asks).insert(g, (i, up));
        m.set_id(g.into());
        match reply {
            Some(r) => push(r, m, &self.sink),
            None => self.sink.deliver(m),
        }
    }

    async fn notify(&self, mut msg: Message) {
        if msg.is_response() {
            let Some(g) = msg.id().and_then(Id::as_u64) else {
                return;
            };
            let Some((i, up)) = lock(&self.asks).remove(&g) else {
                return;
            };
            let Some(s) = self.slot(i) else {
                return;
            };
            msg.set_id(up);
            s.notify(msg).await;
            return;
        }
        match msg.method() {
            Some("notifications/cancelled") => {
                let Some(id) = msg
                    .param::<Value>("requestId")
                    .and_then(|v| Id::from_value(&v))
                else {
                    return;
                };
                let Some(i) = lock(&self.calls).get(&id).copied() else {
                    return;
                };
                if let Some(s) = self.slot(i) {
                    s.notify(msg).await;
                }
            }
            method => {
                if method == Some("notifications/initialized") {
                    self.initialized.store(true, Ordering::SeqCst);
                }
                let open: Vec<_> = self
                    .members
                    .iter()
                    .filter_map(|m| lock(&m.slot).clone())
                    .collect();
                for s in open {
                    s.notify(msg.clone()).await;
                }
            }
        }
    }
}

/// Pushes to a call's stream; what is not an answer falls back to the
/// session-wide stream when the call's has closed, as for a server session.
fn push(reply: &Outbound, m: Message, sink: &Arc<dyn Downstream>) {
    if let Err(Refused::Closed(m)) = reply.push(m) {
        if !m.is_response() {
            sink.deliver(m);
        }
    }
}
