//! The identity provider's signing keys: found through its discovery
//! document (`jwks_uri`), fetched in the background so a provider that is
//! down never holds up the hub's start, kept for as long as its
//! `Cache-Control: max-age` says (within [`MIN_TTL`]..[`MAX_TTL`]), fetched
//! again at once for a key id it does not know (at most once per
//! [`UNKNOWN_KID_INTERVAL`], so tokens with made-up ids cannot make the hub
//! hammer the provider), and kept when the provider cannot be reached, so
//! signed-in callers go on working through its outage.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long one fetch (discovery or keys) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or key set taken.
pub const MAX_DOCUMENT: usize = 1024 * 1024;
/// Keys are fetched again at least this long after the last fetch...
pub const MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// ...and at most this long after it, whatever `max-age` says.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// When the provider gives no `max-age`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// A token naming a key the set does not hold fetches the set again at most this often.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed fetch, the next try waits this long at most.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {msg}")]
    Http { url: String, msg: String },
    #[error("{url}: larger than {MAX_DOCUMENT} bytes")]
    TooLarge { url: String },
    #[error("{url}: not a usable document: {msg}")]
    Document { url: String, msg: String },
}

/// One verification key.
pub struct Key {
    pub kid: Option<String>,
    /// The algorithm the key is for, from its type (and its `alg`, when given).
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// A fetched key set.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// The key for a token's `kid` and `alg`. A token with no `kid` may use
    /// the one key of its algorithm, if there is just one.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(k) => self
                .keys
                .iter()
                .find(|x| x.kid.as_deref() == Some(k) && x.alg == alg),
            None => {
                let mut of_alg = self.keys.iter().filter(|x| x.alg == alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(one), None) => Some(one),
                    _ => None,
                }
            }
        }
    }

    /// Parses a JWKS document. Keys the hub cannot use (encryption keys,
    /// symmetric ones, other curves, other algorithms) are left out, not an
    /// error: a provider publishes more than the hub needs.
    pub fn parse(doc: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let d: Doc = serde_json::from_slice(doc).map_err(|e| e.to_string())?;
        let mut keys = Vec::new();
        for v in d.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(v) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(p)
                    if p.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519 =>
                {
                    Algorithm::EdDSA
                }
                _ => continue,
            };
            // A key that names another algorithm (RS384, PS256, …) is not for us.
            if let Some(named) = jwk.common.key_algorithm {
                if format!("{named:?}") != format!("{alg:?}") {
                    continue;
                }
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
            });
        }
        Ok(KeySet { keys })
    }
}

/// The provider's keys, fetched and kept up to date.
pub struct Keys {
    issuer: String,
    http: reqwest::Client,
    /// `None` until the first fetch succeeds.
    set: RwLock<Option<Arc<KeySet>>>,
    /// Found once by discovery.
    jwks_uri: RwLock<Option<String>>,
    /// When a token's unknown `kid` last fetched the set; held while fetching,
    /// so a burst of such tokens makes one fetch.
    forced: tokio::sync::Mutex<Option<Instant>>,
}

impl Keys {
    /// Keys of `issuer`, fetched in the background from now on, until the
    /// returned value is dropped. Must run inside the tokio runtime.
    pub fn start(issuer: &str) -> Arc<Keys> {
        let keys = Arc::new(Keys::new(issuer, None));
        let weak = Arc::downgrade(&keys);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                let Some(k) = weak.upgrade() else { return };
                let wait = match k.refresh().await {
                    Ok(ttl) => {
                        backoff = Duration::from_secs(1);
                        ttl
                    }
                    Err(e) => {
                        let had = k.current().is_some();
                        crate::ratelimit::warn(
                            "oidc-jwks",
                            format_args!(
                                "identity provider keys: {e}; {}",
                                if had {
                                    "keeping the keys fetched before"
                                } else {
                                    "signed-in callers get 503 until they load"
                                }
                            ),
                        );
                        let w = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        w
                    }
                };
                drop(k);
                tokio::time::sleep(wait).await;
            }
        });
        keys
    }

    /// Keys that are never fetched: `set` as given (tests, benchmarks).
    pub fn fixed(issuer: &str, set: KeySet) -> Arc<Keys> {
        Arc::new(Keys::new(issuer, Some(Arc::new(set))))
    }

    /// Keys that were never fetched (tests).
    #[cfg(test)]
    pub fn empty_for_tests(issuer: &str) -> Keys {
        Keys::new(issuer, None)
    }

    fn new(issuer: &str, set: Option<Arc<KeySet>>) -> Keys {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT / 2)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Keys {
            issuer: issuer.to_string(),
            http,
            set: RwLock::new(set),
            jwks_uri: RwLock::new(None),
            forced: tokio::sync::Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The keys in force; `None` until the first fetch succeeded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// For a token whose key is not in the set: fetches the set again,
    /// unless that was done less than [`UNKNOWN_KID_INTERVAL`] ago.
    pub async fn refetch_for_unknown_kid(&self) {
        let mut last = self.forced.lock().await;
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.refresh().await {
            crate::ratelimit::warn(
                "oidc-jwks",
                format_args!("identity provider keys (for a new key id): {e}"),
            );
        }
    }

    /// Fetches the set (discovering where it is first) and puts it in
    /// force; on success, how long until the next fetch.
    async fn refresh(&self) -> Result<Duration, FetchError> {
        let known = self
            .jwks_uri
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let uri = match known {
            Some(u) => u,
            None => {
                let u = self.discover().await?;
                *self.jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(u.clone());
                u
            }
        };
        let (body, max_age) = self.get(&uri).await?;
        let set = KeySet::parse(&body).map_err(|msg| FetchError::Document {
            url: uri.clone(),
            msg,
        })?;
        if set.keys.is_empty() {
            return Err(FetchError::Document {
                url: uri,
                msg: "no RS256, ES256 or EdDSA signing key in it".into(),
            });
        }
        tracing::debug!(
            keys = set.keys.len(),
            "fetched the identity provider's keys"
        );
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(set));
        Ok(max_age.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL))
    }

    /// `jwks_uri` from the OpenID discovery document, else the OAuth
    /// authorization server metadata (RFC 8414).
    async fn discover(&self) -> Result<String, FetchError> {
        let base = self.issuer.trim_end_matches('/');
        let mut last = None;
        for doc in ["openid-configuration", "oauth-authorization-server"] {
            let url = format!("{base}/.well-known/{doc}");
            match self.get(&url).await {
                Ok((body, _)) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).map_err(|e| FetchError::Document {
                            url: url.clone(),
                            msg: e.to_string(),
                        })?;
                    return match v.get("jwks_uri").and_then(|u| u.as_str()) {
                        Some(u) => Ok(u.to_string()),
                        None => Err(FetchError::Document {
                            url,
                            msg: "it has no jwks_uri".into(),
                        }),
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| FetchError::Http {
            url: base.into(),
            msg: "no discovery document".into(),
        }))
    }

    /// A document of at most [`MAX_DOCUMENT`] bytes, and its `max-age`.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let http = |msg: String| FetchError::Http {
            url: url.to_string(),
            msg,
        };
        let mut resp = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(http(format!("answered {}", resp.status())));
        }
        let max_age = resp
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err(FetchError::TooLarge { url: url.into() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| http(e.to_string()))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(FetchError::TooLarge { url: url.into() });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// `max-age` of a `Cache-Control` header (`no-store`/`no-cache`: zero, so
/// the shortest time applies).
pub fn max_age(header: &str) -> Option<Duration> {
    let mut out = None;
    for d in header.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            out = n.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_bounded_by_the_caller() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(
            Duration::from_secs(10).clamp(MIN_TTL, MAX_TTL),
            MIN_TTL,
            "a provider asking for 10 s is fetched every 5 min"
        );
    }

    #[test]
    fn a_set_keeps_only_keys_the_hub_can_use() {
        let doc = br#"{"keys": [
            {"kty": "RSA", "kid": "r", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB", "use": "sig"},
            {"kty": "RSA", "kid": "enc", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB", "use": "enc"},
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "weird"}
        ]}"#;
        let set = KeySet::parse(doc).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("r")]);
        assert!(set.find(Some("r"), Algorithm::RS256).is_some());
        assert!(set.find(Some("r"), Algorithm::ES256).is_none());
        assert!(set.find(None, Algorithm::RS256).is_some());
        assert!(set.find(Some("x"), Algorithm::RS256).is_none());
    }
}
