//! Trace context through the hub: `_meta.traceparent`, `tracestate` and
//! `baggage` reach the server byte for byte and come back byte for byte, on
//! both transports; the audit line carries the trace id (`TRACE_ID` in the
//! journal, see journal.rs), and only from a well-formed traceparent.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A `_meta` as a client may write it: odd spacing, an escape, a vendor key.
fn meta() -> String {
    format!(
        r#"{{ "traceparent" : "00-{TRACE}-00f067aa0ba902b7-01",  "tracestate":"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "baggage":"userId=al\u0069ce,serverNode=DF%2028;prop=1" ,"vendor.example/x":[1.50,{{}}]}}"#
    )
}

fn echo_raw(id: u64, meta: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo_raw","arguments":{{"a":1}},"_meta":{meta}}}}}"#
    )
}

/// What the server saw (its second content item) and what the client got
/// back as the result's `_meta`, as raw text.
fn check_round_trip(body: &str, sent: &str) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        v["result"]["content"][1]["text"].as_str(),
        Some(sent),
        "the server did not get the _meta as sent: {body}"
    );
    assert!(
        body.contains(&format!("\"_meta\":{sent}")),
        "the client did not get the server's _meta byte for byte: {body}"
    );
}

#[tokio::test]
async fn trace_context_passes_untouched_both_ways_streamable() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let sent = meta();
    let (status, body) = c.post_raw(&echo_raw(7, &sent)).await;
    assert_eq!(status, 200, "{body}");
    check_round_trip(&body, &sent);
    // Per-client mode passes the session through verbatim as well.
    let hub = Hub::start(
        json!({}),
        json!({"pc": fx(json!({"session": "per-client"}))}),
    );
    let mut c = Mcp::new(&hub, "pc");
    c.initialize().await;
    let (status, body) = c.post_raw(&echo_raw(8, &sent)).await;
    assert_eq!(status, 200, "{body}");
    check_round_trip(&body, &sent);
}

#[tokio::test]
async fn trace_context_passes_untouched_both_ways_legacy_sse() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let (endpoint, mut events) = legacy_raw(&hub, "fx").await;
    let http = reqwest::Client::new();
    let init = req(json!(1), "initialize", init_params("2024-11-05")).to_string();
    assert_eq!(post_raw_to(&http, &endpoint, &init).await, 202);
    events.next_raw(10).await.expect("the initialize answer");
    let sent = meta();
    assert_eq!(
        post_raw_to(&http, &endpoint, &echo_raw(2, &sent)).await,
        202
    );
    let answer = events.next_raw(10).await.expect("the call's answer");
    check_round_trip(&answer, &sent);
}

#[tokio::test]
async fn the_audit_line_carries_a_well_formed_trace_id_only() {
    let hub = Hub::start(
        json!({"options": {"logEnabled": true}}),
        json!({"fx": fx(json!({}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let traced = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "traced"},
        "_meta": {"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")}}});
    assert_eq!(
        c.post(&traced).await.last()["result"]["content"][0]["text"],
        "traced"
    );
    // A forged traceparent (a newline and a fake field) is no trace id.
    let forged = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "forged"},
        "_meta": {"traceparent": "00-zz\nFAKE=1-00f067aa0ba902b7-01"}}});
    assert_eq!(
        c.post(&forged).await.last()["result"]["content"][0]["text"],
        "forged"
    );
    c.call_text(3, "echo", json!({"text": "plain"})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = hub.log_lines_with(&["tools/call \"echo\": ok"]);
    assert_eq!(audit.len(), 3, "{audit:?}");
    assert!(
        audit[0].contains(&format!("trace_id=\"{TRACE}\""))
            || audit[0].contains(&format!("trace_id={TRACE}")),
        "{}",
        audit[0]
    );
    for line in &audit[1..] {
        assert!(!line.contains("trace_id"), "{line}");
        assert!(!line.contains("FAKE"), "{line}");
    }
}

/// A stateless (2026-07-28) call on a shared server has no session: its
/// audit line names its token and trace, and no session (none is made up),
/// while a session's call names its session.
#[tokio::test]
async fn a_stateless_calls_audit_line_names_no_session() {
    let hub = Hub::start(
        json!({"options": {"logEnabled": true}}),
        json!({"fx": fx(json!({}))}),
    );
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "stateless"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")}}});
    let r = reqwest::Client::new()
        .post(hub.url("/fx/mcp"))
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("mcp-session-id").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "stateless", "{v}");
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    c.call_text(3, "echo", json!({"text": "session"})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit = hub.log_lines_with(&["tools/call \"echo\": ok"]);
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].contains(TRACE), "{}", audit[0]);
    assert!(audit[0].contains("token"), "{}", audit[0]);
    assert!(!audit[0].contains("mcp_session"), "{}", audit[0]);
    // A session's call names it as it always did: plain, unquoted (log
    // queries match on `mcp_session=<id>`).
    let sid = c.session.clone().expect("a session id");
    assert!(
        audit[1].contains(&format!("mcp_session={sid}")),
        "{}",
        audit[1]
    );
}
