//! The caller of a request, resolved once: the configured tokens (named
//! clients, `authTokens`) through `auth`, then, with an identity provider
//! configured, its tokens through `crate::oidc`; and how each refusal is
//! told: 401 with the pointer to the route's protected resource metadata
//! (RFC 9728), 403 for a signed-in caller without the scopes or a rule, 404
//! for a route the caller may not reach.

use super::{auth, response, Body, Rejection};
use crate::hub::Snapshot;
use http::{header, HeaderValue, Method, Response, StatusCode};

/// RFC 9728 protected resource metadata, open: for the hub at
/// `/.well-known/oauth-protected-resource`, for a route at
/// `/.well-known/oauth-protected-resource/<route>`. `None`: not such a path.
pub(super) fn metadata(
    o: &crate::oidc::Oidc,
    method: &Method,
    rest: &str,
) -> Option<Response<Body>> {
    let route = rest
        .strip_prefix("oauth-protected-resource")
        .filter(|r| r.is_empty() || r.starts_with('/'))?;
    if !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let mut r = response::json_response(StatusCode::OK, &o.metadata(route));
    // Browser-based clients read it cross-origin, with no credentials.
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Some(r)
}

/// Points a 401 at the protected resource metadata of the route at `path`
/// (MCP authorization, RFC 9728 §5.1), keeping its `invalid_token`.
pub(super) fn challenge(o: &crate::oidc::Oidc, path: &str, resp: &mut Response<Body>) {
    let error = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("invalid_token"))
        .then_some("invalid_token");
    if let Ok(v) = HeaderValue::from_str(&o.challenge(path, error)) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

/// The caller of a route whose own tokens are `tokens`. A named client the
/// route is not for is told [`Denied::Hidden`]: the route answers it as an
/// unknown one, so nothing is revealed. With an identity provider, a token
/// that is none of the configured ones and looks like a JWT is checked
/// against it, for the route under `prefix` (`/fetch`, `/g/all`).
pub(super) async fn caller(
    snap: &Snapshot,
    tokens: &[String],
    headers: &http::HeaderMap,
    prefix: Option<&str>,
    reaches: impl Fn(&crate::config::clients::Client) -> bool,
    seen: impl Fn(&std::sync::Arc<str>),
) -> Result<Option<crate::session::Token>, Denied> {
    use crate::session::{Secret, Token};
    let id = match (
        &snap.oidc,
        auth::identify(&snap.settings.clients, tokens, headers),
    ) {
        // Configured tokens first, as without a provider; then the provider.
        (Some(o), Ok(auth::Identity::Open) | Err(auth::AuthError::Invalid)) => {
            match auth::bearer(headers) {
                None => return Err(Denied::Auth(refusal(auth::AuthError::Missing))),
                Some(t) if crate::oidc::looks_like_jwt(t) => match o.verify(t, prefix).await {
                    Ok(c) => auth::Identity::Client(c, t.into()),
                    Err(r) => return Err(Denied::Auth(oidc_refusal(r, o))),
                },
                Some(_) => return Err(Denied::Auth(refusal(auth::AuthError::Invalid))),
            }
        }
        (_, r) => r.map_err(|e| Denied::Auth(refusal(e)))?,
    };
    Ok(match id {
        auth::Identity::Open => None,
        auth::Identity::Token(i) => Some(Token {
            label: i,
            secret: Secret(tokens[i].as_str().into()),
            client: None,
        }),
        auth::Identity::Client(c, given) if reaches(&c) => {
            // `/status` lists named clients; signed-in callers are many and
            // come and go, so they are not kept there.
            if c.subject.is_none() {
                seen(&c.name);
            }
            Some(Token {
                label: 0,
                secret: Secret(given),
                client: Some(c),
            })
        }
        auth::Identity::Client(..) => return Err(Denied::Hidden),
    })
}

/// A token the identity provider's check refused, as the caller is told.
fn oidc_refusal(r: crate::oidc::Refusal, o: &crate::oidc::Oidc) -> Rejection {
    use crate::metrics::AuthFailure;
    use crate::oidc::Refusal;
    match r {
        Refusal::Invalid(_) | Refusal::Audience => {
            crate::metrics::global().auth_failed(AuthFailure::Invalid);
            Rejection::InvalidToken
        }
        Refusal::Unavailable => Rejection::Unavailable(
            "the identity provider's keys are not loaded yet; try again shortly".into(),
        ),
        Refusal::Scope => Rejection::InsufficientScope(o.cfg.scopes.join(" ")),
        Refusal::NoRule { .. } => Rejection::NoRule,
    }
}

/// Why [`caller`] turned a request away.
pub(super) enum Denied {
    Auth(Rejection),
    Hidden,
}

impl From<Denied> for Rejection {
    fn from(d: Denied) -> Rejection {
        match d {
            Denied::Auth(r) => r,
            // Only the routes that hide themselves ask with a real `reaches`.
            Denied::Hidden => Rejection::UnknownServer(String::new()),
        }
    }
}

/// A route a named client may not reach answers as an unknown one.
pub(super) fn hidden(d: Denied, route: &str) -> Rejection {
    match d {
        Denied::Auth(r) => r,
        Denied::Hidden => Rejection::UnknownServer(route.into()),
    }
}

fn refusal(e: auth::AuthError) -> Rejection {
    use crate::metrics::AuthFailure;
    let (why, rejection) = match e {
        auth::AuthError::Missing => (AuthFailure::Missing, Rejection::MissingToken),
        auth::AuthError::Invalid => (AuthFailure::Invalid, Rejection::InvalidToken),
    };
    crate::metrics::global().auth_failed(why);
    rejection
}

pub(super) fn authorize(
    tokens: &[String],
    headers: &http::HeaderMap,
) -> Result<Option<usize>, Rejection> {
    use crate::metrics::AuthFailure;
    auth::check(tokens, headers).map_err(|e| {
        let (why, rejection) = match e {
            auth::AuthError::Missing => (AuthFailure::Missing, Rejection::MissingToken),
            auth::AuthError::Invalid => (AuthFailure::Invalid, Rejection::InvalidToken),
        };
        crate::metrics::global().auth_failed(why);
        rejection
    })
}
