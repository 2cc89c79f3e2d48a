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
