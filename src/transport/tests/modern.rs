//! Stateless 2026-07-28 requests in-process: header and `_meta` checks,
//! version refusals, no session, result hints, held questions, discover and
//! listen streams.
//!
//! The successful calls go to `pc`, the per-client server, whose transient
//! sessions the endpoint opens, and to `fx`, a shared server, whose stateless
//! exchanges run on the endpoint's shared upstream. Refusals come before any
//! upstream, so they use `fx`.

use super::*;

const V: (&str, &str) = ("mcp-protocol-version", "2026-07-28");

/// A modern request: `params` with the envelope's required `_meta` keys.
fn modern(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    rpc(id, method, params)
}

/// The headers a modern request owes: version, method, and name if any.
fn hdr<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![V, ("mcp-method", method)];
    h.extend(name.map(|n| ("mcp-name", n)));
    h
}

/// Posts and reads the whole answer; a modern answer never names a session.
async fn ask(h: &Harness, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let r = Reply::read(h.post(path, body, headers).await).await;
    assert!(
        r.headers.get("mcp-session-id").is_none(),
        "a modern answer carries no session id: {:?}",
        r.messages
    );
    r
}

/// `(status, error code)` of a refusal.
fn refusal(r: &Reply) -> (u16, Value) {
    (r.status, r.last()["error"]["code"].clone())
}

#[tokio::test]
async fn a_stateless_request_is_answered_with_no_session_and_its_question_is_held() {
    let h = harness().await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}});
    // A per-client server: a transient session the hub initializes.
    let echo = json!({"name": "echo", "arguments": {"text": "now"}, "_meta": meta});
    let r = ask(
        &h,
        "/pc/mcp",
        rpc(7, "tools/call", echo),
        &hdr("tools/call", Some("echo")),
    )
    .await;
    let v = r.last();
    assert_eq!(v["id"], 7);
    assert_eq!(v["result"]["content"][0]["text"], "now", "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    // The question becomes input_required; the retry carries the answer.
    let question = json!({"name": "ask", "arguments": {}, "_meta": meta});
    let r = ask(
        &h,
        "/pc/mcp",
        rpc(8, "tools/call", question.clone()),
        &hdr("tools/call", Some("ask")),
    )
    .await;
    let v = r.last();
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    let (key, asked) = v["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(asked["method"], "elicitation/create", "{v}");
    let mut retry = question;
    retry["requestState"] = v["result"]["requestState"].clone();
    retry["inputResponses"] = json!({key.clone(): {"action": "accept", "content": {"name": "bo"}}});
    let r = ask(
        &h,
        "/pc/mcp",
        rpc(9, "tools/call", retry),
        &hdr("tools/call", Some("ask")),
    )
    .await;
    let v = r.last();
    assert_eq!(v["id"], 9);
    assert_eq!(v["result"]["content"][0]["text"], "answered bo", "{v}");
    // A header that disagrees with the body: 400 with -32020.
    let body = json!({"name": "echo", "arguments": {}, "_meta": meta});
    let r = ask(
        &h,
        "/pc/mcp",
        rpc(10, "tools/call", body),
        &hdr("tools/list", Some("echo")),
    )
    .await;
    assert_eq!(refusal(&r), (400, json!(-32020)));
}

/// Moved from `era::a_modern_call_needs_no_session_and_gets_result_type`
/// (on the per-client server: see the module's note).
#[tokio::test]
async fn a_modern_call_needs_no_session_and_gets_result_type() {
    let h = harness().await;
    let body = modern(
        7,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let r = ask(
        &h,
        "/pc/mcp",
        body.clone(),
        &hdr("tools/call", Some("echo")),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.messages);
    let v = r.last();
    assert_eq!(v["id"], json!(7));
    assert_eq!(v["result"]["content"][0]["text"], json!("hi"));
    assert_eq!(v["result"]["resultType"], json!("complete"));
    assert!(
        v["result"].get("ttlMs").is_none(),
        "tools/call is not cacheable: {v}"
    );
    let r = ask(
        &h,
        "/pc/mcp",
        modern(8, "tools/list", json!({})),
        &hdr("tools/list", None),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.last()["result"]["ttlMs"], json!(0));
    assert_eq!(r.last()["result"]["cacheScope"], json!("private"));
    // The base64 sentinel in Mcp-Name is decoded before comparing ("echo").
    let r = ask(
        &h,
        "/pc/mcp",
        body,
        &hdr("tools/call", Some("=?base64?ZWNobw==?=")),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.messages);
    assert_eq!(r.last()["result"]["content"][0]["text"], json!("hi"));
    assert_eq!(open_sessions(&h), 0, "no streamable session was opened");
}

/// Moved from `era::discover_is_answered_from_the_upstream`.
#[tokio::test]
async fn discover_is_answered_from_the_upstream() {
    let h = harness().await;
    for path in ["/pc/mcp", "/fx/mcp"] {
        let r = ask(
            &h,
            path,
            modern(1, "server/discover", json!({})),
            &hdr("server/discover", None),
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.messages);
        let d = &r.last()["result"];
        assert_eq!(d["supportedVersions"], json!(["2026-07-28"]), "{path}");
        assert_eq!(
            d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            json!("memory"),
            "{path}: {d}"
        );
        assert_eq!(d["cacheScope"], json!("private"), "{path}");
        assert_eq!(d["resultType"], json!("complete"), "{path}");
    }
}

/// Moved from `era::header_and_meta_rejections`.
#[tokio::test]
async fn header_and_meta_rejections() {
    let h = harness().await;
    let body = modern(7, "tools/call", json!({"name": "echo", "arguments": {}}));
    let refused = |headers: Vec<(&'static str, &'static str)>, body: Value| {
        let h = &h;
        async move { refusal(&ask(h, "/fx/mcp", body, &headers).await) }
    };
    let mismatch = (400, json!(-32020));
    // Missing Mcp-Method; one that differs from the body.
    let r = refused(vec![V, ("mcp-name", "echo")], body.clone()).await;
    assert_eq!(r, mismatch);
    let r = refused(hdr("tools/list", Some("echo")), body.clone()).await;
    assert_eq!(r, mismatch);
    // Mcp-Name missing, then different.
    let r = refused(hdr("tools/call", None), body.clone()).await;
    assert_eq!(r, mismatch);
    let r = refused(hdr("tools/call", Some("other")), body.clone()).await;
    assert_eq!(r, mismatch);
    // MCP-Protocol-Version missing or not the body's.
    let r = refused(
        vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
        body.clone(),
    )
    .await;
    assert_eq!(r, mismatch);
    // Required _meta key missing.
    let mut no_caps = body.clone();
    no_caps["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    let r = refused(hdr("tools/call", Some("echo")), no_caps).await;
    assert_eq!(r, (400, json!(-32602)));
    // A version the hub does not serve: -32022 naming what it does.
    let mut future = body.clone();
    future["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let r = ask(
        &h,
        "/fx/mcp",
        future,
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
    )
    .await;
    assert_eq!(refusal(&r), (400, json!(-32022)));
    let data = &r.last()["error"]["data"];
    assert_eq!(data["requested"], json!("2099-01-01"));
    assert!(data["supported"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    // Methods the era removed.
    let r = refused(hdr("ping", None), modern(7, "ping", json!({}))).await;
    assert_eq!(r, (404, json!(-32601)));
}

#[tokio::test]
async fn every_method_the_era_removed_is_404() {
    let h = harness().await;
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let r = ask(
            &h,
            "/pc/mcp",
            modern(1, method, json!({})),
            &hdr(method, None),
        )
        .await;
        assert_eq!(refusal(&r), (404, json!(-32601)), "{method}");
        let why = r.last()["error"]["message"].as_str().unwrap();
        assert!(why.contains("2026-07-28"), "{method}: {why}");
    }
}

#[tokio::test]
async fn a_version_refusal_never_names_the_requested_version_as_supported() {
    let h = harness().await;
    // The 2026-07-28 path: the envelope names a version it does not serve
    // (a legacy one included: this path serves only the modern ones).
    for v in ["2099-01-01", "2025-11-25", "2024-11-05"] {
        let mut body = modern(1, "tools/list", json!({}));
        body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(v);
        let headers = [("mcp-protocol-version", v), ("mcp-method", "tools/list")];
        let r = ask(&h, "/fx/mcp", body, &headers).await;
        assert_eq!(refusal(&r), (400, json!(-32022)), "{v}");
        let data = &r.last()["error"]["data"];
        assert_eq!(data["requested"], json!(v));
        let supported = data["supported"].as_array().unwrap();
        assert!(
            !supported.is_empty() && !supported.contains(&json!(v)),
            "{v}: {data}"
        );
    }
    // The 2025 path: a session's request under a version that is not one of
    // its era's (a modern one included), or no version at all.
    let sid = h.initialize("/fx/mcp").await;
    for v in ["2031-01-01", "2026-07-28"] {
        let r = Reply::read(
            h.post(
                "/fx/mcp",
                rpc(2, "tools/list", json!({})),
                &[("mcp-session-id", &sid), ("mcp-protocol-version", v)],
            )
            .await,
        )
        .await;
        assert_eq!(refusal(&r), (400, json!(-32022)), "{v}");
        let e = &r.last()["error"];
        assert_eq!(e["data"]["requested"], json!(v));
        let supported = e["data"]["supported"].as_array().unwrap();
        assert!(
            !supported.is_empty() && !supported.contains(&json!(v)),
            "{v}: {e}"
        );
        let listed = e["message"].as_str().unwrap().split("supported:").nth(1);
        assert!(
            listed.is_some_and(|l| !l.contains(v)),
            "{v}: the message lists it: {e}"
        );
    }
}

/// Moved from `groups::repeated_modern_headers_are_refused`, and the same
/// for every one of the three headers, on a server and on a group.
#[tokio::test]
async fn repeated_modern_headers_are_refused() {
    let h = harness().await;
    let body = modern(1, "tools/call", json!({"name": "echo", "arguments": {}}));
    for path in ["/g/all/mcp", "/fx/mcp", "/pc/mcp"] {
        for (name, again) in [
            ("mcp-method", "tools/list"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-name", "echo"),
        ] {
            let mut headers = hdr("tools/call", Some("echo"));
            headers.push((name, again));
            let r = ask(&h, path, body.clone(), &headers).await;
            assert_eq!(refusal(&r), (400, json!(-32020)), "{path} {name}");
            let why = r.last()["error"]["message"].as_str().unwrap();
            assert!(why.contains("sent once"), "{path} {name}: {why}");
        }
    }
}

#[tokio::test]
async fn a_version_header_without_an_envelope_is_refused_as_modern() {
    let h = harness().await;
    let body = rpc(1, "tools/list", json!({}));
    let r = ask(&h, "/fx/mcp", body, &hdr("tools/list", None)).await;
    assert_eq!(refusal(&r), (400, json!(-32602)));
    let why = r.last()["error"]["message"].as_str().unwrap();
    assert!(why.contains("protocolVersion"), "{why}");
}

#[tokio::test]
async fn a_modern_notification_gets_202() {
    let h = harness().await;
    let mut note = modern(0, "notifications/cancelled", json!({"requestId": 1}));
    note.as_object_mut().unwrap().remove("id");
    let r = ask(&h, "/pc/mcp", note, &hdr("notifications/cancelled", None)).await;
    assert_eq!(r.status, 202);
    assert!(r.messages.is_empty());
}

#[tokio::test]
async fn progress_on_a_modern_call_streams_with_the_clients_token() {
    let h = harness().await;
    let mut body = modern(
        4,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 200}}),
    );
    body["params"]["_meta"]["progressToken"] = json!("p-4");
    let r = ask(&h, "/pc/mcp", body, &hdr("tools/call", Some("slow"))).await;
    assert!(r.sse, "progress first makes the answer a stream");
    let progress: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 4, "{:?}", r.messages);
    assert!(progress
        .iter()
        .all(|m| m["params"]["progressToken"] == "p-4"));
    assert_eq!(r.last()["id"], 4);
    assert_eq!(r.last()["result"]["content"][0]["text"], "slept 200ms");
    assert_eq!(r.last()["result"]["resultType"], "complete");
}

/// Moved from `era::a_listen_stream_is_acknowledged_and_tagged`.
#[tokio::test]
async fn a_listen_stream_is_acknowledged_and_tagged() {
    listen_and_change(json!({})).await;
}

#[tokio::test]
async fn a_change_notification_without_params_is_tagged_too() {
    listen_and_change(json!({"bare": true})).await;
}

/// Listens for tool list changes, has another client change the tools
/// (`list_changed` with `args`), and checks the notification is tagged.
async fn listen_and_change(args: Value) {
    let h = harness().await;
    let mut body = modern(
        0,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    body["id"] = json!("L1");
    let r = h
        .post("/pc/mcp", body, &hdr("subscriptions/listen", None))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("mcp-session-id").is_none());
    let mut events = Events::new(r);
    let ack = events.message(|_| true).await;
    assert_eq!(
        ack["method"],
        json!("notifications/subscriptions/acknowledged")
    );
    assert_eq!(
        ack["params"]["notifications"]["toolsListChanged"],
        json!(true)
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        json!("L1")
    );
    // Another client makes the server change its tools.
    let sid = h.initialize("/fx/mcp").await;
    let change = call(1, "list_changed", args);
    let r = Reply::read(h.post("/fx/mcp", change, &[("mcp-session-id", &sid)]).await).await;
    assert_eq!(r.last()["result"]["content"][0]["text"], "sent");
    let n = events
        .message(|m| m["method"] == "notifications/tools/list_changed")
        .await;
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        json!("L1")
    );
}

/// Moved from `era::a_listen_with_too_many_subscriptions_is_refused_whole`.
#[tokio::test]
async fn a_listen_with_too_many_subscriptions_is_refused_whole() {
    let h = harness().await;
    let uris: Vec<String> = (0..100_000).map(|i| format!("test://static/{i}")).collect();
    let body = modern(
        1,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": uris}}),
    );
    let r = ask(&h, "/pc/mcp", body, &hdr("subscriptions/listen", None)).await;
    assert_eq!(refusal(&r), (400, json!(-32602)), "{:?}", r.messages);
    let why = r.last()["error"]["message"].as_str().unwrap();
    assert!(why.contains("at most 256"), "{why}");
    // Nothing was opened for it: the next request is answered at once.
    let t = std::time::Instant::now();
    let r = ask(
        &h,
        "/pc/mcp",
        modern(2, "tools/list", json!({})),
        &hdr("tools/list", None),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stateless_call_on_a_shared_server_runs_on_the_endpoints_upstream() {
    let h = harness().await;
    let body = modern(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let r = ask(&h, "/fx/mcp", body, &hdr("tools/call", Some("echo"))).await;
    assert_eq!(r.status, 200, "{:?}", r.messages);
    assert_eq!(r.last()["result"]["content"][0]["text"], "x");
}

/// What `Read::of` leaves in the message for the session layer is what the
/// session layer would have found in it: the tool name and the progress token.
#[test]
fn the_one_read_leaves_what_a_scan_of_the_params_finds() {
    use crate::transport::modern::{Headers, Read};
    for params in [
        json!({"name": "echo", "arguments": {"s": "x"}, "_meta": {"progressToken": "p1",
               "io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        json!({"name": "n\u{e9}", "_meta": {"progressToken": 12}}),
        json!({"arguments": {}, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        json!({"name": "echo"}),
        json!({}),
    ] {
        let scanned = Message::from_value(rpc(1, "tools/call", params.clone())).unwrap();
        let mut read = scanned.clone();
        let r = Read::of(Headers::from(&http::HeaderMap::new()), &mut read);
        assert_eq!(
            r.is_modern(),
            params["_meta"]
                .get("io.modelcontextprotocol/protocolVersion")
                .is_some()
        );
        assert_eq!(
            read.param::<String>("name"),
            scanned.param::<String>("name"),
            "{params}"
        );
        assert_eq!(
            read.progress_token().map(|t| t.get().to_string()),
            scanned.progress_token().map(|t| t.get().to_string()),
            "{params}"
        );
    }
}
