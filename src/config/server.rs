//! One `mcpServers.<name>` entry, validated: its upstream (stdio command or
//! remote URL), session mode, timeouts, tokens, tool filter and sandbox, with
//! what it inherits from `mcpProxy.options`.

use super::*;

/// What a server takes from `mcpProxy` when it does not say otherwise.
pub(super) struct Inherited<'a> {
    pub(super) options: &'a raw::Options,
    pub(super) tokens: &'a [String],
    pub(super) state_dir: &'a Path,
    /// `maxBodySize`, the default `maxResponseSize` of a remote server.
    pub(super) max_body: usize,
}

pub(super) fn validate_server(
    name: &str,
    s: raw::Server,
    path: &str,
    inherited: &Inherited<'_>,
    warnings: &mut Vec<String>,
) -> Result<ServerConfig, Invalid> {
    let (global, global_tokens, state_dir) =
        (inherited.options, inherited.tokens, inherited.state_dir);
    if !is_route_name(name) {
        return Err(invalid(
            path,
            "a server name must be 1-64 of A-Z a-z 0-9 - _ . (it becomes a URL path)",
        ));
    }
    if matches!(name, "healthz" | "status" | "metrics") {
        return Err(invalid(
            path,
            format!("{name:?} is reserved for the hub's own endpoint"),
        ));
    }
    let declared = s
        .transport_type
        .as_deref()
        .map(|t| (t, "transportType"))
        .or(s.kind.as_deref().map(|t| (t, "type")));
    let upstream = match (&s.command, &s.url) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                path,
                "set either \"command\" (stdio) or \"url\" (remote), not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                path,
                "needs \"command\" (a stdio server) or \"url\" (a remote server)",
            ))
        }
        (Some(cmd), None) => {
            if let Some((t, key)) = declared {
                if t != "stdio" {
                    return Err(invalid(
                        format!("{path}.{key}"),
                        format!("{t:?} does not go with \"command\"; use \"stdio\" or drop it"),
                    ));
                }
            }
            if cmd.trim().is_empty() {
                return Err(invalid(format!("{path}.command"), "must not be empty"));
            }
            for (set, key) in [
                (!s.headers.is_empty(), "headers"),
                (s.max_response_size.is_some(), "maxResponseSize"),
            ] {
                if set {
                    return Err(invalid(
                        format!("{path}.{key}"),
                        "only applies to a \"url\" server",
                    ));
                }
            }
            let sandbox = sandbox::validate(s.sandbox.as_ref(), &format!("{path}.sandbox"))
                .map_err(|(at, msg)| invalid(at, msg))?;
            if sandbox.is_none() {
                warnings.push(format!(
                    "{path}.sandbox: false: this server runs without a sandbox, with the hub's user and file system access"
                ));
            }
            Upstream::Stdio(StdioSpec {
                command: cmd.clone(),
                args: s.args.clone(),
                env: s.env.clone(),
                cwd: s.cwd.as_ref().map(PathBuf::from),
                sandbox,
                home: state_dir.join(name),
                install: Box::new(install::validate(s.install.as_ref(), path)?),
            })
        }
        (None, Some(u)) => {
            let url = Url::parse(u)
                .map_err(|e| invalid(format!("{path}.url"), format!("{u:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(
                    format!("{path}.url"),
                    format!("{u:?} must be http:// or https://"),
                ));
            }
            if s.install.is_some() {
                return Err(invalid(
                    format!("{path}.install"),
                    "only applies to a \"command\" server (a package runner: uvx, npx, pipx run)",
                ));
            }
            if s.sandbox.is_some() {
                return Err(invalid(
                    format!("{path}.sandbox"),
                    "only applies to a \"command\" server (a remote server runs elsewhere)",
                ));
            }
            if !s.args.is_empty() || !s.env.is_empty() {
                return Err(invalid(
                    path,
                    "\"args\" and \"env\" only apply to a \"command\" server",
                ));
            }
            for (k, v) in &s.headers {
                check_header(k, v).map_err(|m| invalid(format!("{path}.headers[{k:?}]"), m))?;
            }
            let max_response = opt_size(
                &s.max_response_size,
                &format!("{path}.maxResponseSize"),
                inherited.max_body,
            )?;
            match declared {
                None | Some(("sse", _)) => Upstream::Sse {
                    url,
                    headers: s.headers.clone(),
                    max_response,
                },
                Some(("streamable-http" | "http", _)) => Upstream::Streamable {
                    url,
                    headers: s.headers.clone(),
                    max_response,
                },
                Some((t, key)) => {
                    return Err(invalid(
                        format!("{path}.{key}"),
                        format!("{t:?} is not \"sse\" or \"streamable-http\""),
                    ))
                }
            }
        }
    };

    let session = match s.session.as_deref() {
        None | Some("shared") => SessionMode::Shared,
        Some("per-client") => SessionMode::PerClient,
        Some(other) => {
            return Err(invalid(
                format!("{path}.session"),
                format!("{other:?} is not \"shared\" or \"per-client\""),
            ))
        }
    };
    let eager = match s.start.as_deref() {
        None | Some("lazy") => false,
        Some("eager") => true,
        Some(other) => {
            return Err(invalid(
                format!("{path}.start"),
                format!("{other:?} is not \"lazy\" or \"eager\""),
            ))
        }
    };
    if eager && session == SessionMode::PerClient {
        return Err(invalid(format!("{path}.start"), "\"eager\" needs \"session\": \"shared\" (per-client children start with their session)"));
    }
    let request_timeout = match &s.timeout {
        None => Duration::from_secs(300),
        Some(raw::GoDuration::Nanos(0)) => {
            return Err(invalid(format!("{path}.timeout"), "must be more than zero"))
        }
        Some(raw::GoDuration::Nanos(n)) => Duration::from_nanos(*n),
        Some(raw::GoDuration::Text(t)) => duration(t, &format!("{path}.timeout"))?,
    };
    let idle_written = s.idle_timeout.is_some();
    let idle_timeout = s
        .idle_timeout
        .as_deref()
        .map(|t| duration(t, &format!("{path}.idleTimeout")))
        .transpose()?
        // A per-client child belongs to a client that may never say goodbye
        // (most never send DELETE): it stops after a quiet spell by default.
        .or((session == SessionMode::PerClient).then_some(DEFAULT_PER_CLIENT_IDLE));
    let protocol = match s.protocol.as_deref() {
        None | Some("auto") => Protocol::Auto,
        Some("legacy") => Protocol::Legacy,
        Some("2026-07-28") => Protocol::Modern,
        Some(other) => {
            return Err(invalid(
                format!("{path}.protocol"),
                format!("{other:?} is not \"auto\", \"legacy\" or \"2026-07-28\""),
            ))
        }
    };
    let max_clients = match s.max_clients {
        None => DEFAULT_MAX_CLIENTS,
        Some(0) => return Err(invalid(format!("{path}.maxClients"), "must be at least 1")),
        Some(n) => n as usize,
    };
    let init_timeout = opt_duration(
        &s.init_timeout,
        &format!("{path}.initTimeout"),
        Duration::from_secs(120),
    )?;
    let default_ping = if matches!(upstream, Upstream::Stdio(_)) {
        Duration::ZERO
    } else {
        Duration::from_secs(30)
    };
    let ping_interval = Some(opt_duration(
        &s.ping_interval,
        &format!("{path}.pingInterval"),
        default_ping,
    )?)
    .filter(|d| !d.is_zero());

    let own = s.options.map(|o| o.common).unwrap_or_default();
    warn_unsupported(&own, &format!("{path}.options"), warnings);
    let (auth_tokens, token_source) = match own.auth_tokens {
        Some(list) => (
            tokens(list, &format!("{path}.options.authTokens"))?,
            format!("{path}.options.authTokens"),
        ),
        None => (
            global_tokens.to_vec(),
            "mcpProxy.options.authTokens".to_string(),
        ),
    };
    let filter_raw = own.tool_filter.as_ref().or(global.tool_filter.as_ref());
    let tool_filter = match filter_raw {
        None => None,
        Some(f) => {
            let fpath = if own.tool_filter.is_some() {
                format!("{path}.options.toolFilter")
            } else {
                "mcpProxy.options.toolFilter".into()
            };
            Some(ToolFilter::from_raw(
                raw::ToolFilter {
                    mode: f.mode.clone(),
                    list: f.list.clone(),
                },
                &fpath,
            )?)
        }
    };
    let openapi = openapi::resolve(own.openapi.as_ref(), global.openapi.as_ref(), path)?;
    if !matches!(upstream, Upstream::Stdio(_)) && session == SessionMode::Shared && idle_written {
        warnings.push(format!(
            "{path}.idleTimeout: only stops stdio children; ignored for a remote server"
        ));
    }
    Ok(ServerConfig {
        name: name.into(),
        upstream,
        session,
        eager,
        idle_timeout,
        max_clients,
        protocol,
        request_timeout,
        init_timeout,
        ping_interval,
        auth_tokens,
        token_source,
        tool_filter,
        openapi,
        log_enabled: own.log_enabled.or(global.log_enabled).unwrap_or(false),
        panic_if_invalid: own
            .panic_if_invalid
            .or(global.panic_if_invalid)
            .unwrap_or(false),
        disabled: own.disabled.unwrap_or(false),
    })
}
