//! Checks of single values that name something: hub ids, origins, listen
//! addresses, and the names that become URL path segments.

use url::Url;

/// A hub id goes into handles (`<hubId>.<hex>`) and into a load balancer's
/// map, so it is short and plain: no dot (the separator), no space, no quote.
pub(super) fn check_hub_id(id: &str) -> Result<(), String> {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if (1..=32).contains(&id.len()) && plain {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a hub id: 1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'"
        ))
    }
}

pub(super) fn check_origin(o: &str) -> Result<(), String> {
    let u = Url::parse(o)
        .map_err(|e| format!("{o:?} is not an origin like \"http://host:3000\": {e}"))?;
    if u.host_str().is_none() || !matches!(u.scheme(), "http" | "https") || u.path() != "/" {
        return Err(format!(
            "{o:?} is not an origin like \"http://host:3000\" (scheme, host, optional port)"
        ));
    }
    Ok(())
}

/// Turns TBXark's `addr` (":9090", "0.0.0.0:9090", "[::1]:9090", "localhost:9090") into
/// something to bind. An empty host means every address, as in Go.
pub fn parse_listen_addr(addr: &str) -> Result<String, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not host:port or :port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{addr:?}: {port:?} is not a port"))?;
    let host = if host.is_empty() { "[::]" } else { host };
    Ok(format!("{host}:{port}"))
}

/// Whether `name` can stand as one URL path segment for a server or a
/// group: 1-64 of `A-Z a-z 0-9 - _ .`, not starting with a dot.
pub(crate) fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

/// Headers a server's `headers` may not set: `Host` (the URL decides where a
/// request goes; a different one sends it elsewhere behind a proxy) and the
/// hop-by-hop and framing headers the HTTP client sets itself (a second
/// `Content-Length` or `Transfer-Encoding` is request smuggling).
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
];

/// One header of a remote server, as HTTP allows it: a token for a name, a
/// value without CR, LF or other control characters, and none of
/// [`FORBIDDEN_HEADERS`].
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let n = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("{name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)")
    })?;
    if FORBIDDEN_HEADERS.contains(&n.as_str()) {
        return Err(format!(
            "{name:?} may not be set: the hub's HTTP client sets it (refused: {})",
            FORBIDDEN_HEADERS.join(", ")
        ));
    }
    http::HeaderValue::from_str(value).map_err(|_| {
        format!("the value of {name} is not a header value: no CR, LF or other control characters (tab is allowed)")
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_header;

    #[test]
    fn headers_are_checked_as_http_allows() {
        assert!(check_header("Authorization", "Bearer ${PG_TOKEN}").is_ok());
        assert!(check_header("X-Tab", "a\tb").is_ok());
        for (n, v, needle) in [
            ("X-A", "v\r\nHost: evil", "no CR, LF"),
            ("X-A", "v\nX-B: 1", "no CR, LF"),
            ("X-A", "v\0", "no CR, LF"),
            ("X-A\r\nHost", "v", "is not a header name"),
            ("X A", "v", "is not a header name"),
            ("", "v", "is not a header name"),
            ("Host", "evil.example", "\"Host\" may not be set"),
            ("content-LENGTH", "0", "may not be set"),
            ("Transfer-Encoding", "chunked", "may not be set"),
            ("Connection", "close", "may not be set"),
            ("Upgrade", "h2c", "may not be set"),
            ("TE", "trailers", "may not be set"),
            ("Keep-Alive", "1", "may not be set"),
            ("Proxy-Connection", "1", "may not be set"),
            ("Trailer", "x", "may not be set"),
        ] {
            let e = check_header(n, v).unwrap_err();
            assert!(e.contains(needle), "{n:?}: {v:?}: {e}");
        }
    }
}
