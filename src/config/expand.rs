//! `${VAR}` and `${VAR:-default}` expansion in every string value of the file,
//! and `${credential:NAME}`: the file NAME in `$CREDENTIALS_DIRECTORY`, where
//! systemd puts what the unit's `LoadCredential=` names (so a token need not sit
//! in the config or the environment).
//!
//! Expansion runs on the JSON tree before it is typed, so an error can name the
//! exact path of the string that referred to a missing variable. `$${` writes a
//! literal `${`. A lone `$` is left alone, so shell snippets and regexes in
//! `args` survive.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error(
        "{path}: environment variable {var} is not set (write ${{{var}:-default}} for a fallback)"
    )]
    Unset { path: String, var: String },
    #[error("{path}: unterminated ${{ in {text:?}")]
    Unterminated { path: String, text: String },
    #[error("{path}: {name:?} is not a valid variable name")]
    BadName { path: String, name: String },
    #[error("{path}: credential {name} is not available (is LoadCredential={name}:… in the unit, and $CREDENTIALS_DIRECTORY set?)")]
    Credential { path: String, name: String },
}

/// Expands every string in `v`, looking variables up with `lookup`.
pub fn expand_tree(
    v: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ExpandError> {
    match v {
        Value::String(s) if s.contains('$') => {
            let at = if path.is_empty() { "(top level)" } else { path };
            *s = expand_str(s, at, lookup)?
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &format!("{path}[{i}]"), lookup)?;
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                // An empty key still shows, so the error names its place.
                let k = if k.is_empty() { "\"\"" } else { k.as_str() };
                let p = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                expand_tree(item, &p, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

pub fn expand_str(
    s: &str,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| ExpandError::Unterminated {
                path: path.into(),
                text: s.into(),
            })?;
            let body = &tail[..end];
            if let Some(cred) = body.strip_prefix("credential:") {
                let ok = !cred.is_empty()
                    && cred
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !ok {
                    return Err(ExpandError::BadName {
                        path: path.into(),
                        name: cred.into(),
                    });
                }
                let v = lookup(body).ok_or_else(|| ExpandError::Credential {
                    path: path.into(),
                    name: cred.into(),
                })?;
                out.push_str(&v);
                rest = &tail[end + 1..];
                continue;
            }
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ExpandError::BadName {
                    path: path.into(),
                    name: name.into(),
                });
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ExpandError::Unset {
                        path: path.into(),
                        var: name.into(),
                    })
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "credential:hub-token" => Some("from-systemd".into()),
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_defaults() {
        assert_eq!(
            expand_str("Bearer ${TOKEN}", "p", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(
            expand_str("${NOPE:-x}-${TOKEN:-y}", "p", &env).unwrap(),
            "x-s3cret"
        );
        // An empty variable takes the default, as in the shell's `:-`.
        assert_eq!(expand_str("${EMPTY:-d}", "p", &env).unwrap(), "d");
        assert_eq!(expand_str("${EMPTY}", "p", &env).unwrap(), "");
        assert_eq!(
            expand_str("cost $5 and $${LIT}", "p", &env).unwrap(),
            "cost $5 and ${LIT}"
        );
    }

    #[test]
    fn credentials() {
        assert_eq!(
            expand_str("Bearer ${credential:hub-token}", "p", &env).unwrap(),
            "Bearer from-systemd"
        );
        let e = expand_str(
            "${credential:other}",
            "mcpProxy.options.authTokens[0]",
            &env,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mcpProxy.options.authTokens[0]: credential other is not available"),
            "{e}"
        );
        assert!(matches!(
            expand_str("${credential:../x}", "p", &env),
            Err(ExpandError::BadName { .. })
        ));
    }

    #[test]
    fn errors_name_path_and_variable() {
        let err = expand_str("${MISSING}", "mcpServers.x.env.K", &env).unwrap_err();
        assert_eq!(err.to_string(), "mcpServers.x.env.K: environment variable MISSING is not set (write ${MISSING:-default} for a fallback)");
        assert!(matches!(
            expand_str("${OPEN", "p", &env),
            Err(ExpandError::Unterminated { .. })
        ));
        assert!(matches!(
            expand_str("${1X}", "p", &env),
            Err(ExpandError::BadName { .. })
        ));
    }

    #[test]
    fn walks_the_tree_with_paths() {
        let mut v = json!({"a": {"b": ["ok", "${GONE}"]}});
        let err = expand_tree(&mut v, "", &env).unwrap_err();
        assert_eq!(
            err,
            ExpandError::Unset {
                path: "a.b[1]".into(),
                var: "GONE".into()
            }
        );
        let mut v = json!({"a": ["${TOKEN}"]});
        expand_tree(&mut v, "", &env).unwrap();
        assert_eq!(v, json!({"a": ["s3cret"]}));
    }
}
