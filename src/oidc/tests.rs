//! The validator against keys made here: an RSA key kept for the tests
//! (`test_rsa.pem`, used nowhere else), and P-256 and Ed25519 keys generated
//! per run.

use super::jwks::{KeySet, Keys};
use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

/// Nothing listens there: a refetch fails at once.
const ISSUER: &str = "http://127.0.0.1:9";
const AUD: &str = "http://hub.lan:9090";

struct Signer {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn rsa() -> Signer {
    Signer {
        kid: "rsa",
        alg: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(include_bytes!("test_rsa.pem")).unwrap(),
        jwk: json!({"kty": "RSA", "kid": "rsa", "n": include_str!("test_rsa_n.txt"), "e": "AQAB"}),
    }
}

fn ec() -> Signer {
    let rng = ring::rand::SystemRandom::new();
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
    let p = pair.public_key().as_ref();
    Signer {
        kid: "ec",
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_der(der.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": "ec",
                    "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])}),
    }
}

fn ed() -> Signer {
    let rng = ring::rand::SystemRandom::new();
    let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    Signer {
        kid: "ed",
        alg: Algorithm::EdDSA,
        key: EncodingKey::from_ed_der(der.as_ref()),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                    "x": B64.encode(pair.public_key().as_ref())}),
    }
}

fn now() -> i64 {
    super::now() as i64
}

/// Claims of a good token, with `extra` merged over them.
fn claims(extra: Value) -> Value {
    let mut c = json!({"iss": ISSUER, "sub": "u-1", "aud": AUD, "exp": now() + 300,
                       "iat": now(), "scope": "openid mcp", "groups": ["family"],
                       "preferred_username": "alice"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn sign(s: &Signer, c: &Value) -> String {
    let mut h = Header::new(s.alg);
    h.kid = Some(s.kid.into());
    encode(&h, c, &s.key).unwrap()
}

fn oidc(signers: &[&Signer]) -> Arc<Oidc> {
    let text = format!(
        r#"{{"mcpProxy": {{"options": {{"oidc": {{"issuer": "{ISSUER}", "audience": "{AUD}",
              "scopes": ["mcp"], "client": "preferred_username",
              "rules": [{{"claim": "groups", "value": "admins", "servers": "*"}},
                        {{"claim": "groups", "value": "family", "servers": ["fetch"], "rate": "60/min"}}]}}}}}},
            "mcpServers": {{"fetch": {{"command": "x"}}, "fs": {{"command": "y"}}}}}}"#
    );
    let cfg = crate::config::parse(&text, "t.json", &|_| None)
        .unwrap()
        .hub
        .oidc
        .unwrap();
    let jwks = json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()});
    let set = KeySet::parse(jwks.to_string().as_bytes()).unwrap();
    Oidc::with_keys(cfg, Keys::fixed(ISSUER, set))
}

fn invalid(r: Result<Arc<Client>, Refusal>) -> validate::Invalid {
    match r {
        Err(Refusal::Invalid(i)) => i,
        other => panic!("not invalid: {other:?}"),
    }
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_become_a_rules_client() {
    let (r, e, d) = (rsa(), ec(), ed());
    let o = oidc(&[&r, &e, &d]);
    for s in [&r, &e, &d] {
        let c = o.verify(&sign(s, &claims(json!({}))), None).await.unwrap();
        assert_eq!(&*c.name, "alice");
        assert_eq!(c.subject.as_deref(), Some("u-1"));
        assert_eq!(&*c.label, "oidc");
        assert_eq!(&*c.policy, "mcpProxy.options.oidc.rules[1]");
        assert!(c.reaches_server("fetch") && !c.reaches_server("fs"));
        assert_eq!(c.caller_key(), "oidc:alice");
    }
    // A key of one type never checks another algorithm's token.
    let only_ec = oidc(&[&e]);
    let t = sign(&r, &claims(json!({})));
    assert_eq!(
        invalid(only_ec.verify(&t, None).await),
        validate::Invalid::UnknownKey
    );
}

#[tokio::test]
async fn none_and_hmac_are_refused_before_any_key() {
    let r = rsa();
    let o = oidc(&[&r]);
    let body = B64.encode(claims(json!({})).to_string());
    let none = format!("{}.{body}.", B64.encode(r#"{"alg":"none","kid":"rsa"}"#));
    assert_eq!(
        invalid(o.verify(&none, None).await),
        validate::Invalid::Algorithm("none".into())
    );
    // HS256 with the public key as the secret: the classic confusion.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa".into());
    let secret = r.jwk["n"].as_str().unwrap().as_bytes();
    let hs = encode(&h, &claims(json!({})), &EncodingKey::from_secret(secret)).unwrap();
    assert_eq!(
        invalid(o.verify(&hs, None).await),
        validate::Invalid::Algorithm("HS256".into())
    );
    // A good token with its signature swapped for another's.
    let a = sign(&r, &claims(json!({})));
    let b = sign(&r, &claims(json!({"sub": "u-2"})));
    let forged = format!(
        "{}.{}",
        b.rsplit_once('.').unwrap().0,
        a.rsplit_once('.').unwrap().1
    );
    assert_eq!(
        invalid(o.verify(&forged, None).await),
        validate::Invalid::Signature
    );
}

#[tokio::test]
async fn times_have_a_minute_of_leeway() {
    let e = ec();
    let o = oidc(&[&e]);
    let at = |c: Value| sign(&e, &claims(c));
    o.verify(&at(json!({"exp": now() - 30})), None)
        .await
        .unwrap();
    o.verify(&at(json!({"nbf": now() + 30})), None)
        .await
        .unwrap();
    assert_eq!(
        invalid(o.verify(&at(json!({"exp": now() - 90})), None).await),
        validate::Invalid::Expired
    );
    assert_eq!(
        invalid(o.verify(&at(json!({"nbf": now() + 90})), None).await),
        validate::Invalid::NotYet
    );
    assert_eq!(
        invalid(
            o.verify(&at(json!({"iss": "https://other.lan"})), None)
                .await
        ),
        validate::Invalid::Issuer("https:__other.lan".into())
    );
}

#[tokio::test]
async fn the_audience_is_the_hub_or_the_route_called() {
    let d = ed();
    let o = oidc(&[&d]);
    let aud = |a: Value| sign(&d, &claims(json!({ "aud": a })));
    let route = "http://hub.lan:9090/fetch/mcp";
    assert!(o.verify(&aud(json!(AUD)), Some("/fetch")).await.is_ok());
    assert!(o.verify(&aud(json!([route])), Some("/fetch")).await.is_ok());
    assert!(o
        .verify(&aud(json!("http://hub.lan:9090/fetch")), Some("/fetch"))
        .await
        .is_ok());
    // The route's URL is good for that route only.
    assert_eq!(
        o.verify(&aud(json!(route)), Some("/fs")).await.unwrap_err(),
        Refusal::Audience
    );
    assert_eq!(
        o.verify(&aud(json!(route)), None).await.unwrap_err(),
        Refusal::Audience
    );
    assert_eq!(
        o.verify(
            &aud(json!("http://hub.lan:9090/fetchx/mcp")),
            Some("/fetch")
        )
        .await
        .unwrap_err(),
        Refusal::Audience
    );
    assert_eq!(
        o.verify(&aud(json!("https://elsewhere")), None)
            .await
            .unwrap_err(),
        Refusal::Audience
    );
}

#[tokio::test]
async fn scopes_rules_and_the_size_cap() {
    let e = ec();
    let o = oidc(&[&e]);
    let t = |c: Value| sign(&e, &claims(c));
    assert!(o.verify(&t(json!({"scope": "mcp"})), None).await.is_ok());
    let scp = t(json!({"scope": null, "scp": ["mcp", "x"]}));
    assert!(o.verify(&scp, None).await.is_ok());
    assert_eq!(
        o.verify(&t(json!({"scope": "openid"})), None)
            .await
            .unwrap_err(),
        Refusal::Scope
    );
    assert_eq!(
        o.verify(
            &t(json!({"groups": ["strangers"], "sub": "bob\nforged"})),
            None
        )
        .await
        .unwrap_err(),
        Refusal::NoRule {
            subject: "bob_forged".into()
        }
    );
    let admin = o
        .verify(
            &t(json!({"groups": "admins", "preferred_username": null})),
            None,
        )
        .await
        .unwrap();
    assert!(admin.reaches_server("fs"));
    assert_eq!(&*admin.name, "u-1", "no client claim: named by sub");
    let big = t(json!({"pad": "x".repeat(validate::MAX_TOKEN)}));
    assert_eq!(
        invalid(o.verify(&big, None).await),
        validate::Invalid::TooLarge
    );
    assert_eq!(
        invalid(o.verify("a.b.c", None).await),
        validate::Invalid::Malformed
    );
}

#[tokio::test]
async fn a_checked_token_is_remembered_not_checked_again() {
    let r = rsa();
    let o = oidc(&[&r]);
    let tok = sign(&r, &claims(json!({})));
    for _ in 0..3 {
        o.verify(&tok, Some("/fetch")).await.unwrap();
    }
    assert_eq!(o.cached(), 1);
    // Remembered per token: the audience is still checked per route.
    assert_eq!(
        o.verify(
            &sign(&r, &claims(json!({"aud": "http://hub.lan:9090/fs/mcp"}))),
            Some("/fetch")
        )
        .await
        .unwrap_err(),
        Refusal::Audience
    );
    // Refused tokens are not remembered: a stranger cannot fill the cache.
    let _ = o.verify("x.y.z", None).await;
    assert_eq!(o.cached(), 2);
    // Full: the expired go first, then all.
    let t0 = super::now();
    for i in 0..CACHE_MAX as u32 {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_be_bytes());
        h[4] = 1;
        o.remember(
            h,
            Arc::new(Checked {
                exp: t0 - 3600,
                audiences: vec![],
                scoped: true,
                client: Err(String::new()),
            }),
            t0,
        );
    }
    assert!(o.cached() <= CACHE_MAX);
}

#[tokio::test]
async fn keys_not_fetched_yet_is_unavailable_not_invalid() {
    let r = rsa();
    let cfg = oidc(&[&r]).cfg.clone();
    let o = Oidc::with_keys(cfg, Arc::new(Keys::empty_for_tests(ISSUER)));
    assert_eq!(
        o.verify(&sign(&r, &claims(json!({}))), None)
            .await
            .unwrap_err(),
        Refusal::Unavailable
    );
}

#[test]
fn the_challenge_and_metadata_name_the_route() {
    let o = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async { oidc(&[]) });
    assert_eq!(
        o.challenge("/fetch/mcp", Some("invalid_token")),
        "Bearer realm=\"mcp-hub\", resource_metadata=\"http://hub.lan:9090/.well-known/oauth-protected-resource/fetch/mcp\", scope=\"mcp\", error=\"invalid_token\""
    );
    let m = o.metadata("/fetch/mcp");
    assert_eq!(m["resource"], "http://hub.lan:9090/fetch/mcp");
    assert_eq!(m["authorization_servers"][0], ISSUER);
    assert_eq!(m["scopes_supported"][0], "mcp");
    assert_eq!(m["bearer_methods_supported"][0], "header");
    assert_eq!(o.metadata("")["resource"], AUD);
}
