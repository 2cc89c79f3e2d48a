//! Groups: one MCP endpoint over several servers (`/g/<group>/mcp` and
//! `/g/<group>/sse`), configured under a top-level `groups` key or under
//! `mcpProxy.options.groups` (the same shape in both places; a name defined in
//! both is an error):
//!
//! ```json
//! "groups": {"all": {"servers": ["fetch", "filesystem"], "separator": "__",
//!                    "authTokens": ["..."], "toolFilter": {"mode": "block", "list": ["fetch__fetch"]}}}
//! ```
//!
//! Here: the shape as written and its validation into [`GroupConfig`], with
//! errors that name the path (`groups.all.servers[1]: no server named "x"`).
//! `authTokens` default to `mcpProxy.options.authTokens`, as a server's do;
//! they decide who reaches the group's route, and each member's own tokens
//! still decide whether that member is part of a client's view. The
//! `toolFilter` names tools as the group's clients see them (`fetch__fetch`).

use super::raw::RawGroup;
use super::{invalid, tokens, Invalid, ToolFilter};
use indexmap::IndexMap;

/// The separator between a server's name and its tool's name by default.
pub const DEFAULT_SEPARATOR: &str = "__";

/// A validated group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub name: String,
    /// Member servers, in the order written (tools are listed in this order).
    pub servers: Vec<String>,
    pub separator: String,
    pub auth_tokens: Vec<String>,
    /// The config path of `auth_tokens`, to name a token in logs without its value.
    pub token_source: String,
    /// Applied to the prefixed names, on top of each member's own filter.
    pub tool_filter: Option<ToolFilter>,
    /// `/g/<group>/openapi.json`'s settings: the group's own `openapi`
    /// block, else the global `mcpProxy.options.openapi`.
    pub openapi: super::openapi::OpenApi,
}

impl GroupConfig {
    pub fn routes(&self) -> [String; 2] {
        [
            format!("/g/{}/sse", self.name),
            format!("/g/{}/mcp", self.name),
        ]
    }
}

/// What validation needs to know of the rest of the config.
pub struct Context<'a> {
    pub servers: &'a IndexMap<String, super::ServerConfig>,
    pub global_tokens: &'a [String],
    pub openapi: super::openapi::OpenApi,
}

/// Validates both places groups may be written; `top` is the top-level key.
pub fn validate(
    top: Option<IndexMap<String, RawGroup>>,
    in_options: Option<IndexMap<String, RawGroup>>,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<IndexMap<String, GroupConfig>, Invalid> {
    let mut out = IndexMap::new();
    let sources = [
        ("groups", top.unwrap_or_default()),
        ("mcpProxy.options.groups", in_options.unwrap_or_default()),
    ];
    for (base, groups) in sources {
        for (name, g) in groups {
            let path = format!("{base}.{name}");
            if out.contains_key(&name) {
                return Err(invalid(
                    path,
                    "defined both under \"groups\" and \"mcpProxy.options.groups\"; keep one",
                ));
            }
            let g = validate_one(&name, g, &path, ctx, warnings)?;
            out.insert(name, g);
        }
    }
    if !out.is_empty() && ctx.servers.contains_key("g") {
        return Err(invalid(
            "mcpServers.g",
            "\"g\" is reserved for group endpoints (/g/<group>/…) when groups are configured; rename the server",
        ));
    }
    Ok(out)
}

fn validate_one(
    name: &str,
    g: RawGroup,
    path: &str,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<GroupConfig, Invalid> {
    if !super::is_route_name(name) {
        return Err(invalid(
            path,
            "a group name must be 1-64 of A-Z a-z 0-9 - _ . (it becomes a URL path)",
        ));
    }
    if g.servers.is_empty() {
        return Err(invalid(
            format!("{path}.servers"),
            "a group needs at least one server",
        ));
    }
    for (i, s) in g.servers.iter().enumerate() {
        let at = format!("{path}.servers[{i}]");
        if !ctx.servers.contains_key(s) {
            return Err(invalid(at, format!("no server named {s:?}")));
        }
        if g.servers[..i].contains(s) {
            return Err(invalid(at, format!("{s:?} is listed twice")));
        }
    }
    let separator = g.separator.unwrap_or_else(|| DEFAULT_SEPARATOR.into());
    if separator.is_empty() || separator.len() > 8 {
        return Err(invalid(
            format!("{path}.separator"),
            "must be 1 to 8 characters",
        ));
    }
    ambiguous_members(name, &g.servers, &separator, path)?;
    let (auth_tokens, token_source) = match g.auth_tokens {
        Some(list) => (
            tokens(list, &format!("{path}.authTokens"))?,
            format!("{path}.authTokens"),
        ),
        None => (
            ctx.global_tokens.to_vec(),
            "mcpProxy.options.authTokens".to_string(),
        ),
    };
    let tool_filter = match g.tool_filter {
        None => None,
        Some(f) => Some(ToolFilter::from_raw(f, &format!("{path}.toolFilter"))?),
    };
    let openapi = match &g.openapi {
        Some(raw) => super::openapi::validate(raw, &format!("{path}.openapi"))?,
        None => ctx.openapi,
    };
    let cfg = GroupConfig {
        name: name.into(),
        servers: g.servers,
        separator,
        auth_tokens,
        token_source,
        tool_filter,
        openapi,
    };
    warnings.extend(naming_warnings(&cfg, path, ctx));
    Ok(cfg)
}

/// Refuses members whose public names could be read two ways: a member name
/// that contains the separator (`a__b` in a group with `a`: `a__b__c` is `c`
/// of `a__b` or `b__c` of `a`), or one whose prefix starts another's (`a`
/// and `a_`: `a___c`). Which server a name reaches must not depend on whether
/// the session has listed tools yet.
fn ambiguous_members(
    group: &str,
    servers: &[String],
    sep: &str,
    path: &str,
) -> Result<(), Invalid> {
    for (i, s) in servers.iter().enumerate() {
        let at = format!("{path}.servers[{i}]");
        let example = format!("{s}{sep}c");
        if let Some(pos) = s.find(sep) {
            let other = servers
                .iter()
                .find(|o| *o != s && example.starts_with(&format!("{o}{sep}")))
                .cloned()
                .unwrap_or_else(|| s[..pos].to_string());
            return Err(invalid(
                at,
                format!(
                    "{s:?} contains the separator {sep:?} of group {group:?}, so {example:?} could name a tool of {other:?} or of {s:?}; rename the server or set the group's \"separator\""
                ),
            ));
        }
        let prefix = format!("{s}{sep}");
        if let Some(other) = servers
            .iter()
            .find(|o| *o != s && prefix.starts_with(&format!("{o}{sep}")))
        {
            return Err(invalid(
                at,
                format!(
                    "with the separator {sep:?} of group {group:?}, {s:?} starts its names as {other:?} does, so {example:?} could name a tool of {other:?} or of {s:?}; rename the server or set the group's \"separator\""
                ),
            ));
        }
    }
    Ok(())
}

/// What can be told before any server runs: members whose every tool name
/// will be shortened (a character outside `^[a-zA-Z0-9_-]+$` in the prefix,
/// or a prefix that leaves little room under 64 characters), disabled
/// members, and members whose tokens shut out every group token.
fn naming_warnings(g: &GroupConfig, path: &str, ctx: &Context<'_>) -> Vec<String> {
    use crate::views::group::naming;
    let mut w = Vec::new();
    if !naming::is_valid_name(&g.separator) {
        w.push(format!(
            "{path}.separator: {:?} has characters outside A-Z a-z 0-9 _ -: every tool name of this group will be shortened (check the names with tools/list)",
            g.separator
        ));
    }
    for (i, s) in g.servers.iter().enumerate() {
        let at = format!("{path}.servers[{i}]");
        let prefix = format!("{s}{}", g.separator);
        if !naming::is_valid_name(s) {
            w.push(format!(
                "{at}: server name {s:?} has characters outside A-Z a-z 0-9 _ -: its tool and prompt names will be shortened in this group"
            ));
        } else if prefix.len() + naming::ROOM_WARN > naming::MAX_NAME {
            w.push(format!(
                "{at}: the prefix {prefix:?} leaves {} characters for a tool name under the 64-character limit: longer ones will be shortened",
                naming::MAX_NAME.saturating_sub(prefix.len())
            ));
        }
        let Some(cfg) = ctx.servers.get(s) else {
            continue;
        };
        if cfg.disabled {
            w.push(format!(
                "{at}: server {s:?} is disabled; the group serves the others"
            ));
        }
        if !cfg.auth_tokens.is_empty()
            && !g.auth_tokens.is_empty()
            && !g.auth_tokens.iter().any(|t| cfg.auth_tokens.contains(t))
        {
            w.push(format!(
                "{at}: server {s:?} accepts none of the group's tokens ({}): no client of the group will see it",
                g.token_source
            ));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    fn load(text: &str) -> Result<crate::config::Config, String> {
        parse(text, "test.json", &|_| None).map_err(|e| e.to_string())
    }

    const SERVERS: &str = r#""mcpServers": {"a": {"url": "http://127.0.0.1:1/sse"},
        "b": {"url": "http://127.0.0.1:1/sse", "options": {"authTokens": ["b-only"]}}}"#;

    #[test]
    fn tokens_default_to_the_global_ones_and_paths_say_where() {
        let c = load(&format!(
            r#"{{"mcpProxy": {{"options": {{"authTokens": ["g"]}}}}, {SERVERS},
               "groups": {{"all": {{"servers": ["a", "b"]}}}}}}"#
        ))
        .unwrap();
        let g = &c.groups["all"];
        assert_eq!(g.auth_tokens, ["g"]);
        assert_eq!(g.token_source, "mcpProxy.options.authTokens");
        assert_eq!(g.separator, "__");
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("groups.all.servers[1]: server \"b\" accepts none")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn a_group_is_defined_once_and_g_is_reserved() {
        let e = load(&format!(
            r#"{{"mcpProxy": {{"options": {{"groups": {{"all": {{"servers": ["a"]}}}}}}}}, {SERVERS},
               "groups": {{"all": {{"servers": ["b"]}}}}}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains("mcpProxy.options.groups.all: defined both"),
            "{e}"
        );
        let e = load(
            r#"{"mcpServers": {"g": {"url": "http://127.0.0.1:1/sse"}},
               "groups": {"all": {"servers": ["g"]}}}"#,
        )
        .unwrap_err();
        assert!(e.contains("mcpServers.g: \"g\" is reserved"), "{e}");
        let e = load(&format!(
            r#"{{{SERVERS}, "groups": {{"all": {{"servers": ["a"], "separator": ""}}}}}}"#
        ))
        .unwrap_err();
        assert!(e.contains("groups.all.separator: must be 1 to 8"), "{e}");
    }

    #[test]
    fn members_that_make_a_public_name_ambiguous_are_refused() {
        let servers = r#""mcpServers": {"a": {"url": "http://127.0.0.1:1/sse"},
            "a__b": {"url": "http://127.0.0.1:1/sse"}, "a_": {"url": "http://127.0.0.1:1/sse"},
            "x-y": {"url": "http://127.0.0.1:1/sse"}}"#;
        let e = load(&format!(
            r#"{{{servers}, "groups": {{"all": {{"servers": ["a", "a__b"]}}}}}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains(r#"groups.all.servers[1]: "a__b" contains the separator "__" of group "all", so "a__b__c" could name a tool of "a" or of "a__b""#),
            "{e}"
        );
        // Alone, it is refused too: its names would read as a server "a"'s.
        let e = load(&format!(
            r#"{{{servers}, "groups": {{"all": {{"servers": ["a__b"]}}}}}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains("groups.all.servers[0]: \"a__b\" contains the separator"),
            "{e}"
        );
        let e = load(&format!(
            r#"{{{servers}, "groups": {{"all": {{"servers": ["a", "a_"]}}}}}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains(r#"groups.all.servers[1]: with the separator "__" of group "all", "a_" starts its names as "a" does, so "a___c""#),
            "{e}"
        );
        // Its own separator decides: "-" makes "x-y" ambiguous, "__" does not.
        let e = load(&format!(
            r#"{{{servers}, "groups": {{"all": {{"servers": ["a", "x-y"], "separator": "-"}}}}}}"#
        ))
        .unwrap_err();
        assert!(e.contains("\"x-y\" contains the separator \"-\""), "{e}");
        load(&format!(
            r#"{{{servers}, "groups": {{"all": {{"servers": ["a", "x-y"]}}}}}}"#
        ))
        .unwrap();
        // Not in a group, the name is fine.
        load(&format!("{{{servers}}}")).unwrap();
    }
}
