//! The file as written ([`raw::File`]) → the typed [`Config`]: the hub's
//! settings here, each server, group, client and the identity provider in
//! their own modules, with the inheritance from `mcpProxy.options` into each
//! server that TBXark/mcp-proxy has.

use super::checks::{check_hub_id, check_origin};
use super::server::{validate_server, Inherited};
use super::{
    clients, count, duration, groups, invalid, metrics, oidc, openapi, opt_duration, opt_size,
    parse_listen_addr, raw, tokens, warn_unsupported, Config, HubSettings, Invalid, DEFAULT_ADDR,
    DEFAULT_MAX_BODIES_IN_FLIGHT, DEFAULT_MAX_BODY,
};
use indexmap::IndexMap;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

pub(super) fn validate(raw: raw::File, default_state: PathBuf) -> Result<Config, Invalid> {
    let mut warnings = Vec::new();
    let proxy = raw.mcp_proxy.unwrap_or_default();
    let opts = proxy.options.unwrap_or_default();

    if let Some(kind) = &proxy.kind {
        if !matches!(kind.as_str(), "sse" | "streamable-http") {
            return Err(invalid(
                "mcpProxy.type",
                format!("{kind:?} is not \"sse\" or \"streamable-http\""),
            ));
        }
    }
    let base_url = match &proxy.base_url {
        Some(s) if !s.is_empty() => {
            let u = Url::parse(s)
                .map_err(|e| invalid("mcpProxy.baseURL", format!("{s:?} is not a URL: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(invalid(
                    "mcpProxy.baseURL",
                    format!("{s:?} must be http:// or https://"),
                ));
            }
            Some(u)
        }
        _ => None,
    };
    let addr = proxy.addr.clone().unwrap_or_else(|| DEFAULT_ADDR.into());
    parse_listen_addr(&addr).map_err(|m| invalid("mcpProxy.addr", m))?;

    let max_body = opt_size(
        &opts.max_body_size,
        "mcpProxy.options.maxBodySize",
        DEFAULT_MAX_BODY,
    )?;
    let max_bodies_in_flight = opt_size(
        &opts.max_bodies_in_flight,
        "mcpProxy.options.maxBodiesInFlight",
        DEFAULT_MAX_BODIES_IN_FLIGHT,
    )?;
    for (i, o) in opts.allowed_origins.iter().flatten().enumerate() {
        check_origin(o).map_err(|m| invalid(format!("mcpProxy.options.allowedOrigins[{i}]"), m))?;
    }
    let cors_origins = opts.cors.map(|c| c.origins).unwrap_or_default();
    for (i, o) in cors_origins.iter().enumerate() {
        check_origin(o).map_err(|m| invalid(format!("mcpProxy.options.cors.origins[{i}]"), m))?;
    }
    let allowed_hosts = match (opts.allowed_hosts, &base_url) {
        (Some(list), _) => Some(list.into_iter().map(|h| h.to_ascii_lowercase()).collect()),
        (None, Some(u)) => {
            let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()];
            if let Some(h) = u.host_str() {
                hosts.push(h.to_ascii_lowercase());
            }
            Some(hosts)
        }
        (None, None) => None,
    };
    let common = &opts.common;
    warn_unsupported(common, "mcpProxy.options", &mut warnings);
    let global_tokens = tokens(
        common.auth_tokens.clone().unwrap_or_default(),
        "mcpProxy.options.authTokens",
    )?;

    let exit_on_idle = opts
        .exit_on_idle
        .as_deref()
        .map(|t| duration(t, "mcpProxy.options.exitOnIdle"))
        .transpose()?
        .filter(|d| !d.is_zero());
    let state_dir = match &opts.state_dir {
        None => default_state,
        Some(d) if d.starts_with('/') => PathBuf::from(d),
        Some(d) => {
            return Err(invalid(
                "mcpProxy.options.stateDir",
                format!("{d:?} is not an absolute path"),
            ))
        }
    };
    let hub = HubSettings {
        name: proxy.name.unwrap_or_else(|| "mcp-hub".into()),
        version: proxy
            .version
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        base_url,
        addr,
        auth_tokens: global_tokens.clone(),
        allowed_origins: opts.allowed_origins.unwrap_or_default(),
        allowed_hosts,
        cors_origins,
        max_body,
        max_bodies_in_flight,
        sse_keep_alive: opt_duration(
            &opts.sse_keep_alive,
            "mcpProxy.options.sseKeepAlive",
            Duration::from_secs(15),
        )?,
        session_idle_timeout: opt_duration(
            &opts.session_idle_timeout,
            "mcpProxy.options.sessionIdleTimeout",
            Duration::from_secs(30 * 60),
        )?,
        exit_on_idle,
        shutdown_timeout: opt_duration(
            &opts.shutdown_timeout,
            "mcpProxy.options.shutdownTimeout",
            Duration::from_secs(15),
        )?,
        max_connections: count(
            opts.max_connections,
            "mcpProxy.options.maxConnections",
            4096,
        )?,
        max_connections_per_ip: count(
            opts.max_connections_per_ip,
            "mcpProxy.options.maxConnectionsPerIp",
            256,
        )?,
        body_read_timeout: opt_duration(
            &opts.body_read_timeout,
            "mcpProxy.options.bodyReadTimeout",
            Duration::from_secs(30),
        )?,
        max_sessions_per_token: count(
            opts.max_sessions_per_token,
            "mcpProxy.options.maxSessionsPerToken",
            1024,
        )?,
        max_sessions: count(opts.max_sessions, "mcpProxy.options.maxSessions", 16384)?,
        max_sessions_per_address: count(
            opts.max_sessions_per_address,
            "mcpProxy.options.maxSessionsPerAddress",
            1024,
        )?,
        clients: Vec::new(),
        status_tokens: opts
            .status_tokens
            .map(|t| tokens(t, "mcpProxy.options.statusTokens"))
            .transpose()?,
        hub_id: opts
            .hub_id
            .map(|id| {
                check_hub_id(&id)
                    .map(|()| id)
                    .map_err(|m| invalid("mcpProxy.options.hubId", m))
            })
            .transpose()?,
        metrics: metrics::validate(opts.metrics_tokens, opts.metrics_listen)?,
        oidc: None,
    };
    if hub.body_read_timeout.is_zero() {
        return Err(invalid(
            "mcpProxy.options.bodyReadTimeout",
            "must be more than zero",
        ));
    }
    if hub.sse_keep_alive.is_zero() {
        return Err(invalid(
            "mcpProxy.options.sseKeepAlive",
            "must be more than zero",
        ));
    }

    let mut servers = IndexMap::new();
    let options_groups = opts.groups;
    let raw_clients = opts.clients;
    let raw_oidc = opts.oidc;
    for (name, s) in raw.mcp_servers {
        let path = format!("mcpServers.{name}");
        let inherited = Inherited {
            options: common,
            tokens: &global_tokens,
            state_dir: &state_dir,
            max_body,
        };
        let server = validate_server(&name, s, &path, &inherited, &mut warnings)?;
        servers.insert(name, server);
    }
    let groups = groups::validate(
        raw.groups,
        options_groups,
        &groups::Context {
            servers: &servers,
            global_tokens: &global_tokens,
            openapi: openapi::resolve(None, common.openapi.as_ref(), "mcpProxy")?,
        },
        &mut warnings,
    )?;
    let mut hub = hub;
    let known = clients::Known {
        servers: &|s| servers.contains_key(s),
        groups: &|g| groups.contains_key(g),
    };
    hub.clients = clients::validate(
        raw_clients,
        hub.max_sessions_per_token,
        &known,
        &mut warnings,
    )?;
    hub.oidc = oidc::validate(
        raw_oidc,
        hub.base_url.as_ref(),
        hub.max_sessions_per_token,
        &known,
        &mut warnings,
    )?;
    Ok(Config {
        hub,
        servers,
        groups,
        warnings,
        origins: Default::default(),
    })
}
