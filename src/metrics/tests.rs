//! Label hygiene: whatever a client sends, the only label values it can
//! reach are the server's own tool names and the fixed vocabularies.

use super::*;
use serde_json::json;

/// A fresh set of metrics, apart from the process's.
fn fresh() -> Metrics {
    Metrics::default()
}

/// What the hub would read of server `name` at a scrape.
fn reading(name: &str) -> UpstreamReading {
    UpstreamReading {
        name: name.into(),
        state: "ready",
        pid: None,
        cgroups: None,
    }
}

/// A `tools/list` answer naming `names`.
fn listing<S: AsRef<str>>(names: &[S]) -> Message {
    let tools: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n.as_ref(), "inputSchema": {}}))
        .collect();
    Message::response(1u64.into(), json!({ "tools": tools }))
}

/// Records one `tools/call` of `tool` answered with `answer`, both sides.
fn call_with(s: &ServerMetrics, tool: &str, answer: &Message) {
    let mut call = Call::start(
        s,
        "tools/call",
        Some(tool),
        Transport::Streamable,
        Era::Legacy,
    );
    call.sent();
    let e = ErrorType::of(answer, true);
    s.server_op(&call, e);
    s.client_op(&call, UpstreamKind::Stdio, Era::Legacy, e);
}

const HOSTILE: &[&str] = &[
    "0123456789abcdef0123456789abcdef", // a session id
    "Bearer s3cr3t-token",
    "alice@example.com",
    "../../etc/passwd",
    "/fx/mcp?sessionId=deadbeef",
    "inject\"} 1\nfake_metric{a=\"b",
    "{\"path\":\"/home/alice\"}",
    "x\u{0}y\u{202e}z",
];

#[test]
fn no_client_string_but_a_listed_tool_becomes_a_label() {
    let m = fresh();
    let s = m.server("fx");
    // The server lists one tool; only that name may appear.
    s.listed_tools(&Message::response(
        1u64.into(),
        json!({"tools": [{"name": "echo", "inputSchema": {}}]}),
    ));
    let answers = [
        Message::response(1u64.into(), json!({"content": []})),
        Message::response(1u64.into(), json!({"content": [], "isError": true})),
        Message::error(Some(1u64.into()), -32602, "Unknown tool: x"),
        // An upstream's own code outside the reserved range.
        Message::error(Some(1u64.into()), 123456, "no"),
    ];
    for (i, bad) in HOSTILE.iter().enumerate() {
        for (method, tool) in [
            (*bad, None),
            ("tools/call", Some(*bad)),
            ("tools/call", Some("echo")),
        ] {
            let era = Era::of(i % 2 == 0);
            let mut call = Call::start(&s, method, tool, Transport::ALL[i % 3], era);
            call.sent();
            let answer = &answers[i % answers.len()];
            let e = ErrorType::of(answer, call.is_tool_call());
            s.server_op(&call, e);
            s.client_op(&call, UpstreamKind::Stdio, era, e);
        }
        s.session_opened(Transport::Sse);
        s.session_closed(Transport::Sse, Duration::from_millis(5));
        // The HTTP layer counts route templates (`http::metrics::route_template`).
        m.http("other", 404);
        m.http("/{server}/mcp", 200);
    }
    m.auth_failed(AuthFailure::Invalid);
    let out = m.render(vec![reading("fx")]);
    // The samples: the HELP texts are the hub's own words.
    let samples: String = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for bad in HOSTILE {
        assert!(!out.contains(bad), "{bad:?} became a label:\n{out}");
        // Nor any distinctive part of it.
        for part in bad
            .split(|c: char| !c.is_alphanumeric())
            .filter(|p| p.len() >= 5)
        {
            assert!(
                !samples.contains(part),
                "{part:?} (from {bad:?}) is in the output:\n{out}"
            );
        }
    }
    assert!(!out.contains("fake_metric"));
    assert!(!out.contains("123456"));
    assert!(out.contains("gen_ai_tool_name=\"echo\""));
    assert!(out.contains("gen_ai_tool_name=\"_other\""));
    assert!(out.contains("mcp_method_name=\"other\""));
    assert!(out.contains("error_type=\"tool_error\""));
    assert!(out.contains("error_type=\"-32602\""));
    assert!(out.contains("route=\"/{server}/mcp\""));
    assert!(out.contains("route=\"other\""));

    // Every label value in the output is from a vocabulary or the server's list.
    let mut allowed: Vec<String> = METHODS.iter().map(|m| m.to_string()).collect();
    allowed.extend(
        [
            "",
            "other",
            "_other",
            "echo",
            "ready",
            "stopped",
            "starting",
            "backoff",
            "failed",
            "disabled",
            "fx",
            "sse",
            "streamable",
            "openapi",
            "stdio",
            "pipe",
            "tcp",
            "legacy",
            "modern",
            "tool_error",
            "-32602",
            "missing",
            "invalid",
            "/{server}/mcp",
            "/{server}/sse",
            "/{server}/message",
            "/",
            "200",
            "404",
            "exit",
            "signal",
            "oom",
            "ping",
            "connect",
        ]
        .map(String::from),
    );
    for line in out.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line.split_once('{').and_then(|(_, r)| r.rsplit_once('}')) else {
            continue;
        };
        for pair in labels.0.split("\",") {
            let (k, v) = pair.split_once("=\"").expect("label=value");
            let v = v.trim_end_matches('"');
            if k == "le" {
                continue;
            }
            assert!(allowed.iter().any(|a| a == v), "label {k}={v:?} in {line}");
        }
    }
}

#[test]
fn tool_names_are_capped_per_server() {
    let m = fresh();
    let s = m.server("big");
    let tools: Vec<_> = (0..MAX_TOOLS + 50)
        .map(|i| json!({"name": format!("t{i}")}))
        .collect();
    s.listed_tools(&Message::response(1u64.into(), json!({ "tools": tools })));
    assert_eq!(s.tool_name(s.tool_label("t0")).as_deref(), Some("t0"));
    assert_eq!(s.tool_label(&format!("t{}", MAX_TOOLS + 10)), ToolId::OTHER);
    assert_eq!(s.tools_known(), MAX_TOOLS);
}

#[test]
fn one_observation_per_call_with_the_outcome() {
    let m = fresh();
    let s = m.server("fx");
    for _ in 0..5 {
        let c = Call::start(&s, "ping", None, Transport::Streamable, Era::Legacy);
        s.server_op(&c, ErrorType::None);
    }
    assert_eq!(s.server_calls(), 5);
    // Never sent upstream: no client-side observation.
    let c = Call::start(&s, "ping", None, Transport::Streamable, Era::Legacy);
    s.client_op(&c, UpstreamKind::Stdio, Era::Legacy, ErrorType::None);
    let out = m.render(vec![reading("fx")]);
    assert!(out.contains(
        "mcp_server_operation_duration_seconds_count{mcp_method_name=\"ping\",gen_ai_tool_name=\"\",error_type=\"\",server=\"fx\",transport=\"streamable\",protocol_era=\"legacy\"} 5"
    ), "{out}");
    assert!(!out.contains("mcp_client_operation_duration_seconds_count"));
}

#[test]
fn huge_and_many_tool_names_stay_bounded_and_leave_nothing_behind() {
    let m = fresh();
    let s = m.server("big");
    let weak = Arc::downgrade(&s);
    // One new 8 MiB name per listing (the leak this replaced kept each).
    for i in 0..4 {
        let huge = format!("{i}{}", "x".repeat(8 << 20));
        s.listed_tools(&listing(&[huge.as_str(), "echo"]));
        call_with(&s, &huge, &Message::response(1u64.into(), json!({})));
    }
    // Names just past the length cap, and far more names than the count cap.
    let long: Vec<String> = (0..50)
        .map(|i| format!("{i:0>width$}", width = MAX_TOOL_NAME + 1))
        .collect();
    s.listed_tools(&listing(&long));
    let many: Vec<String> = (0..4 * MAX_TOOLS).map(|i| format!("t{i}")).collect();
    s.listed_tools(&listing(&many));
    assert_eq!(s.tools_known(), MAX_TOOLS);
    assert_eq!(s.tool_label(&long[0]), ToolId::OTHER);
    assert_eq!(s.tool_label(&many[4 * MAX_TOOLS - 1]), ToolId::OTHER);
    assert_eq!(s.tool_name(s.tool_label("echo")).as_deref(), Some("echo"));
    let out = m.render(vec![reading("big")]);
    assert!(out.len() < 64 << 10, "{} bytes", out.len());
    assert!(out.contains("gen_ai_tool_name=\"_other\""));
    assert!(!out.contains("xxxxxxxx"));
    // Removed by a reload: nothing of the server is held any more.
    drop(s);
    m.retain_servers(|n| n != "big");
    assert!(
        weak.upgrade().is_none(),
        "the removed server's series live on"
    );
    let out = m.render(vec![reading("big")]);
    assert!(
        !out.contains("mcp_server_operation_duration_seconds_count"),
        "{out}"
    );
}

#[test]
fn an_error_code_flood_makes_a_fixed_set_of_series() {
    let m = fresh();
    let s = m.server("fx");
    s.listed_tools(&listing(&["echo"]));
    for code in -32999..=-32000 {
        let e = Message::error(Some(1u64.into()), code, "no");
        call_with(&s, "echo", &e);
        call_with(&s, "nope", &e);
    }
    for code in [-32700, 1, i64::MIN, i64::MAX, 0] {
        call_with(&s, "echo", &Message::error(Some(1u64.into()), code, "no"));
    }
    let out = m.render(vec![reading("fx")]);
    let mut kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("error_type=\"").nth(1))
        .filter_map(|r| r.split('"').next())
        .collect();
    kinds.sort();
    kinds.dedup();
    // The codes of the vocabulary within the range, and `other`.
    assert!(kinds.len() <= ERROR_CODES.len() + 1, "{kinds:?}");
    assert!(kinds.contains(&"other") && kinds.contains(&"-32602"));
    assert!(!kinds.contains(&"-32999") && !kinds.contains(&"-32500"));
    // tools/call × {echo, _other} × (codes + other), both sides.
    assert!(
        s.op_series() <= 2 * 2 * (ERROR_CODES.len() + 1),
        "{}",
        s.op_series()
    );
}

#[test]
fn series_and_scrape_size_are_capped_per_server() {
    let m = fresh();
    let s = m.server("wide");
    let names: Vec<String> = (0..1024)
        .map(|i| format!("{i:0>width$}", width = MAX_TOOL_NAME))
        .collect();
    s.listed_tools(&listing(&names));
    let errors: Vec<Message> = ERROR_CODES
        .iter()
        .map(|c| Message::error(Some(1u64.into()), i64::from(*c), "no"))
        .collect();
    for n in &names {
        for (i, e) in errors.iter().enumerate() {
            let era = Era::of(i % 2 == 0);
            let mut call = Call::start(&s, "tools/call", Some(n), Transport::ALL[i % 3], era);
            call.sent();
            let e = ErrorType::of(e, true);
            s.server_op(&call, e);
            s.client_op(&call, UpstreamKind::Sse, era, e);
        }
    }
    // Past the cap: one overflow series per method, transport and era.
    assert!(
        s.op_series() <= 2 * (MAX_OP_SERIES + 6),
        "{}",
        s.op_series()
    );
    let out = m.render(vec![reading("wide")]);
    let series = out
        .lines()
        .filter(|l| l.starts_with("mcp_") && l.contains("_count{"))
        .count();
    assert!(series <= 2 * (MAX_OP_SERIES + 6), "{series}");
    // Every call is still counted, in some series.
    assert_eq!(s.server_calls(), (names.len() * errors.len()) as u64);
    eprintln!("worst case: {series} series, {} bytes", out.len());
    assert!(out.len() < 6 << 20, "one scrape is {} bytes", out.len());
}

#[test]
fn a_scrape_shows_only_the_servers_read_for_it() {
    let m = fresh();
    for name in ["a", "b"] {
        let s = m.server(name);
        s.listed_tools(&listing(&[format!("{name}_secret_tool")]));
        call_with(
            &s,
            &format!("{name}_secret_tool"),
            &Message::response(1u64.into(), json!({})),
        );
        s.session_opened(Transport::Sse);
        s.restarted(RestartReason::Exit);
    }
    let out = m.render(vec![reading("a")]);
    assert!(out.contains("a_secret_tool") && out.contains("server=\"a\""));
    assert!(
        !out.contains("b_secret_tool") && !out.contains("server=\"b\""),
        "{out}"
    );
}

#[test]
fn tools_a_server_stopped_listing_go_at_a_reload() {
    let m = fresh();
    let s = m.server("fx");
    s.listed_tools(&listing(&["old", "kept"]));
    for t in ["old", "kept"] {
        call_with(&s, t, &Message::response(1u64.into(), json!({})));
    }
    // Not listed since: a reload keeps everything.
    m.retain_servers(|_| true);
    assert_eq!(s.tools_known(), 2);
    s.listed_tools(&listing(&["kept"]));
    m.retain_servers(|_| true);
    assert_eq!(s.tools_known(), 1);
    assert_eq!(s.tool_label("old"), ToolId::OTHER);
    let out = m.render(vec![reading("fx")]);
    assert!(
        !out.contains("\"old\"") && out.contains("\"kept\""),
        "{out}"
    );
}
