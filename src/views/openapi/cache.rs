//! The tool lists the facade checks calls against, kept between calls: one
//! `POST /<name>/tools/<tool>` is then one upstream `tools/call`, not a
//! `tools/list` (every page of it) first.
//!
//! An entry is kept per (route, token), since a list may depend on the token
//! (a group's members, a per-client server's own upstream). It holds each
//! tool's name and its `inputSchema` as text, so it costs about the bytes the
//! server sent, which `maxListSize` bounds. An entry is good while its stamp
//! matches what it fronts now: the config (a reload builds new `Arc`s, so a
//! changed server or `toolFilter` is a new pointer), the upstream's pid and
//! restart count, and a generation the facade's sessions bump when the
//! server says `notifications/tools/list_changed` or a session ends. A
//! document GET always reads the list afresh and replaces the entry; a call
//! to a name the entry lacks reads it again (at most once a second), so a
//! tool that appeared is found; and an entry older than [`MAX_AGE`] is read
//! again, for a change nobody heard of (a shared server's `list_changed`
//! while no facade session was open).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an entry is trusted without a sign of change.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// A call to a name the entry lacks reads the list again only this long after
/// the last read: unknown names are not a way to send `tools/list` per call.
pub const MISS_REFRESH: Duration = Duration::from_secs(1);

/// (route, token's place in the config).
pub type Key = (String, Option<String>);
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Tools>>>>;

#[derive(Default)]
pub struct Cache {
    slots: Mutex<HashMap<Key, Slot>>,
    generations: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Cache {
    /// The generation of a route (a server's or a group's name), bumped on
    /// its `list_changed` and when one of its facade sessions ends.
    pub fn generation(&self, route: &str) -> Arc<AtomicU64> {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(route.to_string()).or_default().clone()
    }

    pub fn current(&self, route: &str) -> u64 {
        self.generation(route).load(Ordering::SeqCst)
    }

    /// One key's entry; the async lock makes concurrent misses wait for one
    /// read rather than each send `tools/list`.
    pub fn slot(&self, key: Key) -> Slot {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(key).or_default().clone()
    }
}

/// What a call needs of a listed tool.
#[derive(Deserialize)]
pub struct Listed {
    pub name: String,
    #[serde(rename = "inputSchema")]
    pub input_schema: Option<Box<RawValue>>,
}

/// One read of a tool list.
pub struct Tools {
    pub stamp: Vec<u64>,
    pub read: Instant,
    by_name: HashMap<String, Option<Arc<str>>>,
}

impl Tools {
    pub fn new(stamp: Vec<u64>, listed: Vec<Listed>) -> Tools {
        let mut by_name = HashMap::with_capacity(listed.len());
        for t in listed {
            // The first of a name listed twice, as the document has it.
            by_name
                .entry(t.name)
                .or_insert_with(|| t.input_schema.map(|s| Arc::from(s.get())));
        }
        Tools {
            stamp,
            read: Instant::now(),
            by_name,
        }
    }

    /// From the document's parsed list.
    pub fn from_values(stamp: Vec<u64>, tools: &[Value]) -> Tools {
        let listed = tools
            .iter()
            .filter_map(|t| {
                Some(Listed {
                    name: t.get("name")?.as_str()?.to_string(),
                    input_schema: t
                        .get("inputSchema")
                        .and_then(|s| serde_json::value::to_raw_value(s).ok()),
                })
            })
            .collect();
        Tools::new(stamp, listed)
    }

    pub fn fresh(&self, stamp: &[u64]) -> bool {
        self.stamp == stamp && self.read.elapsed() < MAX_AGE
    }

    /// `None`: no such tool. `Some(None)`: a tool without a schema.
    pub fn schema(&self, name: &str) -> Option<Option<Arc<str>>> {
        self.by_name.get(name).cloned()
    }
}
