//! Label hygiene: whatever a client sends, the only label values it can
//! reach are the server's own tool names and the fixed vocabularies.

use super::*;
use serde_json::json;

/// A fresh set of metrics, apart from the process's.
fn fresh() -> &'static Metrics {
    Box::leak(Box::new(Metrics::default()))
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
        // Raw paths reach the counter only as templates.
        let (first, rest) = bad
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((bad, ""));
        m.http(crate::http::metrics::route_template(first, rest), 404);
        m.http(crate::http::metrics::route_template(bad, "mcp"), 200);
    }
    m.auth_failed(AuthFailure::Invalid);
    let out = m.render_with(vec![]);
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
    assert!(out.contains("gen_ai_tool_name=\"other\""));
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
            "echo",
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
    assert_eq!(s.tool_label("t0"), "t0");
    assert_eq!(s.tool_label(&format!("t{}", MAX_TOOLS + 10)), OTHER);
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
    let out = m.render_with(vec![]);
    assert!(out.contains(
        "mcp_server_operation_duration_seconds_count{mcp_method_name=\"ping\",gen_ai_tool_name=\"\",error_type=\"\",server=\"fx\",transport=\"streamable\",protocol_era=\"legacy\"} 5"
    ), "{out}");
    assert!(!out.contains("mcp_client_operation_duration_seconds_count"));
}
