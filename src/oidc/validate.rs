//! One JWT access token checked against the provider's keys: its size, its
//! algorithm (RS256, ES256 and EdDSA only: never `none`, never an HMAC one,
//! which would let a public key serve as the secret), its signature, `iss`,
//! `exp` and `nbf` (with [`LEEWAY`] for clocks that disagree). Audience and
//! scopes depend on the route and the config, and are read by the caller
//! from the claims returned.

use super::jwks::KeySet;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

/// Tokens larger than this are refused unread.
pub const MAX_TOKEN: usize = 8 * 1024;
/// How far `exp` and `nbf` may be off.
pub const LEEWAY: u64 = 60;

/// Why a token is not accepted (the message goes to the log, not to the caller).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("larger than {MAX_TOKEN} bytes")]
    TooLarge,
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm {0} is not accepted (RS256, ES256, EdDSA)")]
    Algorithm(String),
    #[error("signed with a key the provider does not publish")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYet,
    #[error("issued by {0:?}, not the configured issuer")]
    Issuer(String),
    #[error("its claims are unusable: {0}")]
    Claims(String),
}

/// Whether `token` has the shape of a JWT (three dot-separated parts): only
/// such a token is worth checking against the provider.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.contains(char::is_whitespace)
}

/// The algorithm and key id a token's header names, refusing the
/// algorithms the hub never accepts before any key is looked at.
pub fn header(token: &str) -> Result<(Algorithm, Option<String>), Invalid> {
    if token.len() > MAX_TOKEN {
        return Err(Invalid::TooLarge);
    }
    if !looks_like_jwt(token) {
        return Err(Invalid::Malformed);
    }
    // Read the `alg` ourselves first: jsonwebtoken's header type cannot hold
    // `none` and would call it malformed; the log should say what it was.
    let head = token.split('.').next().unwrap_or("");
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, head)
        .map_err(|_| Invalid::Malformed)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| Invalid::Malformed)?;
    let alg = v.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(Invalid::Algorithm(super::safe(other))),
    };
    let kid = v.get("kid").and_then(Value::as_str).map(str::to_string);
    Ok((alg, kid))
}

/// The token's claims, once its signature, issuer and times are checked.
/// `Err(UnknownKey)` when `keys` has no key for it (the caller may fetch
/// the set again and retry).
pub fn check(token: &str, keys: &KeySet, issuer: &str) -> Result<Map<String, Value>, Invalid> {
    let (alg, kid) = header(token)?;
    let key = keys.find(kid.as_deref(), alg).ok_or(Invalid::UnknownKey)?;
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY;
    v.validate_nbf = true;
    // The audience is checked by the caller, against the route called too.
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => Invalid::Signature,
            K::ExpiredSignature => Invalid::Expired,
            K::ImmatureSignature => Invalid::NotYet,
            K::InvalidAlgorithm => Invalid::Algorithm(format!("{alg:?}")),
            K::MissingRequiredClaim(c) => Invalid::Claims(format!("no {c}")),
            K::Json(_) | K::Base64(_) | K::Utf8(_) | K::InvalidToken => Invalid::Malformed,
            other => Invalid::Claims(format!("{other:?}")),
        }
    })?;
    let claims = data.claims;
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(Invalid::Issuer(super::safe(iss)));
    }
    Ok(claims)
}

/// The token's `aud`: one string or a list.
pub fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    strings(claims.get("aud"))
}

/// The token's scopes: `scope` (space-separated, RFC 9068) or `scp` (a list,
/// as Azure and Okta write it).
pub fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => strings(claims.get("scp")),
    }
}

/// A claim's value by name, or by a dotted path into nested objects
/// (Keycloak's `realm_access.roles`) when no claim has the whole name.
pub fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// A claim as strings: a string, or the strings of a list.
pub fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}
