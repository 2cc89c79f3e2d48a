//! Bearer tokens. A route's token list is the server's `authTokens` (inherited
//! from `mcpProxy.options` as TBXark does); an empty list means no auth. Tokens
//! come only from the `Authorization` header, never from the query string, and
//! are compared in constant time.

use http::HeaderMap;
use subtle::ConstantTimeEq;

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
}

/// On success, the index of the token that matched (`None`: no auth configured),
/// so audit entries can name it by its place in the config.
pub fn check(tokens: &[String], headers: &HeaderMap) -> Result<Option<usize>, AuthError> {
    if tokens.is_empty() {
        return Ok(None);
    }
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or(AuthError::Missing)?;
    // Check every token so timing does not tell which one matched.
    let mut found = None;
    for (i, t) in tokens.iter().enumerate() {
        if bool::from(t.as_bytes().ct_eq(given.as_bytes())) {
            found = found.or(Some(i));
        }
    }
    found.map(Some).ok_or(AuthError::Invalid)
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
}
