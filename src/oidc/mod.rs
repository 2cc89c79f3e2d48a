//! Sign-in with the LAN's identity provider: the hub as an OAuth 2.1
//! resource server (MCP authorization, RFC 9728, RFC 8707). A caller whose
//! bearer token is none of the configured ones and looks like a JWT is
//! checked here: signature against the provider's published keys (`jwks`),
//! issuer, times (`validate`), then audience (the hub, or the route called),
//! scopes, and the first rule of `mcpProxy.options.oidc.rules` its claims
//! match, which makes it a named client with that rule's policy.
//!
//! A checked token is remembered by its SHA-256 until it expires (at most
//! [`CACHE_MAX`] of them), so a signed-in caller costs a hash and a lookup per
//! request, like a named client.

pub mod jwks;
pub mod validate;

use crate::config::clients::{sha256, Client};
use crate::config::oidc::OidcConfig;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use validate::looks_like_jwt;

/// Checked tokens remembered at most.
pub const CACHE_MAX: usize = 10_000;

/// Why a token was not accepted, as the caller is told.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401 `invalid_token`: not a token of this provider for this hub.
    Invalid(validate::Invalid),
    /// 401 `invalid_token`: a good token for another resource.
    Audience,
    /// 503: the provider's keys have not been fetched yet.
    Unavailable,
    /// 403 `insufficient_scope`: a good token without the scopes configured.
    Scope,
    /// 403: a good token no rule admits.
    NoRule { subject: String },
}

/// What a checked token grants, remembered until it expires.
struct Checked {
    exp: u64,
    audiences: Vec<String>,
    scoped: bool,
    /// `Err(subject)`: no rule matched.
    client: Result<Arc<Client>, String>,
}

/// The identity provider in force: its config, its keys, the tokens checked.
pub struct Oidc {
    pub cfg: Arc<OidcConfig>,
    keys: Arc<jwks::Keys>,
    /// Read on every request of a signed-in caller: lock-free.
    cache: papaya::HashMap<[u8; 32], Arc<Checked>>,
}

impl Oidc {
    /// The provider of `cfg`. A reload with the same issuer keeps `previous`'s
    /// keys (no refetch, no window without keys); the checked tokens start
    /// afresh, since the rules they were mapped by may have changed.
    pub fn new(cfg: Arc<OidcConfig>, previous: Option<&Oidc>) -> Arc<Oidc> {
        let keys = match previous {
            Some(p) if p.keys.issuer() == cfg.issuer => p.keys.clone(),
            _ => jwks::Keys::start(&cfg.issuer),
        };
        Oidc::with_keys(cfg, keys)
    }

    /// The provider of `cfg` with the keys given (tests, benchmarks).
    pub fn with_keys(cfg: Arc<OidcConfig>, keys: Arc<jwks::Keys>) -> Arc<Oidc> {
        Arc::new(Oidc {
            cfg,
            keys,
            cache: papaya::HashMap::new(),
        })
    }

    /// The caller `token` names, for a request to the route under `prefix`
    /// (`/fetch`, `/g/all`; `None` for hub-wide endpoints): its `aud` must
    /// hold the configured audience, or that route's URL or one under it.
    pub async fn verify(&self, token: &str, prefix: Option<&str>) -> Result<Arc<Client>, Refusal> {
        if token.len() > validate::MAX_TOKEN {
            return Err(Refusal::Invalid(validate::Invalid::TooLarge));
        }
        let hash = sha256(token);
        let now = now();
        let cached = self.cache.pin().get(&hash).cloned();
        let checked = match cached {
            Some(c) if c.exp + validate::LEEWAY >= now => c,
            _ => {
                let c = Arc::new(self.check(token).await?);
                self.remember(hash, c.clone(), now);
                c
            }
        };
        if checked.exp + validate::LEEWAY < now {
            return Err(Refusal::Invalid(validate::Invalid::Expired));
        }
        if !self.audience_ok(&checked.audiences, prefix) {
            return Err(Refusal::Audience);
        }
        if !checked.scoped {
            return Err(Refusal::Scope);
        }
        checked.client.clone().map_err(|subject| {
            crate::ratelimit::warn(
                "oidc-no-rule",
                format_args!(
                    "signed-in caller {subject} matches no rule of mcpProxy.options.oidc.rules: refused (403)"
                ),
            );
            Refusal::NoRule { subject }
        })
    }

    /// Signature, issuer and times; on an unknown key, one more try after
    /// fetching the keys again (a provider that rotated its keys).
    async fn check(&self, token: &str) -> Result<Checked, Refusal> {
        let keys = self.keys.current().ok_or(Refusal::Unavailable)?;
        let claims = match validate::check(token, &keys, &self.cfg.issuer) {
            Err(validate::Invalid::UnknownKey) => {
                self.keys.refetch_for_unknown_kid().await;
                let keys = self.keys.current().ok_or(Refusal::Unavailable)?;
                validate::check(token, &keys, &self.cfg.issuer)
            }
            other => other,
        }
        .map_err(|e| {
            tracing::debug!("refused an identity provider token: {e}");
            Refusal::Invalid(e)
        })?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let have = validate::scopes(&claims);
        let scoped = self.cfg.scopes.iter().all(|s| have.contains(s));
        Ok(Checked {
            exp,
            audiences: validate::audiences(&claims),
            scoped,
            client: self.client_of(&claims),
        })
    }

    /// The named client the first matching rule makes of these claims, or
    /// the subject no rule admits.
    fn client_of(&self, claims: &Map<String, Value>) -> Result<Arc<Client>, String> {
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        let subject = safe(sub);
        let rule = self
            .cfg
            .rules
            .iter()
            .find(|r| validate::strings(validate::claim(claims, &r.claim)).contains(&r.value));
        let Some(rule) = rule else {
            return Err(subject);
        };
        // The caller's name for audit lines and its own session cap; a
        // missing claim falls back to `sub` (a client_credentials token has
        // no preferred_username).
        let name = validate::claim(claims, &self.cfg.client_claim)
            .and_then(Value::as_str)
            .map(safe)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| subject.clone());
        Ok(Arc::new(Client {
            name: name.into(),
            subject: Some(subject.into()),
            ..(*rule.policy).clone()
        }))
    }

    fn audience_ok(&self, auds: &[String], prefix: Option<&str>) -> bool {
        let route = prefix.map(|p| self.cfg.resource_of(p));
        auds.iter().any(|a| {
            let a = a.trim_end_matches('/');
            a == self.cfg.audience
                || route.as_deref().is_some_and(|r| {
                    a == r || (a.starts_with(r) && a.as_bytes().get(r.len()) == Some(&b'/'))
                })
        })
    }

    /// Keeps a checked token; a full cache first forgets the expired ones,
    /// then, if still full, all (the next request of each re-checks, which
    /// costs a signature check, not a refusal).
    fn remember(&self, hash: [u8; 32], c: Arc<Checked>, now: u64) {
        let m = self.cache.pin();
        if m.len() >= CACHE_MAX {
            m.retain(|_, c| c.exp + validate::LEEWAY >= now);
            if m.len() >= CACHE_MAX {
                m.clear();
            }
        }
        m.insert(hash, c);
    }

    /// Tokens remembered now (tests).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The `WWW-Authenticate` challenge of a 401 on `path`: where the
    /// protected resource metadata of that route is (RFC 9728 §5.1), and
    /// the scopes to ask for.
    pub fn challenge(&self, path: &str, error: Option<&str>) -> String {
        let mut h = format!(
            "Bearer realm=\"mcp-hub\", resource_metadata=\"{}\"",
            self.metadata_url(path)
        );
        if !self.cfg.scopes.is_empty() {
            h.push_str(&format!(", scope=\"{}\"", self.cfg.scopes.join(" ")));
        }
        if let Some(e) = error {
            h.push_str(&format!(", error=\"{e}\""));
        }
        h
    }

    /// The URL of the protected resource metadata for a route's `path`.
    pub fn metadata_url(&self, path: &str) -> String {
        let p = path.trim_end_matches('/');
        self.cfg
            .resource_of(&format!("/.well-known/oauth-protected-resource{p}"))
    }

    /// RFC 9728 protected resource metadata: for the hub (`path` empty), or
    /// for the route at `path`.
    pub fn metadata(&self, path: &str) -> Value {
        let p = path.trim_end_matches('/');
        let resource = if p.is_empty() {
            self.cfg.audience.clone()
        } else {
            self.cfg.resource_of(p)
        };
        let mut m = serde_json::json!({
            "resource": resource,
            "authorization_servers": [self.cfg.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-hub",
        });
        if !self.cfg.scopes.is_empty() {
            m["scopes_supported"] = serde_json::json!(self.cfg.scopes);
        }
        m
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A claim value as it may appear in a log line or a name: printable ASCII
/// of a safe kind, at most 64 characters; anything else becomes `_`, so a
/// claim cannot forge log lines.
pub fn safe(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
