//! Shared and per-client sessions on real children: id rewriting under
//! concurrency, server→client requests, tool filtering, a child per client,
//! and the roots a shared upstream is offered. (Fan-out to GET streams,
//! logging on a POST and expiry are transport rules: `transport::tests`.)

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn twenty_clients_interleaved_never_cross_talk() {
    // 500 concurrent connections, all from 127.0.0.1: past the default per-IP limit.
    let hub = Hub::start(
        json!({"options": {"maxConnectionsPerIp": 1024}}),
        json!({"fx": fx(json!({}))}),
    );
    let mut tasks = vec![];
    for client in 0..20u64 {
        let base = hub.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Mcp {
                http: reqwest::Client::new(),
                url: format!("{base}/fx/mcp"),
                session: None,
                token: TOKEN.into(),
            };
            c.initialize().await;
            let c = std::sync::Arc::new(c);
            let mut calls = vec![];
            // Every client uses ids 1..=25, concurrently: the hub must keep them apart.
            for i in 1..=25u64 {
                let c = c.clone();
                calls.push(tokio::spawn(async move {
                    let want = format!("client-{client}-call-{i}");
                    let got = c.call_text(i, "echo", json!({"text": want})).await;
                    assert_eq!(got, want);
                }));
            }
            for t in calls {
                t.await.unwrap();
            }
        }));
    }
    // Legacy SSE clients share the same child at the same time.
    let mut sse = LegacySse::connect(&hub, "fx").await;
    sse.post(&req(json!(1), "initialize", init_params("2024-11-05")))
        .await;
    sse.next_message(10).await;
    for i in 2..12u64 {
        sse.post(&call(i, "echo", json!({"text": format!("sse-{i}")})))
            .await;
    }
    let mut seen = vec![];
    for _ in 2..12 {
        let m = sse.next_message(10).await;
        let id = m["id"].as_u64().unwrap();
        assert_eq!(m["result"]["content"][0]["text"], format!("sse-{id}"));
        seen.push(id);
    }
    seen.sort();
    assert_eq!(seen, (2..12).collect::<Vec<_>>());
    for t in tasks {
        t.await.unwrap();
    }
    let st = hub.server_status("fx").await;
    assert_eq!(st["restarts"], 0);
    assert_eq!(st["state"], "ready");
}

#[tokio::test]
async fn sampling_goes_to_the_asking_client_and_back() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({})), "pc": fx(json!({"session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let mut c = Mcp::new(&hub, server);
        c.initialize().await;
        // A bystander session on the same server must not see the request.
        let mut other = Mcp::new(&hub, server);
        other.initialize().await;
        let mut answer = c
            .post_streaming(&call(5, "test_sampling", json!({"prompt": "2+2?"})))
            .await;
        let ask = answer.next().await;
        assert_eq!(ask["method"], "sampling/createMessage", "{server}: {ask}");
        assert_eq!(ask["params"]["messages"][0]["content"]["text"], "2+2?");
        let reply = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"role": "assistant", "model": "test",
            "content": {"type": "text", "text": "four"}}});
        assert_eq!(c.post(&reply).await.status, 202);
        let done = answer.next().await;
        assert_eq!(done["id"], 5);
        assert_eq!(
            done["result"]["content"][0]["text"], "LLM response: four",
            "{server}"
        );
        assert_eq!(
            other.call_text(1, "echo", json!({"text": "fine"})).await,
            "fine"
        );
    }
}

#[tokio::test]
async fn tool_filter_hides_and_refuses() {
    let hub = Hub::start(
        json!({}),
        json!({"blocked": fx(json!({"options": {"toolFilter": {"mode": "block", "list": ["echo"]}}})),
               "allowed": fx(json!({"session": "per-client", "options": {"toolFilter": {"mode": "allow", "list": ["add"]}}}))}),
    );
    let mut b = Mcp::new(&hub, "blocked");
    b.initialize().await;
    let tools = b.post(&req(json!(1), "tools/list", json!({}))).await;
    let names: Vec<String> = tools.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(!names.contains(&"echo".to_string()) && names.contains(&"add".to_string()));
    let r = b.post(&call(2, "echo", json!({"text": "x"}))).await;
    assert_eq!(r.last()["error"]["message"], "Unknown tool: echo");
    assert_eq!(r.last()["id"], 2);
    let mut a = Mcp::new(&hub, "allowed");
    a.initialize().await;
    let tools = a.post(&req(json!(1), "tools/list", json!({}))).await;
    assert_eq!(tools.last()["result"]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        a.post(&call(2, "echo", json!({}))).await.last()["error"]["message"],
        "Unknown tool: echo"
    );
    assert_eq!(a.call_text(3, "add", json!({"a": 1, "b": 1})).await, "2");
}

#[tokio::test]
async fn per_client_gets_its_own_child() {
    let hub = Hub::start(
        json!({}),
        json!({"pc": fx(json!({"sandbox": false, "session": "per-client"}))}),
    );
    let mut a = Mcp::new(&hub, "pc");
    a.initialize().await;
    let mut b = Mcp::new(&hub, "pc");
    b.initialize().await;
    let pa: i32 = a.call_text(1, "pid", json!({})).await.parse().unwrap();
    let pb: i32 = b.call_text(1, "pid", json!({})).await.parse().unwrap();
    assert_ne!(pa, pb);
    assert_eq!(hub.server_status("pc").await["children"], 2);
    assert_eq!(a.delete().await, 200);
    for _ in 0..100 {
        if !pid_alive(pa) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pid_alive(pa), "DELETE stops the session's child");
    assert!(pid_alive(pb));
    assert_eq!(hub.server_status("pc").await["children"], 1);
}

#[tokio::test]
async fn a_shared_upstream_is_not_offered_roots() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({})), "pc": fx(json!({"session": "per-client"}))}),
    );
    // The client offers roots (as Claude Code does): its local paths.
    let init = req(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-11-25",
        "capabilities": {"roots": {"listChanged": true}, "sampling": {}}, "clientInfo": {"name": "laptop", "version": "1"}}),
    );
    for (server, roots_expected) in [("fx", false), ("pc", true)] {
        let mut c = Mcp::new(&hub, server);
        let r = c.post(&init).await;
        c.session = r
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        let seen: Value =
            serde_json::from_str(&c.call_text(1, "client_info", json!({})).await).unwrap();
        assert_eq!(
            seen["capabilities"].get("roots").is_some(),
            roots_expected,
            "{server}: {seen}"
        );
        if server == "fx" {
            assert_eq!(seen["clientInfo"]["name"], "mcp-hub");
            assert!(
                seen["capabilities"].get("sampling").is_some()
                    && seen["capabilities"].get("elicitation").is_some()
            );
        } else {
            assert_eq!(
                seen["clientInfo"]["name"], "laptop",
                "per-client forwards the client's own initialize"
            );
        }
    }
}
