//! The one table of request-scoped exchanges for an upstream.
//!
//! An exchange is a client request on its way through the hub: the upstream
//! id the hub gave it, the client session and id it came with, its progress
//! token, its deadline, and its reply sink (the stream its answer, progress
//! and any server→client request provably tied to it go to). Shared and
//! per-client mode use the same table; it is plain data, so its invariants are
//! unit-tested without an upstream or a clock.

use super::outbound::Outbound;
use super::Audit;
use crate::jsonrpc::Id;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
// tokio's clock, so tests can pause it.
use tokio::time::Instant;

pub struct Exchange {
    pub client: u64,
    /// The client's own id, given back on the answer.
    pub orig: Id,
    /// The client's own progress token, when it asked for progress.
    pub progress: Option<Box<RawValue>>,
    pub method: Box<str>,
    pub deadline: Instant,
    pub reply: Outbound,
    pub audit: Option<Audit>,
    /// Its metrics, finished with the answer its client gets.
    pub call: Option<crate::metrics::Call>,
    /// The client speaks 2026-07-28 itself: its answers pass untranslated.
    pub client_modern: bool,
    /// Toward a 2026-07-28 upstream for a 2025 client: the request as sent,
    /// to retry it with the client's answers (MRTR).
    pub retry: Option<crate::jsonrpc::Message>,
    /// The MRTR round in progress, if the upstream asked for input.
    pub mrtr: Option<Mrtr>,
    /// A question the server asked during this request waits for the
    /// client's answer (a held 2026-07-28 call, a 2025 client's elicitation).
    /// Such a request does not make another client's question ambiguous: the
    /// server is waiting on it, not asking for it.
    pub asked: bool,
}

/// One round of "input required" the hub drives for a 2025 client.
#[derive(Default)]
pub struct Mrtr {
    pub state: Option<Box<RawValue>>,
    pub pending: Vec<String>,
    pub answers: indexmap::IndexMap<String, Box<RawValue>>,
    pub rounds: u32,
}

/// A second request with an id the same client still has in flight; the
/// exchange comes back, to be answered with an error.
pub struct Duplicate(pub Box<Exchange>);

impl std::fmt::Debug for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Duplicate")
    }
}

#[derive(Default)]
pub struct InFlight {
    /// By upstream id; ordered, so the newest exchange is the last.
    by_up: BTreeMap<u64, Exchange>,
    by_client: HashMap<(u64, Id), u64>,
    next: u64,
}

impl InFlight {
    /// A fresh hub id toward the upstream (requests, pings, server requests'
    /// ids toward clients share one counter, so they never collide).
    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn begin(&mut self, ex: Exchange) -> Result<u64, Duplicate> {
        let key = (ex.client, ex.orig.clone());
        if self.by_client.contains_key(&key) {
            return Err(Duplicate(Box::new(ex)));
        }
        let up = self.next_id();
        self.by_client.insert(key, up);
        self.by_up.insert(up, ex);
        Ok(up)
    }

    pub fn complete(&mut self, up: u64) -> Option<Exchange> {
        let ex = self.by_up.remove(&up)?;
        self.by_client.remove(&(ex.client, ex.orig.clone()));
        Some(ex)
    }

    pub fn get(&self, up: u64) -> Option<&Exchange> {
        self.by_up.get(&up)
    }

    pub fn get_mut(&mut self, up: u64) -> Option<&mut Exchange> {
        self.by_up.get_mut(&up)
    }

    /// Puts an exchange back under its id (an MRTR round keeps it in flight).
    pub fn put(&mut self, up: u64, ex: Exchange) {
        self.by_client.insert((ex.client, ex.orig.clone()), up);
        self.by_up.insert(up, ex);
    }

    /// The exchange a client's own id names (its cancellation).
    pub fn by_client(&self, client: u64, orig: &Id) -> Option<u64> {
        self.by_client.get(&(client, orig.clone())).copied()
    }

    pub fn expired(&mut self, now: Instant) -> Vec<(u64, Exchange)> {
        let ids: Vec<u64> = self
            .by_up
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        ids.into_iter()
            .filter_map(|up| self.complete(up).map(|e| (up, e)))
            .collect()
    }

    pub fn drain(&mut self) -> Vec<(u64, Exchange)> {
        self.by_client.clear();
        std::mem::take(&mut self.by_up).into_iter().collect()
    }

    pub fn drain_client(&mut self, client: u64) -> Vec<(u64, Exchange)> {
        let ids: Vec<u64> = self
            .by_up
            .iter()
            .filter(|(_, e)| e.client == client)
            .map(|(k, _)| *k)
            .collect();
        ids.into_iter()
            .filter_map(|up| self.complete(up).map(|e| (up, e)))
            .collect()
    }

    /// The one client with requests in flight, if exactly one has any, and
    /// its newest exchange: the only exact attribution stdio allows for a
    /// server→client request.
    ///
    /// Requests that wait on a question of their own are left out while any
    /// other is in flight, so a held call does not make every other client's
    /// question ambiguous; with only such requests in flight, they count.
    pub fn sole_client(&self) -> Option<(u64, u64)> {
        let sole = |unasked: bool| {
            let mut it = self
                .by_up
                .iter()
                .rev()
                .filter(|(_, e)| !(unasked && e.asked));
            let (newest, first) = it.next()?;
            let client = first.client;
            it.all(|(_, e)| e.client == client)
                .then_some((client, *newest))
        };
        if self.by_up.values().any(|e| !e.asked) {
            sole(true)
        } else {
            sole(false)
        }
    }

    /// How many clients have requests in flight.
    pub fn clients_waiting(&self) -> usize {
        let unasked = self.by_up.values().any(|e| !e.asked);
        let mut seen: Vec<u64> = self
            .by_up
            .values()
            .filter(|e| !(unasked && e.asked))
            .map(|e| e.client)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    pub fn len(&self) -> usize {
        self.by_up.len()
    }

    /// Some exchange is not waiting on a question of its own.
    pub fn working(&self) -> bool {
        self.by_up.values().any(|e| !e.asked)
    }

    pub fn is_empty(&self) -> bool {
        self.by_up.is_empty()
    }

    pub fn soonest_deadline(&self) -> Option<Instant> {
        self.by_up.values().map(|e| e.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::outbound;
    use std::time::Duration;

    fn ex(client: u64, id: u64, at: Instant) -> Exchange {
        Exchange {
            client,
            orig: id.into(),
            progress: None,
            method: "m".into(),
            deadline: at,
            reply: outbound::channel("s", "c").0,
            audit: None,
            call: None,
            client_modern: false,
            retry: None,
            mrtr: None,
            asked: false,
        }
    }

    #[test]
    fn same_id_from_two_clients_is_fine_twice_from_one_is_not() {
        let now = Instant::now();
        let mut t = InFlight::default();
        let a = t.begin(ex(1, 1, now)).unwrap();
        let b = t.begin(ex(2, 1, now)).unwrap();
        assert_ne!(a, b);
        assert!(t.begin(ex(1, 1, now)).is_err());
        assert_eq!(t.complete(a).unwrap().client, 1);
        // Once answered, the id is free again.
        assert!(t.begin(ex(1, 1, now)).is_ok());
    }

    #[test]
    fn sole_client_only_when_exactly_one_waits() {
        let now = Instant::now();
        let mut t = InFlight::default();
        assert_eq!(t.sole_client(), None);
        let a = t.begin(ex(1, 1, now)).unwrap();
        let a2 = t.begin(ex(1, 2, now)).unwrap();
        assert_eq!(t.sole_client(), Some((1, a2)));
        let b = t.begin(ex(2, 1, now)).unwrap();
        assert_eq!(t.sole_client(), None);
        assert_eq!(t.clients_waiting(), 2);
        t.complete(a);
        t.complete(a2);
        assert_eq!(t.sole_client(), Some((2, b)));
    }

    #[test]
    fn expiry_and_drains() {
        let now = Instant::now();
        let mut t = InFlight::default();
        t.begin(ex(1, 1, now)).unwrap();
        t.begin(ex(1, 2, now + Duration::from_secs(10)))
            .ok()
            .unwrap();
        t.begin(ex(2, 1, now + Duration::from_secs(10)))
            .ok()
            .unwrap();
        assert_eq!(t.expired(now).len(), 1);
        assert_eq!(t.drain_client(1).len(), 1);
        assert!(t.by_client(2, &1u64.into()).is_some());
        assert_eq!(t.drain().len(), 1);
        assert!(t.is_empty());
    }
}
