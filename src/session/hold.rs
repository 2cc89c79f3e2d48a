//! Held upstream calls for MRTR (2026-07-28's "input required"), the
//! direction where a modern client meets a legacy upstream. The other
//! direction (a 2025 client of a modern upstream) is driven by the router
//! (`router/mrtr.rs`) inside the in-flight exchange itself.
//!
//! A legacy upstream asks its client a question (sampling, elicitation,
//! roots) by sending a request in the middle of a call. A modern client cannot
//! take requests: the hub answers its call with `resultType:
//! "input_required"`, keeps the upstream call open here under a handle, and
//! resumes it when the client retries with its answers and the handle as
//! `requestState`. A handle is 128 random bits behind this hub's prefix (so a
//! load balancer can send the retry back here: the prefix is
//! `mcpProxy.options.hubId` when set, so the balancer's map can name it, and
//! random per process otherwise), lives [`TTL`], and is bound to
//! the token, the server, the method and the call's name and arguments: a
//! retry that lands on another hub, comes late or asks for something else
//! gets a clear error, never someone else's call.

use crate::session::outbound::Inbound;
use crate::session::Secret;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// What every hub handle starts with, so a retry carrying a modern
/// upstream's own `requestState` passes through untouched.
pub const TAG: &str = "mcp-hub/";

/// Whether a `requestState` is one of the hub's handles.
pub fn is_handle(state: &str) -> bool {
    state.starts_with(TAG)
}

/// How long a held call waits for the client's retry.
pub const TTL: Duration = Duration::from_secs(300);
/// Held calls at most, over all clients: each keeps an upstream call open.
pub const MAX_HELD: usize = 1024;
/// Held calls per token: one client holding many calls must not use up the
/// hub's [`MAX_HELD`] for everyone else.
pub const MAX_HELD_PER_TOKEN: usize = 64;

/// An upstream call waiting for a modern client's answers.
pub struct Held<C> {
    /// What the call runs on (the transport's; the table only keeps it).
    pub session: C,
    pub rx: Inbound,
    pub token: Option<Secret>,
    pub server: String,
    pub binding: u64,
    /// Hub ids of the server's requests the client must answer.
    pub pending: Vec<String>,
    /// The client's capabilities for this call, for the next round.
    pub caps: Value,
    pub log: bool,
    deadline: Instant,
}

impl<C> Held<C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session: C,
        rx: Inbound,
        token: Option<Secret>,
        server: &str,
        binding: u64,
        pending: Vec<String>,
        caps: Value,
        log: bool,
    ) -> Held<C> {
        Held {
            session,
            rx,
            token,
            server: server.into(),
            binding,
            pending,
            caps,
            log,
            deadline: Instant::now() + TTL,
        }
    }
}

/// Why a retry's `requestState` was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("requestState was issued by another hub ({0}); send the retry to the hub that answered input_required (this is {1})")]
    OtherHub(String, String),
    #[error("requestState is unknown or expired: a held call waits {}s for its retry", TTL.as_secs())]
    Unknown,
    #[error("requestState belongs to another token, server or call; retry the same call with the same arguments")]
    Mismatch,
    #[error("{MAX_HELD} calls are already waiting for input on this hub; try again later")]
    Full,
    #[error("{MAX_HELD_PER_TOKEN} calls of this token are already waiting for input; answer or abandon some first")]
    TokenFull,
}

pub struct Table<C> {
    held: Mutex<HashMap<String, Held<C>>>,
    /// Fixed for the process's life: a handle minted before a reload must
    /// still come back here after it.
    prefix: String,
}

impl<C> Default for Table<C> {
    fn default() -> Table<C> {
        Table::new(None)
    }
}

/// A random prefix, so two hubs without a configured id never collide.
fn random_prefix() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    format!(
        "h{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// What a handle is bound to: the method and the call's identity (its name
/// or URI, and its arguments, as `mcp::params` found them), not its
/// per-attempt envelope. A hash of the three raw values as written, with the
/// white space outside strings left out (a client that re-serializes the
/// same call the same way gets the same binding).
pub fn binding_of(method: &str, identity: [Option<&RawValue>; 3]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    method.hash(&mut h);
    for v in identity {
        0xffu8.hash(&mut h);
        if let Some(v) = v {
            hash_compact(v.get(), &mut h);
        }
    }
    h.finish()
}

/// Feeds JSON text to `h` without its insignificant white space.
fn hash_compact(json: &str, h: &mut impl std::hash::Hasher) {
    let (mut in_str, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_str {
            // An escaped quote does not end the string.
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
        } else if b.is_ascii_whitespace() {
            continue;
        }
        h.write_u8(b);
    }
}

impl<C> Table<C> {
    /// A table whose handles start with `hub_id` (already validated by the
    /// config), or with a random prefix.
    pub fn new(hub_id: Option<&str>) -> Table<C> {
        Table {
            held: Mutex::default(),
            prefix: hub_id.map_or_else(random_prefix, str::to_string),
        }
    }

    /// This hub's handle prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held<C>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a call; returns its handle. When the table is full the call is
    /// dropped, which cancels it upstream.
    pub fn hold(&self, h: Held<C>) -> Result<String, Refused> {
        let mut m = self.lock();
        if m.len() >= MAX_HELD {
            return Err(Refused::Full);
        }
        if m.values().filter(|x| x.token == h.token).count() >= MAX_HELD_PER_TOKEN {
            return Err(Refused::TokenFull);
        }
        let handle = format!("{TAG}{}.{}", self.prefix, crate::session::new_id());
        m.insert(handle.clone(), h);
        Ok(handle)
    }

    /// Takes a held call back for its retry, checking what it is bound to.
    pub fn resume(
        &self,
        handle: &str,
        token: Option<&Secret>,
        server: &str,
        binding: u64,
    ) -> Result<Held<C>, Refused> {
        let (p, _) = handle
            .strip_prefix(TAG)
            .and_then(|h| h.split_once('.'))
            .ok_or(Refused::Unknown)?;
        if p != self.prefix {
            return Err(Refused::OtherHub(p.into(), self.prefix.clone()));
        }
        let mut m = self.lock();
        let h = m.get(handle).ok_or(Refused::Unknown)?;
        if h.token.as_ref() != token || h.server != server || h.binding != binding {
            return Err(Refused::Mismatch);
        }
        if h.deadline <= Instant::now() {
            m.remove(handle);
            return Err(Refused::Unknown);
        }
        m.remove(handle).ok_or(Refused::Unknown)
    }

    /// Drops calls whose retry never came; their sessions end, which cancels
    /// the upstream calls.
    pub fn expire(&self) -> usize {
        let now = Instant::now();
        let gone: Vec<Held<C>> = {
            let mut m = self.lock();
            let keys: Vec<String> = m
                .iter()
                .filter(|(_, h)| h.deadline <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| m.remove(k)).collect()
        };
        gone.len()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Calls held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Message;

    fn bind(method: &str, params: &str) -> u64 {
        let m = Message::parse(
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
                .as_bytes(),
        )
        .unwrap();
        let p = crate::mcp::params(&m);
        binding_of(method, [p.name, p.uri, p.arguments])
    }

    #[test]
    fn white_space_after_an_escaped_quote_is_inside_the_string() {
        // Read as ending at `\"`, the string's later space was dropped and
        // these two calls were bound alike.
        let a = bind("tools/call", r#"{"name":"x","arguments":{"s":"a\" b"}}"#);
        let b = bind("tools/call", r#"{"name":"x","arguments":{"s":"a\"b"}}"#);
        assert_ne!(a, b);
        let c = bind("tools/call", r#"{"name":"x","arguments":{"s":"a\\"}}"#);
        let d = bind("tools/call", r#"{"name":"x", "arguments": {"s": "a\\"}}"#);
        assert_eq!(c, d, "an escaped backslash ends no escape");
    }

    #[test]
    fn binding_ignores_the_envelope_but_not_the_call() {
        let a = bind(
            "tools/call",
            r#"{"name": "x", "arguments": {"a": 1, "s": "x y"}, "_meta": {"k": 1}}"#,
        );
        let b = bind(
            "tools/call",
            r#"{"requestState": "s", "name":"x","arguments":{"a":1,"s":"x y"}, "inputResponses": {}}"#,
        );
        assert_eq!(a, b, "the envelope and white space do not count");
        for (m, p) in [
            (
                "tools/call",
                r#"{"name": "x", "arguments": {"a": 2, "s": "x y"}}"#,
            ),
            (
                "tools/call",
                r#"{"name": "x", "arguments": {"a": 1, "s": "xy"}}"#,
            ),
            (
                "prompts/get",
                r#"{"name": "x", "arguments": {"a": 1, "s": "x y"}}"#,
            ),
            (
                "tools/call",
                r#"{"uri": "x", "arguments": {"a": 1, "s": "x y"}}"#,
            ),
        ] {
            assert_ne!(a, bind(m, p), "{m} {p}");
        }
    }

    #[test]
    fn foreign_and_unknown_handles_are_refused() {
        let t: Table<()> = Table::default();
        assert!(matches!(
            t.resume("mcp-hub/hdeadbeef.00", None, "s", 7),
            Err(Refused::OtherHub(..)) | Err(Refused::Unknown)
        ));
        let mine = format!("{TAG}{}.0123", t.prefix());
        assert_eq!(t.resume(&mine, None, "s", 7).err(), Some(Refused::Unknown));
        assert_eq!(
            t.resume("nodot", None, "s", 7).err(),
            Some(Refused::Unknown)
        );
    }

    #[test]
    fn a_configured_hub_id_is_the_prefix() {
        let a: Table<()> = Table::new(Some("hub-a"));
        let b: Table<()> = Table::new(Some("hub-b"));
        assert_eq!(a.prefix(), "hub-a");
        assert_eq!(
            b.resume("mcp-hub/hub-a.0123", None, "s", 7).err(),
            Some(Refused::OtherHub("hub-a".into(), "hub-b".into()))
        );
        assert!(Refused::OtherHub("hub-a".into(), "hub-b".into())
            .to_string()
            .starts_with("requestState was issued by another hub (hub-a)"));
        let r: Table<()> = Table::default();
        assert!(r.prefix().starts_with('h') && r.prefix().len() == 9);
        assert_ne!(r.prefix(), Table::<()>::default().prefix());
    }
}
