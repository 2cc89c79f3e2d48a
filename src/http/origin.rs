//! DNS-rebinding protection and CORS.
//!
//! A browser page on another site can reach a LAN or loopback server; the Origin
//! header is how the hub tells. A request with an Origin that is not allowed gets
//! 403. Allowed: localhost origins (any port), the `baseURL` origin,
//! `allowedOrigins`, and `cors.origins`. Requests without Origin (every non-browser
//! client) pass. The Host header is checked when `allowedHosts` is set, or when
//! `baseURL` is (then its host and localhost are allowed): a rebinding attack
//! arrives with the attacker's host name. CORS headers go out only for
//! `cors.origins`.

use crate::config::HubSettings;
use http::HeaderMap;
use url::Url;

pub struct Policy {
    origins: Vec<String>,
    cors: Vec<String>,
    hosts: Option<Vec<String>>,
}

fn normalize(origin: &str) -> Option<String> {
    let u = Url::parse(origin).ok()?;
    let host = u.host_str()?;
    let port = u.port_or_known_default()?;
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        host.to_ascii_lowercase(),
        port
    ))
}

/// Loopback means exactly `localhost`, an IPv4 address in 127.0.0.0/8 or `::1`.
/// A name that merely starts with `127.` (`127.0.0.1.attacker.example`) is a
/// DNS name like any other: that is the rebinding attack itself.
fn is_loopback_host(host: &str) -> bool {
    let h = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    Origin(String),
    Host(String),
}

impl Policy {
    pub fn new(s: &HubSettings) -> Policy {
        let mut origins: Vec<String> = s
            .allowed_origins
            .iter()
            .filter_map(|o| normalize(o))
            .collect();
        if let Some(b) = &s.base_url {
            origins.extend(normalize(b.as_str()));
        }
        let cors: Vec<String> = s.cors_origins.iter().filter_map(|o| normalize(o)).collect();
        origins.extend(cors.iter().cloned());
        Policy {
            origins,
            cors,
            hosts: s.allowed_hosts.clone(),
        }
    }

    /// Checks Host and Origin. On success returns the origin to echo in CORS
    /// headers, if CORS applies to it.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<String>, Rejected> {
        if let Some(hosts) = &self.hosts {
            let host = headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // A Host that is not a valid authority is refused, never sliced.
            let Some(name) = host_name(host) else {
                return Err(Rejected::Host(host.into()));
            };
            if !hosts.contains(&name) && !is_loopback_host(&name) {
                return Err(Rejected::Host(host.into()));
            }
        }
        let Some(origin) = headers.get(http::header::ORIGIN) else {
            return Ok(None);
        };
        let raw = origin.to_str().unwrap_or("");
        let Some(norm) = normalize(raw) else {
            return Err(Rejected::Origin(raw.into()));
        };
        let loopback = Url::parse(raw)
            .ok()
            .and_then(|u| u.host_str().map(is_loopback_host))
            .unwrap_or(false);
        if !loopback && !self.origins.contains(&norm) {
            return Err(Rejected::Origin(raw.into()));
        }
        Ok(self.cors.contains(&norm).then(|| raw.to_string()))
    }

    pub fn cors_enabled(&self) -> bool {
        !self.cors.is_empty()
    }
}

/// The lowercased host name of a Host header, without its port; IPv6 keeps
/// its brackets. `None` when the header is not a valid authority (`[`,
/// `a b`, `user@host`).
fn host_name(host: &str) -> Option<String> {
    let auth: http::uri::Authority = host.parse().ok()?;
    // What follows the host is nothing or a valid port (`:99999` parses as an
    // authority but has no port).
    let tail = auth.as_str().strip_prefix(auth.host())?;
    if auth.as_str().contains('@') || (!tail.is_empty() && auth.port().is_none()) {
        return None;
    }
    Some(auth.host().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn policy(text: &str) -> Policy {
        Policy::new(&config::parse(text, "t", &|_| None).unwrap().hub)
    }

    fn hdrs(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn origins() {
        let p = policy(
            r#"{"mcpProxy": {"baseURL": "http://hub.lan:9090", "options": {"cors": {"origins": ["http://webui.lan:3000"]}}}}"#,
        );
        assert_eq!(p.check(&hdrs(&[("host", "hub.lan:9090")])), Ok(None));
        assert_eq!(
            p.check(&hdrs(&[
                ("host", "hub.lan:9090"),
                ("origin", "http://hub.lan:9090")
            ])),
            Ok(None)
        );
        assert_eq!(
            p.check(&hdrs(&[
                ("host", "localhost:9090"),
                ("origin", "http://localhost:5173")
            ])),
            Ok(None)
        );
        assert_eq!(
            p.check(&hdrs(&[
                ("host", "hub.lan:9090"),
                ("origin", "http://webui.lan:3000")
            ])),
            Ok(Some("http://webui.lan:3000".into()))
        );
        assert!(matches!(
            p.check(&hdrs(&[
                ("host", "hub.lan"),
                ("origin", "http://evil.example")
            ])),
            Err(Rejected::Origin(_))
        ));
        assert!(matches!(
            p.check(&hdrs(&[("host", "evil.example:9090")])),
            Err(Rejected::Host(_))
        ));
        assert!(matches!(
            p.check(&hdrs(&[("host", "hub.lan"), ("origin", "null")])),
            Err(Rejected::Origin(_))
        ));
    }

    #[test]
    fn no_base_url_skips_host_check() {
        let p = policy("{}");
        assert_eq!(p.check(&hdrs(&[("host", "192.168.1.5:9090")])), Ok(None));
        assert!(p
            .check(&hdrs(&[("host", "x"), ("origin", "http://192.168.1.9")]))
            .is_err());
        assert_eq!(host_name("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(host_name("Hub.LAN:9090").as_deref(), Some("hub.lan"));
        assert_eq!(host_name("["), None);
        assert_eq!(host_name("[::1"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn malformed_hosts_are_refused_not_sliced() {
        let p = policy(r#"{"mcpProxy": {"baseURL": "http://hub.lan:9090"}}"#);
        for h in [
            "[",
            "[:",
            "[]",
            "[::1",
            "]",
            "a b",
            "x@hub.lan",
            "hub.lan:99999",
        ] {
            assert!(
                matches!(p.check(&hdrs(&[("host", h)])), Err(Rejected::Host(_))),
                "{h:?}"
            );
        }
    }

    #[test]
    fn loopback_means_loopback() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "127.0.0.1.evil.example",
            "127.evil.example",
            "localhost.evil.example",
            "[::2]",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        let p = policy(r#"{"mcpProxy": {"baseURL": "http://hub.lan:9090"}}"#);
        assert!(matches!(
            p.check(&hdrs(&[("host", "127.0.0.1.evil.example:9090")])),
            Err(Rejected::Host(_))
        ));
        assert!(matches!(
            p.check(&hdrs(&[
                ("host", "hub.lan:9090"),
                ("origin", "http://127.0.0.1.evil.example:9090")
            ])),
            Err(Rejected::Origin(_))
        ));
        assert_eq!(
            p.check(&hdrs(&[
                ("host", "127.0.0.1:9090"),
                ("origin", "http://127.0.0.1:5173")
            ])),
            Ok(None)
        );
    }
}
