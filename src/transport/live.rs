//! Live client state: everything a client holds open on this hub between
//! its requests, in one registry with one expiry task.
//!
//! - legacy SSE sessions (they live as long as their stream);
//! - streamable sessions, a server's or a group's (they live until DELETE,
//!   `sessionIdleTimeout` with no open stream, or their upstream's end);
//! - calls held for a modern client's answers (MRTR: [`hold`], [`hold::TTL`]);
//! - the OpenAPI facade's sessions on per-client servers (they live as long
//!   as their upstream).
//!
//! The two session transports share one id space and one lock: an id names
//! one session whatever transport made it, and a lookup costs the same on
//! both. One task ([`spawn_expiry`]) ends what has expired on every pass and
//! ends everything at shutdown, so no kind of client state has an expiry
//! rule of its own somewhere else.
//!
//! Not here: a group's roster (`hub::GroupEntry`) is an index of the group's
//! live sessions by group, for a reload to end them; the sessions themselves
//! are entries here.

use super::hold;
use super::Ctx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the expiry task looks. A held call's TTL and an idle session's
/// timeout are seconds or more; a quarter second is close enough for both.
const EVERY: Duration = Duration::from_millis(250);

/// Which transport made a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sse,
    Streamable,
}

/// A client session as the registry holds it. The transports' own types
/// say what each rule means for them (`transport::Session`).
pub trait Entry: Clone + Send + 'static {
    fn kind(&self) -> Kind;
    /// Ended, or idle past `idle_timeout` at `now`: the expiry task takes
    /// it out and [`Entry::close`]s it.
    fn expired(&self, now: Instant, idle_timeout: Duration) -> bool;
    /// Since when it has been idle (no open stream, not closed), if it
    /// belongs to `owner` and may be closed to make room for another.
    fn idle_of(&self, owner: &str) -> Option<Instant>;
    fn close(&self);
    /// Ends it because it [`Entry::expired`] (logs may say so).
    fn expire(&self) {
        self.close()
    }
}

pub struct Live<E> {
    sessions: Mutex<HashMap<String, E>>,
    /// Modern calls waiting for their client's answers.
    pub holds: hold::Table,
    /// The OpenAPI facade's sessions on per-client servers, and the tool
    /// lists it caches.
    pub facades: crate::views::openapi::Facades,
}

/// How much live state there is, by kind: for `/status` and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sse: usize,
    pub streamable: usize,
    pub held: usize,
    pub facades: usize,
}

impl<E: Entry> Live<E> {
    /// `hub_id` prefixes held calls' handles (`mcpProxy.options.hubId`).
    pub fn new(hub_id: Option<&str>) -> Live<E> {
        Live {
            sessions: Mutex::default(),
            holds: hold::Table::new(hub_id),
            facades: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, E>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn insert(&self, id: String, entry: E) {
        self.lock().insert(id, entry);
    }

    pub(super) fn remove(&self, id: &str) -> Option<E> {
        self.lock().remove(id)
    }

    pub(super) fn get(&self, id: &str) -> Option<E> {
        self.lock().get(id).cloned()
    }

    pub fn counts(&self) -> Counts {
        let (mut sse, mut streamable) = (0, 0);
        for e in self.lock().values() {
            match e.kind() {
                Kind::Sse => sse += 1,
                Kind::Streamable => streamable += 1,
            }
        }
        Counts {
            sse,
            streamable,
            held: self.holds.len(),
            facades: self.facades.len(),
        }
    }

    /// Takes `owner`'s least recently used idle session out of the
    /// registry, if it has one.
    pub(super) fn take_idle_of(&self, owner: &str) -> Option<E> {
        let mut map = self.lock();
        let id = map
            .iter()
            .filter_map(|(id, e)| e.idle_of(owner).map(|t| (t, id)))
            .min()
            .map(|(_, id)| id.clone())?;
        map.remove(&id)
    }

    /// One pass: what has expired leaves the registry and is ended. Ending
    /// happens outside the lock: closing a session reaches its upstream.
    fn sweep(&self, idle_timeout: Duration) {
        let now = Instant::now();
        let expired: Vec<E> = {
            let mut map = self.lock();
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, e)| e.expired(now, idle_timeout))
                .map(|(k, _)| k.clone())
                .collect();
            ids.iter().filter_map(|k| map.remove(k)).collect()
        };
        for e in expired {
            e.expire();
        }
        self.holds.expire();
        self.facades.sweep();
    }

    /// Shutdown: every session, held call and facade session ends.
    fn end_all(&self) {
        self.holds.clear();
        let all: Vec<E> = self.lock().drain().map(|(_, e)| e).collect();
        for e in all {
            e.close();
        }
        self.facades.clear();
    }
}

/// The one expiry task. `sessionIdleTimeout` is read on every pass, so a
/// reload changes it at once.
pub fn spawn_expiry(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        let mut shutdown = ctx.shutdown.clone();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {
                    ctx.live.end_all();
                    return;
                }
            }
            let timeout = ctx.endpoint.current().settings.session_idle_timeout;
            ctx.live.sweep(timeout);
        }
    });
}
