//! Per-client limits (`rate`, `maxConcurrent` of `mcpProxy.options.clients`):
//! a token bucket of requests and a count of requests in flight, per named
//! client, so one client can never use up another's share. The state
//! outlives reloads: a client keeps its bucket while its limits are unchanged
//! (a reload every few seconds must not refill it).

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

#[derive(Default)]
pub struct Limits {
    clients: Mutex<HashMap<Arc<str>, Arc<Entry>>>,
}

struct Entry {
    rate: Option<(Rate, DefaultDirectRateLimiter)>,
    concurrent: Option<(usize, Arc<Semaphore>)>,
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
        }
    }

    fn fits(&self, c: &Client) -> bool {
        self.rate.as_ref().map(|(r, _)| *r) == c.rate
            && self.concurrent.as_ref().map(|(n, _)| *n) == c.max_concurrent
    }
}

/// A client over one of its limits.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("client {client} is over its rate of {count}/{per}s (mcpProxy.options.clients.{client}.rate); retry in {}s", retry_after.as_secs().max(1))]
    Rate {
        client: Arc<str>,
        count: u32,
        per: u64,
        retry_after: Duration,
    },
    #[error("client {client} has {max} requests in flight (mcpProxy.options.clients.{client}.maxConcurrent); retry when one is answered")]
    Concurrent { client: Arc<str>, max: usize },
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
        let entry = {
            let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(&client.name) {
                Some(e) if e.fits(client) => e.clone(),
                _ => {
                    let e = Arc::new(Entry::new(client));
                    m.insert(client.name.clone(), e.clone());
                    e
                }
            }
        };
        if let Some((r, bucket)) = &entry.rate {
            let n = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
            let refused = |retry_after| Refused::Rate {
                client: client.name.clone(),
                count: r.count,
                per: r.per.as_secs(),
                retry_after,
            };
            match bucket.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    crate::metrics::global()
                        .client(&client.name, crate::metrics::ClientOutcome::RateLimited);
                    return Err(refused(
                        not_until.wait_time_from(DefaultClock::default().now()),
                    ));
                }
                // A batch larger than the burst can never fit.
                Err(_) => {
                    crate::metrics::global()
                        .client(&client.name, crate::metrics::ClientOutcome::RateLimited);
                    return Err(refused(r.per));
                }
            }
        }
        let count = |o| crate::metrics::global().client(&client.name, o);
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
                            max: *max,
                        });
                    }
                }
            }
        };
        Ok(Admitted { _slot: slot })
    }

    /// Forgets clients a reload removed.
    pub fn retain(&self, clients: &[Arc<Client>]) {
        let mut m = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|name, _| clients.iter().any(|c| c.name == *name));
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
}
