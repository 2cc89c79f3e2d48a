//! Who a session is: the caller a request's token names (a named client, a
//! token's place in the config, or an address), the token's value kept only
//! to check it against a reloaded config, and the slots that count a
//! caller's open sessions against its caps.

use crate::config::clients::Client;
use std::sync::{Arc, Mutex};

/// Who a session is, for logs: the downstream session id, and the config path
/// of the token that opened it (never the token itself, which only `secret`
/// holds, to check it against a reloaded config).
#[derive(Debug, Default, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub token: Option<String>,
    pub secret: Option<Secret>,
    /// Counts the session against `maxSessionsPerToken` while it lives.
    pub slot: Option<Arc<TokenSlot>>,
    /// The client speaks 2026-07-28 itself (one transient session per request).
    pub modern: bool,
    /// How the client reached the hub, for metrics.
    pub transport: crate::metrics::Transport,
    /// The named client it is (`mcpProxy.options.clients`), whose tool rules
    /// the router applies.
    pub client: Option<Arc<Client>>,
    /// The address it came from: a caller with no token counts against
    /// `maxSessionsPerAddress`.
    pub peer: Option<std::net::IpAddr>,
}

/// The address a request came from, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

impl Peer {
    pub fn of<B>(req: &http::Request<B>) -> Option<std::net::IpAddr> {
        req.extensions().get::<Peer>().map(|p| p.0)
    }
}

impl SessionInfo {
    /// A session's (or a stateless call's, with an empty `id`) view of the
    /// token it came with, if any: named by its place in the config at
    /// `source`, never by its value.
    pub fn for_token(
        token: Option<&Token>,
        id: &str,
        source: &str,
        transport: crate::metrics::Transport,
    ) -> SessionInfo {
        let info = match token {
            Some(t) => t.info(id, source),
            None => SessionInfo {
                id: id.into(),
                ..Default::default()
            },
        };
        SessionInfo { transport, ..info }
    }

    /// Who called, for audit lines and metrics: a named client's name, a
    /// token's place in the config, or `anonymous`.
    pub fn caller(&self) -> &str {
        match (&self.client, &self.token) {
            (Some(c), _) => &c.name,
            (None, Some(t)) => t,
            (None, None) => "anonymous",
        }
    }
}

/// A token's value; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The token a request came with: its index in the route's list (or the
/// named client holding it), and its value.
#[derive(Debug, Clone)]
pub struct Token {
    pub label: usize,
    pub secret: Secret,
    pub client: Option<Arc<Client>>,
}

impl Token {
    /// What tells this caller from another in a per-caller table (a named
    /// client's lists differ by its rules): never the token's value.
    pub fn key(&self) -> String {
        match &self.client {
            Some(c) => c.caller_key(),
            None => format!("token:{}", self.label),
        }
    }

    /// The session's view of it: named by its place in the config.
    pub fn info(&self, id: &str, source: &str) -> SessionInfo {
        let token = match &self.client {
            Some(c) => c.policy.to_string(),
            None => format!("{source}[{}]", self.label),
        };
        SessionInfo {
            id: id.into(),
            token: Some(token),
            secret: Some(self.secret.clone()),
            slot: None,
            modern: false,
            transport: Default::default(),
            client: self.client.clone(),
            peer: None,
        }
    }
}

/// Open sessions per caller (a named client, a token, an address), and in
/// all: `maxSessions` and the per-caller caps.
#[derive(Default)]
pub struct TokenCounts(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    by: std::collections::HashMap<Arc<str>, usize>,
    total: usize,
}

/// Which cap a session did not fit under.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    Caller,
    Total,
}

impl TokenCounts {
    /// A slot for one more session of `caller`, unless it has `max` already
    /// or the hub has `total` in all.
    pub fn take(
        &self,
        caller: &Arc<str>,
        max: usize,
        total: usize,
    ) -> Result<Arc<TokenSlot>, Full> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.total >= total {
            return Err(Full::Total);
        }
        let n = m.by.entry(caller.clone()).or_default();
        if *n >= max {
            return Err(Full::Caller);
        }
        *n += 1;
        m.total += 1;
        Ok(Arc::new(TokenSlot {
            counts: self.0.clone(),
            token: caller.clone(),
        }))
    }

    /// Open sessions per caller key (`client:NAME`, `addr:IP`, or a token).
    pub fn by_caller(&self, keep: impl Fn(&str) -> bool) -> Vec<(String, usize)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> =
            m.by.iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, n)| (k.to_string(), *n))
                .collect();
        v.sort();
        v
    }
}

#[derive(Debug)]
pub struct TokenSlot {
    counts: Arc<Mutex<Counts>>,
    token: Arc<str>,
}

impl Drop for TokenSlot {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.total = m.total.saturating_sub(1);
        if let Some(n) = m.by.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                m.by.remove(&self.token);
            }
        }
    }
}
