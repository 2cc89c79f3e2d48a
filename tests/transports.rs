//! The three transports end to end through the real binary (a smoke run of
//! each: streamable HTTP, legacy SSE, a stateless 2026-07-28 call), and the
//! router's own answers (unknown routes, methods, trailing slashes). Each
//! transport's rules are unit tests in `transport::tests`, in-process.

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
}

/// A 2026-07-28 call on a shared server: a stateless exchange on the
/// child's upstream, no session.
#[tokio::test]
async fn stateless_2026_call_on_a_shared_server() {
    let (p, s) = one();
    let hub = Hub::start(p, s);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = req(
        json!(7),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}, "_meta": meta}),
    );
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
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("mcp-session-id").is_none(),
        "no session for a modern request"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 7, "{v}");
    assert_eq!(v["result"]["content"][0]["text"], "hi", "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
    assert_eq!(hub.server_status("fx").await["restarts"], 0);
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
    // A method no transport takes (moved here from the streamable header checks).
    let put = http
        .put(hub.url("/fx/mcp"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "GET, POST, DELETE");
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
