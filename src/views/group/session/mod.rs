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
//!
//! Here: the members (opened, initialized, watched, closed) and what the
//! client sends besides requests. `fanout`: the group's own answers
//! (`initialize`, the lists); `route`: requests for one member.

mod fanout;
mod route;

use super::merge::Names;
use super::naming;
use crate::hub::{GroupEntry as Group, Retire};
use crate::hub::{Hub, Server};
use crate::jsonrpc::{to_raw, Id, Message};
use crate::session::outbound::{Outbound, Refused};
use crate::session::{Downstream, OnServerRequest, Session, SessionInfo};
use crate::upstream::link::LinkState;
use serde_json::{json, Value};
use std::collections::HashMap;
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

/// Ends the session and its client's streams (a reload changed the group).
impl Retire for Inner {
    fn retire(&self, why: &str) {
        self.shut();
        tracing::info!(mcp_server = %self.group.route, mcp_session = %self.info.id, "group session ended: {why}");
        self.sink.closed(why);
    }
}

impl crate::session::ask::Asker for GroupSession {
    fn send(&self, msg: Message, reply: &Outbound) -> impl std::future::Future<Output = ()> + Send {
        self.request(msg, reply)
    }
    fn tell(&self, msg: Message) -> impl std::future::Future<Output = ()> + Send {
        self.notify(msg)
    }
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

    /// What the group's roster keeps of it, to end it at a reload.
    pub(super) fn downgrade(&self) -> Weak<dyn Retire> {
        let w: Weak<Inner> = Arc::downgrade(&self.0);
        w
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

    /// Whether the member's own tokens accept the client's. A named client
    /// the group is open to sees every member (its `tools` rules narrow
    /// what it sees of each).
    fn visible(&self, server: &Server) -> bool {
        let tokens = &server.cfg.auth_tokens;
        tokens.is_empty()
            || self.info.client.is_some()
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
                crate::mcp::hub_initialize(json!({})),
            )
        })
    }

    /// Sends the group's own request to a member and waits for its answer.
    /// A server request tied to it has no client to go to and is refused.
    async fn ask(&self, session: &Session, i: usize, mut msg: Message) -> Result<Message, String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        msg.set_id(Id::Str(format!("mcp-hub-group-{n}").into()));
        crate::session::ask(
            session,
            msg,
            OnServerRequest::Refuse(
crate::jsonrpc::UPSTREAM_ERROR,
"mcp-hub cannot route this request to a client: it came during the group's own request",
            ),
            None,
            (&self.group.route, &self.info.id),
        )
        .await
        .map_err(|e| format!("server {:?}: {e}", self.members[i].name))
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
