use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "MCP_PROXY_TOKEN" => Some("lan-token".into()),
        _ => None,
    }
}

fn parse_ok(text: &str) -> Config {
    parse(text, "test.json", &env).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    parse(text, "test.json", &env).unwrap_err().to_string()
}

#[test]
fn lan_example_loads_unchanged() {
    let text = include_str!("../../config/lan.json");
    let c = parse_ok(text);
    assert_eq!(c.servers.len(), 7);
    assert_eq!(c.hub.addr, ":9090");
    assert_eq!(c.hub.auth_tokens, vec!["lan-token"]);
    assert!(matches!(
        c.servers["postgres"].upstream,
        Upstream::Sse { .. }
    ));
    let fs = &c.servers["filesystem"];
    assert_eq!(
        fs.auth_tokens,
        vec!["lan-token"],
        "tokens inherit from mcpProxy.options"
    );
    assert_eq!(
        fs.tool_filter,
        Some(ToolFilter::Block(vec![
            "write_file".into(),
            "edit_file".into(),
            "move_file".into()
        ]))
    );
    assert!(fs.log_enabled, "logEnabled inherits");
    let hosts = c.hub.allowed_hosts.unwrap();
    assert!(
        hosts.contains(&"linuxserver.lan".to_string()) && hosts.contains(&"localhost".to_string())
    );
}

#[test]
fn tbxark_example_loads() {
    let text = r#"{
      "mcpProxy": {"baseURL": "https://mcp.example.com", "addr": ":9090", "name": "MCP Proxy",
        "version": "1.0.0", "type": "streamable-http",
        "options": {"panicIfInvalid": false, "logEnabled": true, "authTokens": ["DefaultTokens"],
                    "oauth2": {"enabled": true}}},
      "mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
          "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "<YOUR_TOKEN>"},
          "options": {"toolFilter": {"mode": "block", "list": ["create_or_update_file"]}}},
        "fetch": {"command": "uvx", "args": ["mcp-server-fetch"],
          "options": {"panicIfInvalid": true, "logEnabled": false, "authTokens": ["SpecificTokens"]}},
        "amap": {"url": "https://mcp.amap.com/sse?key=<YOUR_TOKEN>"},
        "remote": {"url": "https://x.example/mcp", "transportType": "streamable-http", "timeout": 30000000000}
      }}"#;
    let c = parse_ok(text);
    assert_eq!(c.servers["fetch"].auth_tokens, vec!["SpecificTokens"]);
    assert!(c.servers["fetch"].panic_if_invalid && !c.servers["fetch"].log_enabled);
    assert_eq!(c.servers["github"].auth_tokens, vec!["DefaultTokens"]);
    assert_eq!(c.servers["remote"].request_timeout, Duration::from_secs(30));
    assert!(matches!(
        c.servers["remote"].upstream,
        Upstream::Streamable { .. }
    ));
    assert!(c.warnings.iter().any(|w| w.contains("oauth2")));
}

#[test]
fn claude_desktop_file_loads() {
    let c = parse_ok(
        r#"{"mcpServers": {"time": {"command": "uvx", "args": ["mcp-server-time"], "env": {}},
                                         "web": {"type": "http", "url": "http://127.0.0.1:1/mcp"}}}"#,
    );
    assert_eq!(c.hub.addr, DEFAULT_ADDR);
    assert!(c.hub.auth_tokens.is_empty());
    assert_eq!(c.servers["time"].session, SessionMode::Shared);
    assert!(matches!(
        c.servers["web"].upstream,
        Upstream::Streamable { .. }
    ));
    assert!(c.hub.allowed_hosts.is_none());
}

#[test]
fn errors_name_the_path() {
    assert_eq!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "comand": "y"}}}"#),
        "test.json: mcpServers.a.comand: unknown field `comand`, expected one of `transportType`, `type`, `command`, `args`, `env`, `cwd`, `url`, `headers`, `timeout`, `options`, `session`, `start`, `idleTimeout`, `maxClients`, `initTimeout`, `pingInterval`, `sandbox`"
    );
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "timeout": "30q"}}}"#)
            .starts_with("test.json: mcpServers.a.timeout: \"30q\" is not a duration")
    );
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "${NOPE}"}}}}"#)
            .contains("mcpServers.a.env.K: environment variable NOPE is not set")
    );
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "session": "solo"}}}"#)
            .contains("mcpServers.a.session: \"solo\" is not \"shared\" or \"per-client\"")
    );
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "options": {"maxBodySize": 5}}}}"#)
            .contains("mcpServers.a.options: unknown field `maxBodySize`")
    );
    assert!(
        parse_err(r#"{"mcpProxy": {"options": {"maxBodySize": "4Q"}}}"#)
            .contains("mcpProxy.options.maxBodySize: \"4Q\" is not a size")
    );
    assert!(parse_err(r#"{"mcpServers": {"a": {}}}"#).contains("mcpServers.a: needs \"command\""));
    assert!(
        parse_err(r#"{"mcpServers": {"a/b": {"command": "x"}}}"#).contains("a server name must be")
    );
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "args": [1]}}}"#)
            .contains("mcpServers.a.args[0]")
    );
    assert!(parse_err(r#"{"mcpProxy": {"addr": "nine"}}"#).contains("mcpProxy.addr"));
    assert!(
        parse_err(r#"{"mcpProxy": {"options": {"authTokens": ["${T:-}"]}}}"#)
            .contains("authTokens[0]: a token must not be empty")
    );
    assert!(parse_err("{\"mcpServers\": {,}}").starts_with("test.json: not valid JSON"));
}

#[test]
fn comments_and_defaults() {
    let c = parse_ok("// line\n{ /* block */ \"mcpServers\": {\"a\": {\"command\": \"x\", \"start\": \"eager\", \"idleTimeout\": \"10m\"}}}");
    let a = &c.servers["a"];
    assert!(a.eager);
    assert_eq!(a.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.hub.max_body, DEFAULT_MAX_BODY);
    assert_eq!(c.hub.sse_keep_alive, Duration::from_secs(15));
    let c = parse_ok(
        r#"{"mcpProxy": {"options": {"maxBodySize": "1MiB", "sseKeepAlive": "2s", "toolFilter": {"mode": "allow", "list": ["x"]}}},
                         "mcpServers": {"a": {"command": "x"}}}"#,
    );
    assert_eq!(c.hub.max_body, 1024 * 1024);
    assert_eq!(
        c.servers["a"].tool_filter,
        Some(ToolFilter::Allow(vec!["x".into()]))
    );
}

#[test]
fn listen_addr_forms() {
    assert_eq!(parse_listen_addr(":9090").unwrap(), "[::]:9090");
    assert_eq!(parse_listen_addr("127.0.0.1:0").unwrap(), "127.0.0.1:0");
    assert!(parse_listen_addr("9090").is_err());
}

#[test]
fn hub_id_is_optional_and_checked() {
    let c = parse_ok(r#"{"mcpServers": {}}"#);
    assert_eq!(c.hub.hub_id, None, "default: a random prefix per process");
    let c = parse_ok(r#"{"mcpProxy": {"options": {"hubId": "hub-A_1"}}, "mcpServers": {}}"#);
    assert_eq!(c.hub.hub_id.as_deref(), Some("hub-A_1"));
    let long = "x".repeat(32);
    let c = parse_ok(&format!(
        r#"{{"mcpProxy": {{"options": {{"hubId": "{long}"}}}}, "mcpServers": {{}}}}"#
    ));
    assert_eq!(c.hub.hub_id.as_deref(), Some(long.as_str()));
    for bad in ["", "a.b", "hub 1", "hüb", &"x".repeat(33)] {
        let e = parse_err(&format!(
            r#"{{"mcpProxy": {{"options": {{"hubId": "{bad}"}}}}, "mcpServers": {{}}}}"#
        ));
        assert!(
            e.contains("mcpProxy.options.hubId:") && e.contains("is not a hub id"),
            "{bad:?}: {e}"
        );
    }
}
