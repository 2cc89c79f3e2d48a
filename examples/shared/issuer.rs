//! A stand-in identity provider for loadgen's `--oidc` mode: an ES256 key
//! made for the run, its discovery document and JWKS served on loopback,
//! and one access token signed with it. Enough for the hub to fetch the keys
//! and check the token as it would a real provider's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

pub struct Issuer {
    pub url: String,
    /// An access token for `audience`, valid for an hour, with `groups: ["bench"]`.
    pub token: String,
}

/// Starts the issuer on a free loopback port; it serves until the program ends.
pub async fn start(audience: &str) -> Issuer {
    let rng = ring::rand::SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
    let p = pair.public_key().as_ref();
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "use": "sig",
                                "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])}]});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let (discovery, jwks) = (discovery.to_string(), jwks.to_string());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let (discovery, jwks) = (discovery.clone(), jwks.clone());
            let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let body = match req.uri().path() {
                    "/.well-known/openid-configuration" => Some(discovery.clone()),
                    "/jwks" => Some(jwks.clone()),
                    _ => None,
                };
                async move {
                    let mut r = hyper::Response::new(Full::new(Bytes::from(
                        body.clone().unwrap_or_default(),
                    )));
                    if body.is_none() {
                        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                    }
                    r.headers_mut()
                        .insert("cache-control", "max-age=3600".parse().unwrap());
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc),
            );
        }
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("bench".into());
    let claims = json!({"iss": url, "sub": "bench-user", "aud": audience, "exp": now + 3600,
                        "iat": now, "scope": "mcp", "groups": ["bench"]});
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(der.as_ref()),
    )
    .unwrap();
    Issuer { url, token }
}
