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

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h == "::1" || h.starts_with("127.")
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
            let name = strip_port(host).to_ascii_lowercase();
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

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
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
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
