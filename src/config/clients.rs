//! Named clients (`mcpProxy.options.clients`): who a caller is, which servers,
//! groups and tools it may reach, and the limits that keep one client from
//! locking another out. Only the config lives here; the hub resolves a caller
//! once per request (`crate::caller`) and checks the policy in the exchange.

use super::{invalid, raw, Invalid, ToolFilter};
use indexmap::IndexMap;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What a client name may look like: it shows in logs, metrics labels and
/// file names.
pub const NAME_RULE: &str = "^[a-z0-9][a-z0-9_-]{0,31}$";

/// One named client, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub name: Arc<str>,
    /// The SHA-256 of its current token.
    pub key: [u8; 32],
    /// Retired tokens and the time each stops working.
    pub previous: Vec<([u8; 32], SystemTime)>,
    /// `None`: every server.
    pub servers: Option<Vec<String>>,
    /// Groups it may open; `"*"` stands for all.
    pub groups: Vec<String>,
    /// Per server (or group member), the tools it may call.
    pub tools: BTreeMap<String, ToolFilter>,
    pub rate: Option<Rate>,
    pub max_concurrent: Option<usize>,
    pub max_sessions: usize,
    /// Its `client` label in the metrics: a named client's name; `oidc` for
    /// every caller signed in through the identity provider, so the number
    /// of series stays bounded however many people sign in.
    pub label: Arc<str>,
    /// For a caller signed in through the identity provider, its token's
    /// `sub` (audit lines and the journal's MCP_SUBJECT); `None` for a
    /// named client.
    pub subject: Option<Arc<str>>,
    /// Where its policy is written, for refusals: `mcpProxy.options.clients.<name>`
    /// or `mcpProxy.options.oidc.rules[<i>]`.
    pub policy: Arc<str>,
}

impl Client {
    /// Whether the client may use the server's own routes (`/<name>/…`).
    pub fn reaches_server(&self, server: &str) -> bool {
        self.servers
            .as_ref()
            .is_none_or(|l| l.iter().any(|s| s == "*" || s == server))
    }

    /// Whether the client may open the group's routes (`/g/<name>/…`).
    pub fn reaches_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == "*" || g == group)
    }

    /// The client's rule for a server's tools, if it has one.
    pub fn rule_for(&self, server: &str) -> Option<ToolRule> {
        self.tools.get(server).map(|f| ToolRule {
            filter: f.clone(),
            path: format!("{}.tools.{server}", self.policy).into(),
        })
    }

    /// What tells this caller from every other in per-caller tables
    /// (sessions, limits): a named client and a signed-in person of the same
    /// name are two callers.
    pub fn caller_key(&self) -> String {
        match self.subject {
            None => format!("client:{}", self.name),
            Some(_) => format!("oidc:{}", self.name),
        }
    }

    /// Whether `sha` (a presented token's hash) is this client's, now.
    /// Every key is compared, in constant time, whatever matched before.
    pub fn holds(&self, sha: &[u8; 32], now: SystemTime) -> bool {
        use subtle::ConstantTimeEq;
        let mut ok = bool::from(self.key.ct_eq(sha));
        for (k, until) in &self.previous {
            ok |= bool::from(k.ct_eq(sha)) && now < *until;
        }
        ok
    }
}

/// A client's tool rule for one server, with the config path that names it
/// in a refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRule {
    pub filter: ToolFilter,
    pub path: Arc<str>,
}

/// `rate`: so many requests per period, with a burst of the same count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("{text:?} is not a rate; write e.g. \"120/min\" or \"10/s\"");
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86400),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err("must allow at least 1 request per period".into());
        }
        Ok(Rate { count, per })
    }
}

/// The SHA-256 of a token.
pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex a config holds for a token.
pub fn sha256_hex(token: &str) -> String {
    sha256(token).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(text: &str, path: &str) -> Result<[u8; 32], Invalid> {
    let t = text.trim();
    let bad = || {
        invalid(
            path,
            "must be 64 hex digits, the SHA-256 of the token (e.g. `printf %s TOKEN | sha256sum`)",
        )
    };
    if t.len() != 64 || !t.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

pub fn name_is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// The names a config defines, to warn about a client naming one that is not there.
pub struct Known<'a> {
    pub servers: &'a dyn Fn(&str) -> bool,
    pub groups: &'a dyn Fn(&str) -> bool,
}

pub fn validate(
    raw: Option<IndexMap<String, raw::RawClient>>,
    default_max_sessions: usize,
    known: &Known<'_>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Arc<Client>>, Invalid> {
    let mut out: Vec<Arc<Client>> = Vec::new();
    for (name, c) in raw.unwrap_or_default() {
        let path = format!("mcpProxy.options.clients.{name}");
        if !name_is_valid(&name) {
            return Err(invalid(
                &path,
                format!("a client name must match {NAME_RULE}"),
            ));
        }
        let key = match (&c.token_sha256, &c.token) {
            (Some(h), None) => parse_hex(h, &format!("{path}.tokenSha256"))?,
            (None, Some(t)) if t.trim().is_empty() => {
                return Err(invalid(
                    format!("{path}.token"),
                    "a token must not be empty (is its variable set?)",
                ))
            }
            (None, Some(t)) => sha256(t),
            (Some(_), Some(_)) => {
                return Err(invalid(&path, "give tokenSha256 or token, not both"))
            }
            (None, None) => {
                return Err(invalid(
                    &path,
                    "a client needs tokenSha256 (or token); `mcp-hub client add` writes one",
                ))
            }
        };
        if let Some(other) = out.iter().find(|o| o.key == key) {
            return Err(invalid(
                &path,
                format!("has the same token as client {:?}", other.name),
            ));
        }
        let mut previous = Vec::new();
        for (i, p) in c.previous.iter().flatten().enumerate() {
            let at = format!("{path}.previous[{i}]");
            let k = parse_hex(&p.token_sha256, &format!("{at}.tokenSha256"))?;
            let until = humantime::parse_rfc3339_weak(p.until.trim()).map_err(|e| {
                invalid(
                    format!("{at}.until"),
                    format!(
                        "{:?} is not a time ({e}); write e.g. \"2026-12-08T03:00:00Z\"",
                        p.until
                    ),
                )
            })?;
            previous.push((k, until));
        }
        let p = policy(
            &path,
            RawPolicy {
                servers: c.servers,
                groups: c.groups,
                tools: c.tools,
                rate: c.rate,
                max_concurrent: c.max_concurrent,
                max_sessions: c.max_sessions,
            },
            default_max_sessions,
            known,
            warnings,
        )?;
        out.push(Arc::new(Client {
            name: name.as_str().into(),
            key,
            previous,
            label: name.as_str().into(),
            policy: path.into(),
            ..p
        }));
    }
    Ok(out)
}

/// The policy keys a named client and an identity-provider rule share, as written.
pub(super) struct RawPolicy {
    pub servers: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub tools: Option<IndexMap<String, raw::ToolFilter>>,
    pub rate: Option<String>,
    pub max_concurrent: Option<u32>,
    pub max_sessions: Option<u32>,
}

/// A policy validated at `path`, as a client with no name and no key (the
/// caller fills those in).
pub(super) fn policy(
    path: &str,
    c: RawPolicy,
    default_max_sessions: usize,
    known: &Known<'_>,
    warnings: &mut Vec<String>,
) -> Result<Client, Invalid> {
    for (i, s) in c.servers.iter().flatten().enumerate() {
        if s != "*" && !(known.servers)(s) {
            warnings.push(format!("{path}.servers[{i}]: no server {s:?} is defined"));
        }
    }
    for (i, g) in c.groups.iter().flatten().enumerate() {
        if g != "*" && !(known.groups)(g) {
            warnings.push(format!("{path}.groups[{i}]: no group {g:?} is defined"));
        }
    }
    let mut tools = BTreeMap::new();
    for (server, f) in c.tools.unwrap_or_default() {
        let at = format!("{path}.tools.{server}");
        if !(known.servers)(&server) {
            warnings.push(format!("{at}: no server {server:?} is defined"));
        }
        tools.insert(server, ToolFilter::from_raw(f, &at)?);
    }
    let rate = c
        .rate
        .as_deref()
        .map(|r| Rate::parse(r).map_err(|m| invalid(format!("{path}.rate"), m)))
        .transpose()?;
    let max_concurrent = match c.max_concurrent {
        Some(0) => {
            return Err(invalid(
                format!("{path}.maxConcurrent"),
                "must be at least 1",
            ))
        }
        n => n.map(|n| n as usize),
    };
    let max_sessions = match c.max_sessions {
        Some(0) => return Err(invalid(format!("{path}.maxSessions"), "must be at least 1")),
        Some(n) => n as usize,
        None => default_max_sessions,
    };
    Ok(Client {
        name: "".into(),
        key: [0; 32],
        previous: Vec::new(),
        servers: c.servers,
        groups: c.groups.unwrap_or_default(),
        tools,
        rate,
        max_concurrent,
        max_sessions,
        label: "".into(),
        subject: None,
        policy: path.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<Arc<Client>>, Invalid> {
        let raw: IndexMap<String, raw::RawClient> = serde_json::from_str(text).unwrap();
        let known = Known {
            servers: &|s| s == "fs" || s == "fetch",
            groups: &|g| g == "all",
        };
        validate(Some(raw), 1024, &known, &mut vec![])
    }

    #[test]
    fn a_client_by_hash_with_policy_and_limits() {
        let c = load(&format!(
            r#"{{"laptop": {{"tokenSha256": "{}", "servers": ["fs"], "groups": ["all"],
                "tools": {{"fs": {{"mode": "allow", "list": ["read_file"]}}}},
                "rate": "5/s", "maxConcurrent": 2}}}}"#,
            sha256_hex("secret")
        ))
        .unwrap();
        let c = &c[0];
        assert!(c.holds(&sha256("secret"), SystemTime::now()));
        assert!(!c.holds(&sha256("other"), SystemTime::now()));
        assert!(c.reaches_server("fs") && !c.reaches_server("fetch"));
        assert!(c.reaches_group("all") && !c.reaches_group("x"));
        let rule = c.rule_for("fs").unwrap();
        assert!(rule.filter.allows("read_file") && !rule.filter.allows("write_file"));
        assert_eq!(&*rule.path, "mcpProxy.options.clients.laptop.tools.fs");
        assert_eq!(
            c.rate,
            Some(Rate {
                count: 5,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(c.max_sessions, 1024);
    }

    #[test]
    fn a_retired_token_works_until_its_time() {
        let c = load(&format!(
            r#"{{"a": {{"token": "new", "previous": [{{"tokenSha256": "{}", "until": "2030-01-01T00:00:00Z"}}]}}}}"#,
            sha256_hex("old")
        ))
        .unwrap();
        let before = humantime::parse_rfc3339("2029-12-31T23:59:59Z").unwrap();
        let after = humantime::parse_rfc3339("2030-01-01T00:00:01Z").unwrap();
        assert!(c[0].holds(&sha256("old"), before));
        assert!(!c[0].holds(&sha256("old"), after));
        assert!(c[0].holds(&sha256("new"), after));
    }

    #[test]
    fn mistakes_name_their_place() {
        for (text, want) in [
            (
                r#"{"Laptop": {"token": "x"}}"#,
                "clients.Laptop: a client name must match",
            ),
            (r#"{"a": {}}"#, "clients.a: a client needs tokenSha256"),
            (
                r#"{"a": {"tokenSha256": "abc"}}"#,
                "clients.a.tokenSha256: must be 64 hex",
            ),
            (
                r#"{"a": {"token": "x", "rate": "fast"}}"#,
                "clients.a.rate: \"fast\" is not a rate",
            ),
            (
                r#"{"a": {"token": "x", "rate": "0/s"}}"#,
                "clients.a.rate: must allow at least 1",
            ),
            (
                r#"{"a": {"token": "x", "maxSessions": 0}}"#,
                "clients.a.maxSessions: must be at least 1",
            ),
            (
                r#"{"a": {"token": "x"}, "b": {"token": "x"}}"#,
                "clients.b: has the same token as client \"a\"",
            ),
            (
                r#"{"a": {"token": "x", "tools": {"fs": {"mode": "only"}}}}"#,
                "clients.a.tools.fs.mode: \"only\" is not",
            ),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(Rate::parse("120/min").unwrap().per, Duration::from_secs(60));
        assert_eq!(Rate::parse("10/s").unwrap().count, 10);
        assert!(Rate::parse("10").is_err());
    }
}
