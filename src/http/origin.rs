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
    // Brackets hold an IPv6 address and nothing else: `[127.0.0.1]` is no host.
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
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
            "[127.0.0.1]",
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

    /// Loopback by an independent reading: `url`'s host parser, then the
    /// address ranges themselves.
    fn truly_loopback(name: &str) -> bool {
        // A bare IPv6 address (how an Origin's host_str() has none) gets its brackets.
        let bracketed = format!("[{name}]");
        let name = if name.contains(':') && !name.starts_with('[') {
            &bracketed
        } else {
            name
        };
        match url::Host::parse(name) {
            Ok(url::Host::Ipv4(ip)) => ip.octets()[0] == 127,
            Ok(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
            Ok(url::Host::Domain(d)) => d == "localhost",
            Err(_) => false,
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Host-like text: arbitrary strings, and pieces that parsers trip on.
        fn host() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("127.0.0.1".to_string()),
                Just("localhost".into()),
                Just("[::1]".into()),
                Just("::1".into()),
                Just("hub.lan".into()),
                Just("evil.example".into()),
                Just("[".into()),
                Just("]".into()),
                Just(":".into()),
                Just("@".into()),
                Just(".".into()),
                Just("%".into()),
                (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=255)
                    .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
                any::<u16>().prop_map(|p| format!(":{p}")),
                any::<u32>().prop_map(|p| format!(":{p}")),
                any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
                "[a-zA-Z0-9.:\\[\\]@%_-]{0,12}",
            ];
            prop_oneof![
                proptest::collection::vec(piece, 0..5).prop_map(|v| v.concat()),
                any::<String>(),
            ]
        }

        fn lan_policy() -> Policy {
            policy(
                r#"{"mcpProxy": {"baseURL": "http://hub.lan:9090", "options": {"allowedOrigins": ["http://tools.lan:8080"]}}}"#,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn host_checks_never_panic_and_accept_only_what_they_should(h in host()) {
                let _ = host_name(&h);
                let _ = is_loopback_host(&h);
                let Ok(value) = http::HeaderValue::from_str(&h) else { return Ok(()) };
                let mut headers = HeaderMap::new();
                headers.insert(http::header::HOST, value);
                if lan_policy().check(&headers).is_ok() {
                    // An accepted Host re-parses, to the same name.
                    let name = host_name(&h).expect("an accepted Host has a name");
                    prop_assert_eq!(host_name(&name), Some(name.clone()));
                    prop_assert!(
                        name == "hub.lan" || truly_loopback(&name),
                        "{h:?} accepted as {name:?}"
                    );
                }
                // Loopback only for true loopback.
                if is_loopback_host(&h) {
                    prop_assert!(truly_loopback(&h), "{h:?} taken for loopback");
                }
            }

            #[test]
            fn origin_checks_never_panic_and_accept_only_what_they_should(
                scheme in prop_oneof![Just("http"), Just("https"), Just("ftp"), Just(""), Just("null")],
                sep in prop_oneof![Just("://"), Just(":"), Just(""), Just(":///")],
                h in host(),
                tail in prop_oneof![Just(""), Just("/"), Just("/x?y#z"), Just(".evil.example")],
            ) {
                let origin = format!("{scheme}{sep}{h}{tail}");
                let Ok(value) = http::HeaderValue::from_str(&origin) else { return Ok(()) };
                let mut headers = HeaderMap::new();
                headers.insert(http::header::HOST, "hub.lan:9090".parse().unwrap());
                headers.insert(http::header::ORIGIN, value);
                if lan_policy().check(&headers).is_ok() {
                    let u = Url::parse(&origin).expect("an accepted Origin is a URL");
                    let host = u.host_str().expect("with a host");
                    prop_assert!(
                        truly_loopback(host)
                            || ["http://hub.lan:9090", "http://tools.lan:8080"]
                                .contains(&normalize(&origin).unwrap().as_str()),
                        "{origin:?} accepted"
                    );
                }
            }

            #[test]
            fn an_ip_is_loopback_exactly_when_it_is_in_127_8_or_is_1(
                v4 in any::<[u8; 4]>(),
                v6 in any::<[u16; 8]>(),
                suffix in "[a-z]{1,8}",
            ) {
                let ip4 = std::net::Ipv4Addr::from(v4);
                prop_assert_eq!(is_loopback_host(&ip4.to_string()), v4[0] == 127);
                let ip6 = std::net::Ipv6Addr::from(v6);
                prop_assert_eq!(
                    is_loopback_host(&format!("[{ip6}]")),
                    ip6 == std::net::Ipv6Addr::LOCALHOST
                );
                // A DNS name that starts like a loopback address is a name.
                let (dotted, named) = (format!("{ip4}.{suffix}"), format!("localhost.{suffix}"));
                prop_assert!(!is_loopback_host(&dotted), "{}", dotted);
                prop_assert!(!is_loopback_host(&named), "{}", named);
            }
        }
    }
}
