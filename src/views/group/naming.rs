//! Names in a group, independent of any config or session: how a member's
//! tool or prompt name becomes the group's (`<server><sep><tool>`), how a name
//! that would break clients is shortened, and how resource URIs are
//! namespaced by server and reversed.
//!
//! - A public name must match `^[a-zA-Z0-9_-]+$` and be at most 64
//!   characters (what most clients and model APIs accept). One that does not
//!   is shortened deterministically: the offending characters become `_`, the
//!   name is cut to leave room, and `_` plus the first 8 hex digits of the
//!   SHA-256 of the full name is appended. The same members and tools always
//!   give the same names; the session keeps the mapping to route calls back.
//! - A resource URI `u` of server `s` is served as
//!   `mcp-hub://s/<u percent-encoded>` (every byte but A-Z a-z 0-9 - . _ ~
//!   encoded, so the original survives any client's URL normalization), and
//!   decoded back on `resources/read` and subscriptions. A URI template keeps
//!   its `{…}` expressions verbatim so clients can still expand it.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// The longest public name.
pub const MAX_NAME: usize = 64;
/// A prefix that leaves fewer characters than this for the tool's own name
/// is worth a warning in `check`.
pub const ROOM_WARN: usize = 24;
/// The scheme of namespaced resource URIs.
pub const URI_SCHEME: &str = "mcp-hub";

/// Bytes kept as they are in a namespaced URI.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `^[a-zA-Z0-9_-]+$`
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The group's name for `tool` of `server`.
pub fn public(server: &str, sep: &str, tool: &str) -> String {
    let full = format!("{server}{sep}{tool}");
    if full.len() <= MAX_NAME && is_valid_name(&full) {
        full
    } else {
        shorten(&full)
    }
}

/// Whether [`public`] had to shorten this name.
pub fn is_shortened(server: &str, sep: &str, tool: &str) -> bool {
    let full_len = server.len() + sep.len() + tool.len();
    full_len > MAX_NAME || !(is_valid_name(server) && is_valid_name(sep) && is_valid_name(tool))
}

/// A valid name of at most 64 characters for `full`, unique by its hash.
pub fn shorten(full: &str) -> String {
    let hash = Sha256::digest(full.as_bytes());
    let tag: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    let clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME - tag.len() - 1)
        .collect();
    format!("{clean}_{tag}")
}

/// The group's URI for resource `uri` of `server`.
pub fn public_uri(server: &str, uri: &str) -> String {
    format!("{URI_SCHEME}://{server}/{}", utf8_percent_encode(uri, KEEP))
}

/// The group's URI template for `template` of `server`: `{…}` expressions stay.
pub fn public_template(server: &str, template: &str) -> String {
    let mut out = format!("{URI_SCHEME}://{server}/");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.extend(utf8_percent_encode(&rest[..open], KEEP));
        out.push_str(&rest[open..open + close + 1]);
        rest = &rest[open + close + 1..];
    }
    out.extend(utf8_percent_encode(rest, KEEP));
    out
}

/// The server and original URI of a group URI; `None` if it is not one.
pub fn private_uri(public: &str) -> Option<(&str, String)> {
    let rest = public.strip_prefix(URI_SCHEME)?.strip_prefix("://")?;
    let (server, enc) = rest.split_once('/')?;
    let uri = percent_decode_str(enc).decode_utf8().ok()?;
    (!server.is_empty()).then(|| (server, uri.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_prefixed() {
        assert_eq!(public("fetch", "__", "fetch"), "fetch__fetch");
        assert!(!is_shortened("fetch", "__", "fetch"));
    }

    #[test]
    fn bad_or_long_names_are_shortened_deterministically() {
        let a = public("my.server", "__", "read");
        assert!(is_valid_name(&a) && a.len() <= MAX_NAME, "{a}");
        assert_eq!(a, public("my.server", "__", "read"));
        assert!(is_shortened("my.server", "__", "read"));
        // Two names that clean up alike stay apart by their hash.
        assert_ne!(a, public("my_server", "__", "read"));
        let long = "t".repeat(80);
        let b = public("srv", "__", &long);
        assert_eq!(b.len(), MAX_NAME);
        assert!(b.starts_with("srv__ttt"));
        assert_ne!(b, public("srv", "__", &"t".repeat(81)));
    }

    #[test]
    fn uris_round_trip() {
        for uri in [
            "test://static-text",
            "file:///a b/ü?x=1#f",
            "https://h/x/../y",
        ] {
            let p = public_uri("fx", uri);
            assert!(url::Url::parse(&p).is_ok(), "{p}");
            assert_eq!(private_uri(&p), Some(("fx", uri.to_string())));
        }
        assert_eq!(private_uri("test://static-text"), None);
    }

    #[test]
    fn templates_keep_their_expressions() {
        let t = public_template("fx", "test://template/{id}/data");
        assert_eq!(t, "mcp-hub://fx/test%3A%2F%2Ftemplate%2F{id}%2Fdata");
        let expanded = t.replace("{id}", "7");
        assert_eq!(
            private_uri(&expanded),
            Some(("fx", "test://template/7/data".to_string()))
        );
    }
}
