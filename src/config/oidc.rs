//! `mcpProxy.options.oidc`: the LAN's identity provider as the hub's
//! authorization server. Only the config lives here (the issuer, the
//! audience the hub answers to, the scopes it wants, and the rules that turn
//! a token's claims into a named client's policy); `crate::oidc` fetches the
//! keys and checks tokens. With no `oidc` key nothing of this exists and the
//! hub behaves as before.

use super::clients::{self, Client, Known, RawPolicy};
use super::{invalid, raw, Invalid};
use std::sync::Arc;
use url::Url;

/// The identity provider, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// As written: the `iss` tokens carry (compared without a trailing slash).
    pub issuer: String,
    /// The resource the hub is (RFC 8707): a token's `aud` must hold it or
    /// the URL of the route called.
    pub audience: String,
    /// Where per-route resource URLs start: `baseURL`, else the audience's origin.
    pub base: String,
    /// Scopes every token must carry (and the metadata advertises).
    pub scopes: Vec<String>,
    /// The claim naming the caller (default `sub`).
    pub client_claim: String,
    pub rules: Vec<Rule>,
}

/// One rule: a claim value and the policy it grants, first match wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub claim: String,
    pub value: String,
    /// The policy, as a client with no name yet (`crate::oidc` names it).
    pub policy: Arc<Client>,
}

impl OidcConfig {
    /// The URL of a route of this hub (`/fetch/mcp`), as a resource.
    pub fn resource_of(&self, path: &str) -> String {
        format!("{}{}", self.base.trim_end_matches('/'), path)
    }
}

pub(super) fn validate(
    raw: Option<raw::RawOidc>,
    base_url: Option<&Url>,
    default_max_sessions: usize,
    known: &Known<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<Arc<OidcConfig>>, Invalid> {
    let Some(o) = raw else { return Ok(None) };
    let at = "mcpProxy.options.oidc";
    let issuer = match o.issuer.as_deref().map(str::trim) {
        Some(i) if !i.is_empty() => i.to_string(),
        _ => {
            return Err(invalid(
                format!("{at}.issuer"),
                "the identity provider's issuer URL is required, e.g. \"https://id.lan/\"",
            ))
        }
    };
    let iu = Url::parse(&issuer).map_err(|e| {
        invalid(
            format!("{at}.issuer"),
            format!("{issuer:?} is not a URL: {e}"),
        )
    })?;
    if !matches!(iu.scheme(), "http" | "https") {
        return Err(invalid(
            format!("{at}.issuer"),
            format!("{issuer:?} must be http:// or https://"),
        ));
    }
    let audience = match (o.audience.as_deref().map(str::trim), base_url) {
        (Some(a), _) if !a.is_empty() => a.trim_end_matches('/').to_string(),
        (_, Some(b)) => b.as_str().trim_end_matches('/').to_string(),
        _ => {
            return Err(invalid(
                format!("{at}.audience"),
                "give the hub's URL as the audience, or set mcpProxy.baseURL",
            ))
        }
    };
    let base = match base_url {
        Some(b) => b.as_str().trim_end_matches('/').to_string(),
        None => match Url::parse(&audience) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                u.origin().ascii_serialization()
            }
            _ => {
                return Err(invalid(
                    format!("{at}.audience"),
                    format!("{audience:?} is not an http(s) URL; with no mcpProxy.baseURL the route URLs are built from it"),
                ))
            }
        },
    };
    let scopes = o.scopes.unwrap_or_default();
    for (i, s) in scopes.iter().enumerate() {
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
            return Err(invalid(
                format!("{at}.scopes[{i}]"),
                format!("{s:?} is not a scope (no spaces or quotes)"),
            ));
        }
    }
    let client_claim = match o.client.as_deref().map(str::trim) {
        None => "sub".to_string(),
        Some("") => return Err(invalid(format!("{at}.client"), "must name a claim")),
        Some(c) => c.to_string(),
    };
    let mut rules = Vec::new();
    for (i, r) in o.rules.unwrap_or_default().into_iter().enumerate() {
        let path = format!("{at}.rules[{i}]");
        let claim = match r.claim {
            Some(c) if !c.trim().is_empty() => c,
            _ => {
                return Err(invalid(
                    format!("{path}.claim"),
                    "a rule needs the claim it tests, e.g. \"groups\"",
                ))
            }
        };
        let Some(value) = r.value else {
            return Err(invalid(
                format!("{path}.value"),
                "a rule needs the value the claim must hold",
            ));
        };
        let servers = match r.servers {
            None => None,
            Some(raw::RawServers::All(s)) if s == "*" => None,
            Some(raw::RawServers::All(s)) => {
                return Err(invalid(
                    format!("{path}.servers"),
                    format!("{s:?}: write \"*\" for every server, or a list of names"),
                ))
            }
            Some(raw::RawServers::List(l)) => Some(l),
        };
        let policy = clients::policy(
            &path,
            RawPolicy {
                servers,
                groups: r.groups,
                tools: r.tools,
                rate: r.rate,
                max_concurrent: r.max_concurrent,
                max_sessions: r.max_sessions,
            },
            default_max_sessions,
            known,
            warnings,
        )?;
        rules.push(Rule {
            claim,
            value,
            policy: Arc::new(Client {
                label: "oidc".into(),
                ..policy
            }),
        });
    }
    if rules.is_empty() {
        warnings.push(format!(
            "{at}.rules: no rules, so every signed-in caller is refused (403); add e.g. {{\"claim\": \"groups\", \"value\": \"mcp-users\", \"servers\": \"*\"}}"
        ));
    }
    Ok(Some(Arc::new(OidcConfig {
        issuer,
        audience,
        base,
        scopes,
        client_claim,
        rules,
    })))
}

#[cfg(test)]
mod tests {
    fn load(oidc: &str, base: Option<&str>) -> Result<crate::config::Config, String> {
        let base = base
            .map(|b| format!(r#""baseURL": "{b}","#))
            .unwrap_or_default();
        let text = format!(
            r#"{{"mcpProxy": {{{base} "options": {{"oidc": {oidc}}}}},
                "mcpServers": {{"fetch": {{"command": "x"}}, "fs": {{"command": "y"}}}}}}"#
        );
        crate::config::parse(&text, "t.json", &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_from_base_url_and_rules_as_policies() {
        let c = load(
            r#"{"issuer": "https://id.lan/", "scopes": ["mcp"], "client": "preferred_username",
                "rules": [{"claim": "groups", "value": "mcp-admins", "servers": "*"},
                          {"claim": "groups", "value": "family", "servers": ["fetch"], "rate": "60/min"}]}"#,
            Some("http://hub.lan:9090/"),
        )
        .unwrap();
        let o = c.hub.oidc.unwrap();
        assert_eq!(o.audience, "http://hub.lan:9090");
        assert_eq!(o.resource_of("/fetch/mcp"), "http://hub.lan:9090/fetch/mcp");
        assert_eq!(o.client_claim, "preferred_username");
        assert!(o.rules[0].policy.reaches_server("fs"));
        let fam = &o.rules[1].policy;
        assert!(fam.reaches_server("fetch") && !fam.reaches_server("fs"));
        assert_eq!(fam.rate.unwrap().count, 60);
        assert_eq!(&*fam.label, "oidc");
        assert_eq!(&*fam.policy, "mcpProxy.options.oidc.rules[1]");
    }

    #[test]
    fn the_audience_gives_the_route_base_without_base_url() {
        let c = load(
            r#"{"issuer": "https://id.lan", "audience": "http://hub.lan:9090/mcp-hub", "rules": []}"#,
            None,
        )
        .unwrap();
        let o = c.hub.oidc.unwrap();
        assert_eq!(o.audience, "http://hub.lan:9090/mcp-hub");
        assert_eq!(o.resource_of("/a/mcp"), "http://hub.lan:9090/a/mcp");
        assert_eq!(o.client_claim, "sub");
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("oidc.rules: no rules")));
    }

    #[test]
    fn mistakes_name_their_place() {
        for (text, base, want) in [
            (r#"{"audience": "http://h"}"#, None, "oidc.issuer: "),
            (
                r#"{"issuer": "id.lan"}"#,
                None,
                "oidc.issuer: \"id.lan\" is not a URL",
            ),
            (
                r#"{"issuer": "https://id.lan"}"#,
                None,
                "oidc.audience: give",
            ),
            (
                r#"{"issuer": "https://id.lan", "rules": [{"claim": "g", "value": "x"}, {"claim": "g", "value": "y", "rate": "lots"}]}"#,
                Some("http://h"),
                "mcpProxy.options.oidc.rules[1].rate: \"lots\" is not a rate",
            ),
            (
                r#"{"issuer": "https://id.lan", "rules": [{"value": "x"}]}"#,
                Some("http://h"),
                "oidc.rules[0].claim: ",
            ),
            (
                r#"{"issuer": "https://id.lan", "rules": [{"claim": "g", "value": "x", "servers": "all"}]}"#,
                Some("http://h"),
                "oidc.rules[0].servers: \"all\"",
            ),
            (
                r#"{"issuer": "https://id.lan", "scopes": ["a b"]}"#,
                Some("http://h"),
                "oidc.scopes[0]: ",
            ),
            (
                r#"{"issuer": "https://id.lan", "issuers": []}"#,
                Some("http://h"),
                "issuers",
            ),
        ] {
            let e = load(text, base).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
