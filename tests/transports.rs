//! Both transports end to end through the real binary, and every refusal the
//! HTTP layer owes a bad request.

mod common;
use common::*;
use serde_json::{json, Value};

fn one() -> (Value, Value) {
    (json!({}), json!({"fx": fx(json!({}))}))
}

#[tokio::test]
async fn streamable_initialize_list_call() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let mut c = Mcp::new(&hub, "fx");
    let init = c.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-fixture");
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    let sid = c.session.clone().unwrap();
    assert_eq!(sid.len(), 32);
    assert!(sid.chars().all(|ch| ch.is_ascii_hexdigit()));

    let r = c.post(&req(json!("a"), "tools/list", json!({}))).await;
    assert_eq!(r.status, 200);
    assert!(!r.sse, "a plain result is a JSON response");
    let names: Vec<&str> = r.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo") && names.contains(&"test_simple_text"));
    assert_eq!(r.last()["id"], "a", "the client's own id comes back");
    assert_eq!(
        c.call_text(7, "echo", json!({"text": "héllo"})).await,
        "héllo"
    );

    // Lossless: unknown fields in results survive the hub.
    let r = c
        .post(&req(json!(8), "tools/list", json!({"_meta": {"x": 1}})))
        .await;
    let schema = &r.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "json_schema_2020_12_tool")
        .unwrap()["inputSchema"];
    assert_eq!(schema["$defs"]["address"]["type"], "object");
    assert_eq!(schema["additionalProperties"], false);

    let r = c
        .post(&req(
            json!(9),
            "resources/read",
            json!({"uri": "test://template/42/data"}),
        ))
        .await;
    assert!(r.last()["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Data for ID: 42"));
    let r = c
        .post(&req(
            json!(10),
            "prompts/get",
            json!({"name": "test_prompt_with_arguments", "arguments": {"arg1": "x", "arg2": "y"}}),
        ))
        .await;
    assert!(r.last()["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap()
        .contains("arg1='x'"));
}

#[tokio::test]
async fn streamable_progress_streams_as_sse_and_keeps_token() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let r = c
        .post(&req(
            json!(3),
            "tools/call",
            json!({"name": "slow", "arguments": {"ms": 200}, "_meta": {"progressToken": "tok-1"}}),
        ))
        .await;
    assert!(
        r.sse,
        "progress before the result makes the response a stream"
    );
    let progress: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 4);
    assert!(progress
        .iter()
        .all(|m| m["params"]["progressToken"] == "tok-1"));
    assert_eq!(r.last()["id"], 3);
    assert_eq!(r.last()["result"]["content"][0]["text"], "slept 200ms");
}

#[tokio::test]
async fn streamable_batch_and_notifications() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let batch = json!([call(1, "echo", json!({"text": "a"})), call(2, "add", json!({"a": 2, "b": 3})),
                       {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}]);
    let r = c.post(&batch).await;
    assert_eq!(r.status, 200);
    let mut ids: Vec<i64> = r
        .messages
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
    let only_note = c
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}))
        .await;
    assert_eq!(only_note.status, 202);
    assert!(only_note.messages.is_empty());
}

#[tokio::test]
async fn streamable_session_rules() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({})), "fx2": fx(json!({}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    // No session, not initialize: 400.
    let r = c.post(&call(1, "echo", json!({}))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.last()["error"]["code"], -32600);
    // Unknown session: 404.
    c.session = Some("0".repeat(32));
    let r = c.post(&call(1, "echo", json!({}))).await;
    assert_eq!(r.status, 404);
    c.session = None;
    c.initialize().await;
    // A session id belongs to its server only.
    let mut other = Mcp::new(&hub, "fx2");
    other.session = c.session.clone();
    assert_eq!(
        other
            .post(&call(2, "echo", json!({"text": "ok"})))
            .await
            .status,
        404
    );
    assert_eq!(
        c.post(&call(2, "echo", json!({"text": "ok"}))).await.status,
        200
    );
    // DELETE ends it; then 404.
    assert_eq!(c.delete().await, 200);
    assert_eq!(c.post(&call(3, "echo", json!({}))).await.status, 404);
    assert_eq!(c.delete().await, 404);
}

#[tokio::test]
async fn streamable_header_checks() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let http = reqwest::Client::new();
    let url = hub.url("/fx/mcp");
    let sid = c.session.clone().unwrap();
    let body = serde_json::to_vec(&call(1, "echo", json!({}))).unwrap();
    let send = |ctype: &'static str, accept: &'static str, version: Option<&'static str>| {
        let mut r = http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", ctype)
            .header("accept", accept)
            .header("mcp-session-id", sid.clone())
            .body(body.clone());
        if let Some(v) = version {
            r = r.header("mcp-protocol-version", v);
        }
        r.send()
    };
    assert_eq!(
        send("text/plain", "application/json, text/event-stream", None)
            .await
            .unwrap()
            .status(),
        415
    );
    assert_eq!(
        send("application/json", "text/html", None)
            .await
            .unwrap()
            .status(),
        406
    );
    let bad = send(
        "application/json",
        "application/json, text/event-stream",
        Some("1999-01-01"),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("unsupported MCP-Protocol-Version"));
    for v in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        assert_eq!(
            send(
                "application/json",
                "application/json, text/event-stream",
                Some(v)
            )
            .await
            .unwrap()
            .status(),
            200
        );
    }
    // A client that accepts only SSE gets SSE even for a plain result.
    let r = read_reply(
        send("application/json", "text/event-stream", None)
            .await
            .unwrap(),
    )
    .await;
    assert!(r.sse);
    assert_eq!(r.last()["id"], 1);
    let get = http
        .get(&url)
        .bearer_auth(TOKEN)
        .header("accept", "application/json")
        .header("mcp-session-id", sid.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 406);
    let put = http.put(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "GET, POST, DELETE");
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let hub = Hub::start(
        json!({"options": {"maxBodySize": "64KiB"}}),
        json!({"fx": fx(json!({}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(hub.url("/fx/mcp"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", c.session.clone().unwrap())
            .body(body)
            .send()
    };
    let r = post(b"{\"jsonrpc\": \"2.0\", \"id\": 1, ".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700);
    let r = post(b"{\"id\": 1, \"method\": \"x\"}".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32600);
    let big = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{}\"}}}}}}", "x".repeat(100_000));
    let r = post(big.into_bytes()).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maxBodySize"));
    // The session survives all of that.
    assert_eq!(
        c.call_text(2, "echo", json!({"text": "still here"})).await,
        "still here"
    );
}

#[tokio::test]
async fn legacy_sse_roundtrip() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let mut sse = LegacySse::connect(&hub, "fx").await;
    assert!(
        sse.endpoint.starts_with("/fx/message?sessionId="),
        "relative endpoint without baseURL: {}",
        sse.endpoint
    );
    assert_eq!(
        sse.post(&req(json!(1), "initialize", init_params("2024-11-05")))
            .await,
        202
    );
    let init = sse.next_message(10).await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        sse.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await,
        202
    );
    assert_eq!(
        sse.post(&call(2, "add", json!({"a": 40, "b": 2}))).await,
        202
    );
    let r = sse.next_message(10).await;
    assert_eq!(r["id"], 2);
    assert_eq!(r["result"]["content"][0]["text"], "42");
    // Malformed JSON is refused without harming the session.
    let http = reqwest::Client::new();
    let bad = http
        .post(sse.endpoint_url())
        .bearer_auth(TOKEN)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(sse.post(&call(3, "echo", json!({"text": "ok"}))).await, 202);
    assert_eq!(sse.next_message(10).await["id"], 3);
    // Unknown session: 404.
    let r = http
        .post(hub.url("/fx/message?sessionId=nope"))
        .bearer_auth(TOKEN)
        .json(&call(1, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(hub.url("/fx/message"))
        .bearer_auth(TOKEN)
        .json(&call(1, "echo", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn legacy_sse_absolute_endpoint_and_keepalive() {
    let hub = Hub::start(
        json!({"baseURL": "http://127.0.0.1:1/prefix", "options": {"sseKeepAlive": "300ms"}}),
        json!({"fx": fx(json!({}))}),
    );
    let http = reqwest::Client::new();
    let mut resp = http
        .get(hub.url("/fx/sse"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen.contains(": keep-alive") && std::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(std::time::Duration::from_secs(2), resp.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(
        seen.contains("data: http://127.0.0.1:1/prefix/fx/message?sessionId="),
        "absolute endpoint from baseURL: {seen}"
    );
    assert!(
        seen.contains(": keep-alive\n\n"),
        "keep-alive comments: {seen}"
    );
}

#[tokio::test]
async fn routing_404_and_trailing_slash() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let http = reqwest::Client::new();
    let r = http
        .get(hub.url("/nope/sse"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("nope"));
    let r = http
        .get(hub.url("/fx/other"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Trailing slash: same route, no redirect.
    let mut c = Mcp::new(&hub, "fx");
    c.url = hub.url("/fx/mcp/");
    c.initialize().await;
    assert_eq!(
        c.call_text(1, "echo", json!({"text": "slash"})).await,
        "slash"
    );
    let r = http
        .get(hub.url("/fx/sse/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(hub.url("/healthz/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
