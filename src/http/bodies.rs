//! Request bodies, bounded each (`maxBodySize`) and together
//! (`maxBodiesInFlight`): one hub-wide budget of the bytes that request
//! bodies cost while they are read, parsed and handed on.
//!
//! `maxBodySize` alone lets 16 clients send 3 MB each at once, and every one
//! of those bodies is held whole, then parsed into a message of about its own
//! size, then written upstream as a line of about its size again: about 100
//! MiB in flight for 48 MB sent. So each body is charged twice its length —
//! its bytes, then the message made of them (and the line it becomes) — from
//! the moment it is admitted until its transport has handed the message on
//! (the caller holds the [`Charge`]). With a `Content-Length` the whole
//! charge is taken before a byte is read, so a body that must wait costs the
//! hub nothing while it waits (it stays in the client's socket); a chunked
//! body is charged as its chunks arrive.
//!
//! A body that finds the budget full waits for room until its
//! `bodyReadTimeout` runs out, then is refused with 503 naming the limit.
//! Bodies of up to [`SMALL`] bytes may use the whole budget, larger ones only
//! seven eighths of it, so ordinary requests still get through while large
//! ones queue. A body that would not fit in an empty budget is admitted when
//! it is alone, so a budget set below `maxBodySize` slows large bodies down
//! to one at a time instead of refusing them all.

use super::response::Rejection;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A body this small (a normal call) may use the budget's last eighth.
pub const SMALL: usize = 64 << 10;

/// What each byte of a body is charged: the bytes, then their message.
const FACTOR: usize = 2;

/// The budget every request body of this process draws on (one hub per process).
static BODIES: Budget = Budget::new();

/// Bytes charged to bodies in flight, and a wake-up for those waiting.
pub struct Budget {
    used: Mutex<usize>,
    freed: Notify,
}

/// The budget had no room before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("request bodies in flight exceed their budget of {limit} bytes")]
pub struct Full {
    pub limit: usize,
}

impl Budget {
    pub const fn new() -> Budget {
        Budget {
            used: Mutex::new(0),
            freed: Notify::const_new(),
        }
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `more` to `charge`, waiting until `deadline` for room under `limit`.
    pub async fn grow(
        &'static self,
        charge: &mut Charge,
        more: usize,
        limit: usize,
        deadline: Instant,
    ) -> Result<(), Full> {
        if more == 0 {
            return Ok(());
        }
        let total = charge.bytes + more;
        // Large bodies leave the last eighth to small ones.
        let cap = if total <= SMALL * FACTOR {
            limit
        } else {
            limit - limit / 8
        };
        loop {
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
                let alone = *used == charge.bytes;
                if alone || *used + more <= cap {
                    *used += more;
                    charge.bytes = total;
                    charge.budget = Some(self);
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(Full { limit });
            }
        }
    }

    fn release(&self, bytes: usize) {
        {
            let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            *used = used.saturating_sub(bytes);
        }
        self.freed.notify_waiters();
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

/// One request's share of the budget, given back when it is dropped: hold it
/// until the body's message has been handed on.
#[derive(Default)]
pub struct Charge {
    bytes: usize,
    budget: Option<&'static Budget>,
}

impl Charge {
    /// Bytes this charge holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.release(self.bytes);
        }
    }
}

/// Reads a request body up to `maxBodySize` bytes (past it, 413) within
/// `bodyReadTimeout` (past it, 408: a client trickling a byte a second must
/// not hold a connection and its task forever), charged to the hub's budget
/// of bodies in flight (no room before the timeout: 503). The caller holds
/// the [`Charge`] until the body's message is handed on.
pub async fn read_body(
    req: http::Request<hyper::body::Incoming>,
    settings: &crate::config::HubSettings,
) -> Result<(Bytes, Charge), Rejection> {
    read_within(req, settings, &BODIES).await
}

async fn read_within(
    req: http::Request<hyper::body::Incoming>,
    settings: &crate::config::HubSettings,
    budget: &'static Budget,
) -> Result<(Bytes, Charge), Rejection> {
    let limit = settings.max_body;
    let room = settings.max_bodies_in_flight;
    let deadline = Instant::now() + settings.body_read_timeout;
    let full = |_: Full| Rejection::Bodies(room);
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut charge = Charge::default();
    if let Some(n) = declared {
        if n > limit {
            return Err(Rejection::TooLarge(limit));
        }
        budget
            .grow(&mut charge, n * FACTOR, room, deadline)
            .await
            .map_err(full)?;
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0));
    let mut body = req.into_body();
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .map_err(|_| Rejection::BodyTimeout(settings.body_read_timeout))?;
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(Rejection::BodyRead(e.to_string())),
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue, // trailers
            },
        };
        let len = buf.len() + data.len();
        if len > limit {
            return Err(Rejection::TooLarge(limit));
        }
        // A chunked body (or one longer than it said) is charged as it comes.
        let more = (len * FACTOR).saturating_sub(charge.bytes);
        budget
            .grow(&mut charge, more, room, deadline)
            .await
            .map_err(full)?;
        buf.extend_from_slice(&data);
    }
    Ok((Bytes::from(buf), charge))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget() -> &'static Budget {
        Box::leak(Box::new(Budget::new()))
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_charge_is_given_back_when_dropped() {
        let b = budget();
        let mut c = Charge::default();
        b.grow(&mut c, 1000, 4096, soon(10)).await.unwrap();
        b.grow(&mut c, 24, 4096, soon(10)).await.unwrap();
        assert_eq!((c.bytes(), b.used()), (1024, 1024));
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn a_full_budget_makes_a_large_body_wait_then_refuses_it() {
        let b = budget();
        let limit = 8 * SMALL * FACTOR;
        let mut first = Charge::default();
        b.grow(&mut first, 6 * SMALL * FACTOR, limit, soon(10))
            .await
            .unwrap();
        let mut second = Charge::default();
        let e = b
            .grow(&mut second, 2 * SMALL * FACTOR, limit, soon(50))
            .await
            .unwrap_err();
        assert_eq!(e.limit, limit);
        assert_eq!(second.bytes(), 0);
        // Room made while it waits lets it in.
        let waiting = tokio::spawn(async move {
            let mut c = Charge::default();
            b.grow(&mut c, 2 * SMALL * FACTOR, limit, soon(2000))
                .await
                .map(|()| c.bytes())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert_eq!(waiting.await.unwrap().unwrap(), 2 * SMALL * FACTOR);
    }

    #[tokio::test]
    async fn small_bodies_keep_the_last_eighth() {
        let b = budget();
        let limit = 8 * SMALL * FACTOR;
        let mut large = Charge::default();
        b.grow(&mut large, 7 * SMALL * FACTOR, limit, soon(10))
            .await
            .unwrap();
        let mut more = Charge::default();
        assert!(b
            .grow(&mut more, SMALL * 2 * FACTOR, limit, soon(10))
            .await
            .is_err());
        let mut small = Charge::default();
        b.grow(&mut small, SMALL * FACTOR, limit, soon(10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_passes_alone() {
        let b = budget();
        let mut c = Charge::default();
        b.grow(&mut c, 10_000, 100, soon(10)).await.unwrap();
        b.grow(&mut c, 10_000, 100, soon(10)).await.unwrap();
        let mut other = Charge::default();
        assert!(b.grow(&mut other, 10, 100, soon(10)).await.is_err());
        drop(c);
        b.grow(&mut other, 10_000, 100, soon(10)).await.unwrap();
    }
}
