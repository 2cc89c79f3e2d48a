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
        "test.json: mcpServers.a.comand: unknown field `comand`, expected one of `transportType`, `type`, `command`, `args`, `env`, `cwd`, `url`, `headers`, `maxResponseSize`, `timeout`, `options`, `session`, `start`, `idleTimeout`, `maxClients`, `protocol`, `initTimeout`, `pingInterval`, `sandbox`, `install`"
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
fn a_remote_servers_response_limit() {
    let max = |c: &Config, name: &str| match &c.servers[name].upstream {
        Upstream::Sse { max_response, .. } | Upstream::Streamable { max_response, .. } => {
            *max_response
        }
        Upstream::Stdio(_) => unreachable!(),
    };
    // Default: the hub's own body limit, in both directions.
    let c = parse_ok(
        r#"{"mcpProxy": {"options": {"maxBodySize": "2MiB"}},
            "mcpServers": {"a": {"url": "http://h/sse"},
                           "b": {"url": "http://h/mcp", "type": "http", "maxResponseSize": "64MiB"},
                           "c": {"url": "http://h/mcp", "type": "http", "maxResponseSize": 4096}}}"#,
    );
    assert_eq!(max(&c, "a"), 2 * 1024 * 1024);
    assert_eq!(max(&c, "b"), 64 * 1024 * 1024);
    assert_eq!(max(&c, "c"), 4096);
    assert!(parse_err(
        r#"{"mcpServers": {"a": {"url": "http://h/sse", "maxResponseSize": "9Q"}}}"#
    )
    .contains("mcpServers.a.maxResponseSize: \"9Q\" is not a size"));
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"url": "http://h/sse", "maxResponseSize": 10}}}"#)
            .contains("mcpServers.a.maxResponseSize: must be at least 1KiB")
    );
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "maxResponseSize": "1MiB"}}}"#)
            .contains("mcpServers.a.maxResponseSize: only applies to a \"url\" server")
    );
}

#[test]
fn listen_addr_forms() {
    assert_eq!(parse_listen_addr(":9090").unwrap(), "[::]:9090");
    assert_eq!(parse_listen_addr("127.0.0.1:0").unwrap(), "127.0.0.1:0");
    assert!(parse_listen_addr("9090").is_err());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Keys the config knows (and a few it does not), so generated files get
    /// past the shape check often enough to reach validation.
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "mcpProxy", "mcpServers", "options", "baseURL", "addr", "name", "type", "command",
                "args", "env", "cwd", "url", "headers", "timeout", "session", "start", "idleTimeout",
                "maxClients", "initTimeout", "pingInterval", "sandbox", "authTokens", "logEnabled",
                "toolFilter", "mode", "list", "disabled", "maxBodySize", "maxResponseSize",
                "allowedOrigins", "allowedHosts", "cors", "origins", "sseKeepAlive",
                "transportType", "read", "write", "network", "memoryMax", "exitOnIdle", "stateDir",
            ]).prop_map(String::from),
            1 => any::<String>(),
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop::sample::select(vec![
                "",
                "x",
                "30s",
                "-1s",
                "1e400",
                "4MiB",
                "0",
                "http://h/sse",
                "https://[::1]:9/mcp",
                ":9090",
                "[::1]:0",
                "shared",
                "per-client",
                "eager",
                "lazy",
                "allow",
                "block",
                "none",
                "host",
                "streamable-http",
                "sse",
                "stdio",
                "/",
                "/nope",
                "${X}",
                "${X:-d}",
                "$${",
                "${",
                "${credential:t}",
                "${1}",
                "256M",
                "50%",
            ])
            .prop_map(|s| Value::String(s.into())),
            any::<String>().prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// A file shaped like a config: `mcpProxy` and `mcpServers` with random insides.
    fn config() -> impl Strategy<Value = Value> {
        let server = proptest::collection::vec((key(), value()), 0..6)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()));
        (
            value(),
            proptest::collection::vec(("[a-z._/-]{0,6}", server), 0..3),
            value(),
        )
            .prop_map(|(proxy, servers, other)| {
                let servers: serde_json::Map<String, Value> = servers.into_iter().collect();
                match other {
                    Value::Bool(true) => other,
                    _ => json!({"mcpProxy": proxy, "mcpServers": servers}),
                }
            })
    }

    /// An error names the file and a path in it (or the variable it missed).
    fn names_a_path(e: &ConfigError) -> bool {
        match e {
            ConfigError::Shape { file, path, .. } => file == "fuzz.json" && !path.is_empty(),
            ConfigError::Invalid(i, file) => file == "fuzz.json" && !i.path.is_empty(),
            ConfigError::Expand(e, file) => {
                let text = e.to_string();
                file == "fuzz.json" && !text.starts_with(": ") && text.contains(": ")
            }
            // One file in memory: never unreadable, never a drop-in.
            ConfigError::Json { .. } | ConfigError::Read { .. } | ConfigError::Dropin(_) => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]

        #[test]
        fn arbitrary_json_never_panics_and_errors_name_a_path(v in prop_oneof![config(), value()]) {
            let text = serde_json::to_string(&v).unwrap();
            if let Err(e) = parse(&text, "fuzz.json", &|k| (k == "X").then(|| "x".into())) {
                prop_assert!(names_a_path(&e), "{e} (from {text})");
            }
        }
    }
}

#[test]
fn shape_errors_always_name_a_place() {
    assert_eq!(
        parse_err(r#"{"": null}"#),
        "test.json: \"\": unknown field ``, expected one of `mcpProxy`, `mcpServers`, `groups`"
    );
    assert!(parse_err("true").starts_with("test.json: (top level): invalid type"));
    assert!(
        parse_err(r#"{"mcpServers": {"a": {"command": "x", "args": ["y", 1]}}}"#)
            .starts_with("test.json: mcpServers.a.args[1]: invalid type")
    );
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
