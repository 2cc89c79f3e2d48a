//! Connection admission: open connections, in total and per client address,
//! against `maxConnections` and `maxConnectionsPerIp`. Without them a
//! neighbour with a few thousand silent connections takes every file
//! descriptor.
//!
//! A total cap alone is a lock-out any address can cause without a token:
//! fill it with connections that never speak. So connections that are not in
//! a request are kept in admission order, those that never sent a request
//! head first, then those idle between requests, and when the total is
//! reached the oldest of them is closed to admit the newcomer. Only when
//! every open connection is in a request (or streaming its answer) is a
//! newcomer refused.

use super::response::Body;
use hyper::body::{Bytes, Frame, SizeHint};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::sync::Notify;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where an evictable connection waits: never spoke, or idle after answers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Queue {
    Silent,
    Idle,
}

#[derive(Default)]
pub struct Conns {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connections not in a request, by (queue, when they got there): ids
    /// only grow, so the first entry is the oldest of the first queue.
    evictable: Mutex<BTreeMap<(Queue, u64), Arc<Handle>>>,
    next_id: AtomicU64,
    evicted: AtomicU64,
}

/// How a connection is closed to make room.
#[derive(Default)]
pub struct Handle {
    /// The serve task waits on it.
    pub close: Notify,
    /// Its place in the total went to the newcomer.
    released: AtomicBool,
}

/// One admitted connection; counted until dropped.
pub struct ConnSlot {
    conns: Arc<Conns>,
    ip: Option<IpAddr>,
    pub handle: Arc<Handle>,
    /// Its key in `evictable` while it is there.
    at: Mutex<Option<(Queue, u64)>>,
}

impl ConnSlot {
    fn enqueue(&self, q: Queue) {
        let key = (q, self.conns.next_id.fetch_add(1, Ordering::Relaxed));
        let mut at = lock(&self.at);
        let mut ev = lock(&self.conns.evictable);
        if let Some(old) = at.take() {
            ev.remove(&old);
        }
        ev.insert(key, self.handle.clone());
        *at = Some(key);
    }

    /// A request head arrived: not evictable until its answer is done.
    /// Returns what marks the answer done when dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        if let Some(key) = lock(&self.at).take() {
            lock(&self.conns.evictable).remove(&key);
        }
        Busy(self.clone())
    }
}

/// Held by a response body: when it is dropped (the answer was sent, or the
/// stream ended), the connection is idle and evictable again.
pub struct Busy(Arc<ConnSlot>);

impl Drop for Busy {
    fn drop(&mut self) {
        if !self.0.handle.released.load(Ordering::Acquire) {
            self.0.enqueue(Queue::Idle);
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(key) = lock(&self.at).take() {
            lock(&self.conns.evictable).remove(&key);
        }
        if !self.handle.released.load(Ordering::Acquire) {
            self.conns.total.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(ip) = self.ip {
            self.conns.unclaim_ip(ip);
        }
    }
}

impl Conns {
    /// Admits a connection (closing the oldest evictable one if the total is
    /// reached), or says which limit it would pass.
    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Arc<ConnSlot>, &'static str> {
        if let Some(ip) = ip {
            let mut m = lock(&self.per_ip);
            let n = m.entry(ip).or_default();
            if *n >= max_per_ip {
                return Err("maxConnectionsPerIp");
            }
            *n += 1;
        }
        if self.total.fetch_add(1, Ordering::Relaxed) >= max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            if !self.evict_oldest() {
                if let Some(ip) = ip {
                    self.unclaim_ip(ip);
                }
                return Err("maxConnections");
            }
        }
        let slot = Arc::new(ConnSlot {
            conns: self.clone(),
            ip,
            handle: Arc::default(),
            at: Mutex::default(),
        });
        slot.enqueue(Queue::Silent);
        Ok(slot)
    }

    /// Closes the oldest evictable connection, handing its place in the
    /// total to the caller; false when every connection is in a request.
    fn evict_oldest(&self) -> bool {
        let Some((_, h)) = lock(&self.evictable).pop_first() else {
            return false;
        };
        h.released.store(true, Ordering::Release);
        h.close.notify_one();
        self.evicted.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn unclaim_ip(&self, ip: IpAddr) {
        let mut m = lock(&self.per_ip);
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }

    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Connections closed to admit others, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// A response body that keeps its connection busy until it is dropped.
pub struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl Tracked {
    pub fn wrap(inner: Body, busy: Busy) -> Body {
        use http_body_util::BodyExt;
        Tracked { inner, _busy: busy }.boxed_unsync()
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_silent_goes_first_then_the_oldest_idle_and_busy_ones_stay() {
        let c = Arc::new(Conns::default());
        let a = c.admit(None, 3, 10).unwrap();
        let b = c.admit(None, 3, 10).unwrap();
        let d = c.admit(None, 3, 10).unwrap();
        // a speaks and is answered: idle. b speaks and is still answering.
        drop(a.busy());
        let b_busy = b.busy();
        // Full: the newcomer takes the silent one's place (d), not idle a.
        let e = c.admit(None, 3, 10).unwrap();
        assert!(d.handle.released.load(Ordering::Relaxed));
        assert_eq!(c.open(), 3);
        // Then e (silent, though newer than a); then, nothing silent left, a.
        let f = c.admit(None, 3, 10).unwrap();
        assert!(e.handle.released.load(Ordering::Relaxed));
        let f_busy = f.busy();
        let _g = c.admit(None, 3, 10).unwrap();
        assert!(a.handle.released.load(Ordering::Relaxed));
        // b and f are in a request: never closed.
        assert!(!b.handle.released.load(Ordering::Relaxed));
        assert!(!f.handle.released.load(Ordering::Relaxed));
        drop((d, e, a));
        assert_eq!(c.open(), 3);
        drop((b_busy, b, f_busy, f));
        assert_eq!(c.open(), 1);
        assert_eq!(c.evicted(), 3);
    }

    #[test]
    fn refused_when_every_connection_is_in_a_request() {
        let c = Arc::new(Conns::default());
        let ip = Some(IpAddr::from([127, 0, 0, 9]));
        let a = c.admit(ip, 1, 10).unwrap();
        let _busy = a.busy();
        assert_eq!(c.admit(ip, 1, 10).err(), Some("maxConnections"));
        // The refusal gave its per-address count back.
        assert_eq!(lock(&c.per_ip)[&IpAddr::from([127, 0, 0, 9])], 1);
        assert_eq!(c.admit(ip, 10, 1).err(), Some("maxConnectionsPerIp"));
    }
}
