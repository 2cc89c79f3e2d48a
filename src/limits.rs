//! Per-client limits (`rate`, `maxConcurrent` of `mcpProxy.options.clients`):
//! a token bucket of requests and a count of requests in flight, per named
//! client, so one client can never use up another's share. The state
//! outlives reloads: a client keeps its bucket while its limits are unchanged
//! (a reload every few seconds must not refill it).
//!
//! Callers signed in through the identity provider each have their own
//! entry, and anyone may sign in: the table forgets entries unused for
//! [`FORGET_AFTER`] once it holds [`MAX_ENTRIES`], so it stays bounded.

use crate::config::clients::{Client, Rate};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request over `maxConcurrent` waits for a slot before 429.
pub const CONCURRENT_WAIT: Duration = Duration::from_secs(1);

/// Entries kept before the unused ones are forgotten.
pub const MAX_ENTRIES: usize = 10_000;
/// An entry unused this long may be forgotten (its bucket has long refilled).
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Limits {
    clients: Mutex<HashMap<Arc<str>, Arc<Entry>>>,
}

struct Entry {
    rate: Option<(Rate, DefaultDirectRateLimiter)>,
    concurrent: Option<(usize, Arc<Semaphore>)>,
    last_used: Mutex<tokio::time::Instant>,
}

impl Entry {
    fn new(c: &Client) -> Entry {
        Entry {
            rate: c.rate.map(|r| {
                let burst = NonZeroU32::new(r.count).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(r.per / r.count)
                    .unwrap_or_else(|| Quota::per_second(burst))
                    .allow_burst(burst);
                (r, RateLimiter::direct(quota))
            }),
            concurrent: c.max_concurrent.map(|n| (n, Arc::new(Semaphore::new(n)))),
            last_used: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Whether it may be forgotten: unused for a while, nothing in flight.
    fn idle(&self) -> bool {
        let since = self
            .last_used
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default();
        since >= FORGET_AFTER
            && self
                .concurrent
                .as_ref()
                .is_none_or(|(n, s)| s.available_permits() == *n)
    }

    fn fits(&self, c: &Client) -> bool {
        self.rate.as_ref().map(|(r, _)| *r) == c.rate
            && self.concurrent.as_ref().map(|(n, _)| *n) == c.max_concurrent
    }
}

/// A client over one of its limits.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("client {client} is over its rate of {count}/{per}s ({policy}.rate); retry in {}s", retry_after.as_secs().max(1))]
    Rate {
        client: Arc<str>,
        /// Where its limits are written.
        policy: Arc<str>,
        count: u32,
        per: u64,
        retry_after: Duration,
    },
    #[error("client {client} has {max} requests in flight ({policy}.maxConcurrent); retry when one is answered")]
    Concurrent {
        client: Arc<str>,
        policy: Arc<str>,
        max: usize,
    },
}

impl Refused {
    /// What `Retry-After` says, in whole seconds.
    pub fn retry_after(&self) -> u64 {
        match self {
            Refused::Rate { retry_after, .. } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
            Refused::Concurrent { .. } => 1,
        }
    }
}

/// A request let through; while it lives, it counts as in flight.
#[derive(Debug)]
pub struct Admitted {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Limits {
    /// Lets `requests` JSON-RPC requests of `client` through, or says which
    /// limit they are over. A request over `maxConcurrent` waits up to
    /// [`CONCURRENT_WAIT`] for another to finish.
    pub async fn admit(&self, client: &Client, requests: u32) -> Result<Admitted, Refused> {
        if requests == 0 || (client.rate.is_none() && client.max_concurrent.is_none()) {
            return Ok(Admitted { _slot: None });
        }
        let key: Arc<str> = client.caller_key().into();
        let entry = {
            let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(&key) {
                Some(e) if e.fits(client) => e.clone(),
                _ => {
                    if m.len() >= MAX_ENTRIES {
                        m.retain(|_, e| !e.idle());
                    }
                    let e = Arc::new(Entry::new(client));
                    m.insert(key, e.clone());
                    e
                }
            }
        };
        if let Ok(mut t) = entry.last_used.lock() {
            *t = tokio::time::Instant::now();
        }
        if let Some((r, bucket)) = &entry.rate {
            let n = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
            let refused = |retry_after| Refused::Rate {
                client: client.name.clone(),
                policy: client.policy.clone(),
                count: r.count,
                per: r.per.as_secs(),
                retry_after,
            };
            match bucket.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    crate::metrics::global()
                        .client(&client.label, crate::metrics::ClientOutcome::RateLimited);
                    return Err(refused(
                        not_until.wait_time_from(DefaultClock::default().now()),
                    ));
                }
                // A batch larger than the burst can never fit.
                Err(_) => {
                    crate::metrics::global()
                        .client(&client.label, crate::metrics::ClientOutcome::RateLimited);
                    return Err(refused(r.per));
                }
            }
        }
        let count = |o| crate::metrics::global().client(&client.label, o);
        let slot = match &entry.concurrent {
            None => None,
            Some((max, sem)) => {
                match tokio::time::timeout(
                    CONCURRENT_WAIT,
                    sem.clone().acquire_many_owned(requests.min(*max as u32)),
                )
                .await
                {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        count(crate::metrics::ClientOutcome::Concurrent);
                        return Err(Refused::Concurrent {
                            client: client.name.clone(),
                            policy: client.policy.clone(),
                            max: *max,
                        });
                    }
                }
            }
        };
        Ok(Admitted { _slot: slot })
    }

    /// Forgets clients a reload removed (signed-in callers are forgotten
    /// when idle, see [`MAX_ENTRIES`]).
    pub fn retain(&self, clients: &[Arc<Client>]) {
        let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|key, _| {
            key.starts_with("oidc:") || clients.iter().any(|c| c.caller_key() == **key)
        });
    }

    /// Entries held now (tests).
    pub fn len(&self) -> usize {
        self.clients.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(rate: Option<Rate>, max_concurrent: Option<usize>) -> Client {
        Client {
            name: "laptop".into(),
            key: [0; 32],
            previous: vec![],
            servers: None,
            groups: vec![],
            tools: Default::default(),
            rate,
            max_concurrent,
            max_sessions: 1,
            label: "laptop".into(),
            subject: None,
            policy: "mcpProxy.options.clients.laptop".into(),
        }
    }

    #[tokio::test]
    async fn a_burst_of_the_rate_then_429_with_a_wait() {
        let l = Limits::default();
        let c = client(
            Some(Rate {
                count: 5,
                per: Duration::from_secs(1),
            }),
            None,
        );
        for _ in 0..5 {
            l.admit(&c, 1).await.unwrap();
        }
        let e = l.admit(&c, 1).await.unwrap_err();
        assert!(e.to_string().contains("clients.laptop.rate"), "{e}");
        assert_eq!(e.retry_after(), 1);
        // Another client has a bucket of its own.
        let mut other = c.clone();
        other.name = "desktop".into();
        l.admit(&other, 1).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_over_the_cap_waits_then_is_refused() {
        let l = Limits::default();
        let c = client(None, Some(2));
        let a = l.admit(&c, 1).await.unwrap();
        let _b = l.admit(&c, 1).await.unwrap();
        let e = l.admit(&c, 1).await.unwrap_err();
        assert!(e.to_string().contains("maxConcurrent"), "{e}");
        drop(a);
        l.admit(&c, 1).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn many_signed_in_callers_do_not_grow_the_table_without_bound() {
        let l = Limits::default();
        let mut c = client(None, Some(1));
        c.subject = Some("s".into());
        for i in 0..MAX_ENTRIES {
            c.name = format!("u{i}").into();
            l.admit(&c, 1).await.unwrap();
        }
        assert_eq!(l.len(), MAX_ENTRIES);
        // In use a moment ago: kept (their buckets must not refill).
        c.name = "late".into();
        l.admit(&c, 1).await.unwrap();
        assert_eq!(l.len(), MAX_ENTRIES + 1);
        tokio::time::advance(FORGET_AFTER).await;
        c.name = "later".into();
        l.admit(&c, 1).await.unwrap();
        assert!(l.len() <= 2, "{}", l.len());
    }
}
