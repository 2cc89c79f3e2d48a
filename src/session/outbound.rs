//! Bounded queues toward clients: one per stream (a legacy SSE stream, a
//! streamable POST's answer stream, a streamable GET stream).
//!
//! Overflow policy: a queue holds at most [`LIMIT`] bytes of messages. A client
//! that does not read its stream cannot grow the hub's memory past that: the
//! message that would overflow is dropped, the stream is closed after what is
//! already queued (so the client sees it end and can reconnect, rather than
//! silently missing messages), the drop is counted (`droppedMessages` in
//! `/status`) and logged once per stream. Pushing never waits, so one slow
//! client never holds up the upstream's reader or any other client.

use crate::jsonrpc::Message;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Bytes of messages a stream may have queued.
pub const LIMIT: usize = 4 * 1024 * 1024;

/// Messages dropped on overflow since the hub started, over all streams.
static DROPPED: AtomicU64 = AtomicU64::new(0);

pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Why a push did not queue the message.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// The stream is closed or its reader is gone: another stream may take it.
    Closed(Message),
    /// The stream overflowed and is now closed; the message was dropped.
    Overflow,
}

struct State {
    msgs: VecDeque<Message>,
    bytes: usize,
    closed: bool,
    reader_gone: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Notify,
    /// Woken when the stream closes or its reader goes ([`Outbound::closed`]).
    gone: Notify,
    limit: usize,
    /// Server and session, for the overflow log line.
    label: (Arc<str>, Arc<str>),
}

/// The producing side; cheap to clone.
#[derive(Clone)]
pub struct Outbound(Arc<Shared>);

/// The consuming side: the response body of one stream.
pub struct Inbound {
    q: Arc<Shared>,
    /// Where to hand the queue back when this reader goes (a streamable
    /// session's GET stream), instead of closing it.
    park: Option<Slot>,
}

/// A place a queue's reader waits while no stream reads it.
pub type Slot = Arc<Mutex<Option<Inbound>>>;

pub fn channel(server: &str, session: &str) -> (Outbound, Inbound) {
    with_limit(server, session, LIMIT)
}

pub fn with_limit(server: &str, session: &str, limit: usize) -> (Outbound, Inbound) {
    let s = Arc::new(Shared {
        state: Mutex::new(State {
            msgs: VecDeque::new(),
            bytes: 0,
            closed: false,
            reader_gone: false,
        }),
        ready: Notify::new(),
        gone: Notify::new(),
        limit,
        label: (server.into(), session.into()),
    });
    (Outbound(s.clone()), Inbound { q: s, park: None })
}

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outbound {
    pub fn push(&self, m: Message) -> Result<(), Refused> {
        let mut st = lock(&self.0);
        if st.closed || st.reader_gone {
            return Err(Refused::Closed(m));
        }
        let w = m.weight();
        if st.bytes + w > self.0.limit && !st.msgs.is_empty() {
            // The stream ends now, not after its backlog: a reader this far
            // behind would never get there, and the memory is what matters.
            st.closed = true;
            let queued = st.msgs.len();
            st.msgs.clear();
            st.bytes = 0;
            drop(st);
            self.0.gone.notify_waiters();
            DROPPED.fetch_add(1 + queued as u64, Ordering::Relaxed);
            if let Some(held) = crate::ratelimit::allow(&format!("overflow:{}", self.0.label.0)) {
                tracing::warn!(
                    mcp_server = %self.0.label.0,
                    mcp_session = %self.0.label.1,
                    "client stream overflow: {queued} message(s) unread past {} bytes; dropping and closing the stream{}",
                    self.0.limit,
                    if held > 0 { format!(" ({held} more overflows suppressed)") } else { String::new() }
                );
            }
            self.0.ready.notify_one();
            return Err(Refused::Overflow);
        }
        st.bytes += w;
        st.msgs.push_back(m);
        drop(st);
        self.0.ready.notify_one();
        Ok(())
    }

    /// Ends the stream once what is queued has been read.
    pub fn close(&self) {
        lock(&self.0).closed = true;
        self.0.ready.notify_one();
        self.0.gone.notify_waiters();
    }

    /// Resolves once a push could no longer be delivered: the stream was
    /// closed, overflowed, or its reader went away (a client that hung up).
    pub async fn closed(&self) {
        loop {
            let gone = self.0.gone.notified();
            tokio::pin!(gone);
            // Registered before the check, so a wake-up between them is not lost.
            gone.as_mut().enable();
            if !self.is_open() {
                return;
            }
            gone.await;
        }
    }

    /// True while a push could still be delivered.
    pub fn is_open(&self) -> bool {
        let st = lock(&self.0);
        !st.closed && !st.reader_gone
    }

    pub fn same(&self, other: &Outbound) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Inbound {
    /// This reader hands the queue back to `slot` when it goes.
    pub fn parking(mut self, slot: Slot) -> Inbound {
        self.park = Some(slot);
        self
    }

    /// The next message; `None` once the stream is closed and drained.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            let notified = self.q.ready.notified();
            {
                let mut st = lock(&self.q);
                if let Some(m) = st.msgs.pop_front() {
                    st.bytes -= m.weight();
                    return Some(m);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Takes what is queued now without waiting, and whether the stream ended.
    pub fn try_recv(&mut self) -> (Option<Message>, bool) {
        let mut st = lock(&self.q);
        match st.msgs.pop_front() {
            Some(m) => {
                st.bytes -= m.weight();
                (Some(m), false)
            }
            None => (None, st.closed),
        }
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if let Some(slot) = self.park.take() {
            if let Ok(mut s) = slot.lock() {
                *s = Some(Inbound {
                    q: self.q.clone(),
                    park: None,
                });
                return;
            }
        }
        let mut st = lock(&self.q);
        st.reader_gone = true;
        st.msgs.clear();
        st.bytes = 0;
        drop(st);
        self.q.gone.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn note(n: usize) -> Message {
        Message::notification("x", Some(json!({"pad": "a".repeat(n)})))
    }

    #[tokio::test]
    async fn delivers_in_order_then_ends() {
        let (tx, mut rx) = channel("s", "c");
        tx.push(note(1)).unwrap();
        tx.push(note(2)).unwrap();
        tx.close();
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_some());
        assert!(rx.recv().await.is_none());
        assert!(matches!(tx.push(note(1)), Err(Refused::Closed(_))));
    }

    #[tokio::test]
    async fn overflow_drops_counts_and_closes() {
        let (tx, mut rx) = with_limit("s", "c", 1000);
        let before = dropped_total();
        tx.push(note(600)).unwrap();
        assert_eq!(tx.push(note(600)), Err(Refused::Overflow));
        assert!(dropped_total() > before);
        assert!(!tx.is_open());
        // The stream ends at once; its backlog is dropped with it.
        assert!(rx.recv().await.is_none());
    }

    #[test]
    fn a_gone_reader_refuses_and_frees() {
        let (tx, rx) = channel("s", "c");
        tx.push(note(10)).unwrap();
        drop(rx);
        assert!(matches!(tx.push(note(1)), Err(Refused::Closed(_))));
    }

    #[tokio::test]
    async fn closed_resolves_when_the_reader_goes_or_the_stream_closes() {
        let (tx, rx) = channel("s", "c");
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(rx);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("woken when the reader went")
            .unwrap();
        let (tx, _rx) = channel("s", "c");
        let t2 = tx.clone();
        let waiting = tokio::spawn(async move { t2.closed().await });
        tx.close();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("woken when closed")
            .unwrap();
    }

    #[test]
    fn one_message_larger_than_the_limit_still_passes_alone() {
        // A single large answer must reach a client that reads; only a backlog overflows.
        let (tx, _rx) = with_limit("s", "c", 100);
        tx.push(note(500)).unwrap();
    }
}
