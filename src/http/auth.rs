//! Who is calling. A request's bearer token is a named client's
//! (`mcpProxy.options.clients`, matched by its SHA-256) or one of the route's
//! `authTokens` (inherited from `mcpProxy.options` as TBXark does). Tokens
//! come only from the `Authorization` header, never from the query string,
//! and every candidate is compared in constant time, so timing does not tell
//! which one matched. A route with no tokens and a hub with no clients needs
//! none.

use crate::config::clients::{sha256, Client};
use http::HeaderMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
}

/// Who a request's token says it is.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No auth is configured for the route.
    Open,
    /// The route's `authTokens[i]`.
    Token(usize),
    /// A named client, and the token it presented.
    Client(Arc<Client>, Arc<str>),
}

/// On success, the index of the token that matched (`None`: no auth configured),
/// so audit entries can name it by its place in the config.
pub fn check(tokens: &[String], headers: &HeaderMap) -> Result<Option<usize>, AuthError> {
    match identify(&[], tokens, headers)? {
        Identity::Token(i) => Ok(Some(i)),
        _ => Ok(None),
    }
}

/// The caller, among the named `clients` and the route's `tokens`. With any
/// named client configured, every route wants a token.
pub fn identify(
    clients: &[Arc<Client>],
    tokens: &[String],
    headers: &HeaderMap,
) -> Result<Identity, AuthError> {
    if tokens.is_empty() && clients.is_empty() {
        return Ok(Identity::Open);
    }
    let given = bearer(headers).ok_or(AuthError::Missing)?;
    if !clients.is_empty() {
        // Hashed once; a client's config holds only the hash.
        let sha = sha256(given);
        let now = std::time::SystemTime::now();
        let mut found = None;
        for c in clients {
            if c.holds(&sha, now) && found.is_none() {
                found = Some(c.clone());
            }
        }
        if let Some(c) = found {
            return Ok(Identity::Client(c, given.into()));
        }
    }
    let mut found = None;
    for (i, t) in tokens.iter().enumerate() {
        if bool::from(t.as_bytes().ct_eq(given.as_bytes())) {
            found = found.or(Some(i));
        }
    }
    found.map(Identity::Token).ok_or(AuthError::Invalid)
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn bearer_tokens() {
        let t = vec!["a1".to_string(), "b2".to_string()];
        assert_eq!(check(&t, &h("Bearer b2")), Ok(Some(1)));
        assert_eq!(check(&t, &h("bearer  a1 ")), Ok(Some(0)));
        assert_eq!(check(&t, &h("Bearer a")), Err(AuthError::Invalid));
        assert_eq!(check(&t, &h("Basic a1")), Err(AuthError::Missing));
        assert_eq!(check(&t, &HeaderMap::new()), Err(AuthError::Missing));
        assert_eq!(check(&[], &HeaderMap::new()), Ok(None));
    }

    #[test]
    fn named_clients_by_hash_then_route_tokens() {
        let cfg = format!(
            r#"{{"mcpProxy": {{"options": {{"clients": {{"laptop": {{"tokenSha256": "{}"}}}}}}}}}}"#,
            crate::config::clients::sha256_hex("lap")
        );
        let clients = crate::config::parse(&cfg, "t.json", &|_| None)
            .unwrap()
            .hub
            .clients;
        let t = vec!["plain".to_string()];
        assert!(matches!(
            identify(&clients, &t, &h("Bearer lap")),
            Ok(Identity::Client(c, _)) if &*c.name == "laptop"
        ));
        assert!(matches!(
            identify(&clients, &t, &h("Bearer plain")),
            Ok(Identity::Token(0))
        ));
        assert_eq!(
            identify(&clients, &[], &h("Bearer nope")).unwrap_err(),
            AuthError::Invalid
        );
        // A client configured: a route with no tokens still wants one.
        assert_eq!(
            identify(&clients, &[], &HeaderMap::new()).unwrap_err(),
            AuthError::Missing
        );
    }
}
