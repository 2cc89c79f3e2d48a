//! Bearer tokens, Origin/Host checks against DNS rebinding, and CORS.

mod common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn tokens_global_and_per_server() {
    let hub = Hub::start(
        json!({"options": {"authTokens": ["global-1", "global-2"]}}),
        json!({"open": fx(json!({})), "own": fx(json!({"options": {"authTokens": ["own-token"]}})),
               "public": fx(json!({"options": {"authTokens": []}}))}),
    );
    let http = reqwest::Client::new();
    let init = req(json!(1), "initialize", init_params("2025-11-25"));
    let post = |path: &str, token: Option<&str>| {
        let mut r = http
            .post(hub.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = post("/open/mcp", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let r = post("/open/mcp", Some("wrong")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    assert_eq!(
        post("/open/mcp", Some("global-2")).await.unwrap().status(),
        200
    );
    // A server's own list replaces the global one.
    assert_eq!(
        post("/own/mcp", Some("global-1")).await.unwrap().status(),
        401
    );
    assert_eq!(
        post("/own/mcp", Some("own-token")).await.unwrap().status(),
        200
    );
    // An explicitly empty list means no auth for that server.
    assert_eq!(post("/public/mcp", None).await.unwrap().status(), 200);
    // The status of a GET, with or without a token.
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(hub.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    // Never from the query string.
    assert_eq!(
        get(
            "/open/sse?token=global-1&access_token=global-1&authToken=global-1",
            None
        )
        .await,
        401
    );
    // Legacy SSE too.
    assert_eq!(get("/open/sse", None).await, 401);
    // Unknown server names are not confirmed without the global token.
    assert_eq!(get("/secret/sse", None).await, 401);
    assert_eq!(get("/secret/sse", Some("global-1")).await, 404);
    // /healthz is open, /status is not.
    assert_eq!(get("/healthz", None).await, 200);
    assert_eq!(get("/status", None).await, 401);
    assert_eq!(get("/status", Some("own-token")).await, 200);
    // Tokens never reach the log.
    assert!(!hub.log_contains("global-1") && !hub.log_contains("own-token"));
}

#[tokio::test]
async fn origin_and_host_checks() {
    let hub = Hub::start(
        json!({"baseURL": "http://hub.lan:9090", "options": {"allowedOrigins": ["http://tools.lan:8080"]}}),
        json!({"fx": fx(json!({}))}),
    );
    let http = reqwest::Client::new();
    let get = |origin: Option<&str>, host: Option<&str>| {
        let mut r = http.get(hub.url("/fx/sse")).bearer_auth(TOKEN);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.send()
    };
    let r = get(Some("http://evil.example"), None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("allowedOrigins"));
    assert_eq!(
        get(Some("http://localhost:5173"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(Some("http://hub.lan:9090"), Some("hub.lan:9090"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(Some("http://tools.lan:8080"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get(None, Some("hub.lan:9090")).await.unwrap().status(), 200);
    // DNS rebinding: the attacker's name in Host.
    let r = get(None, Some("attacker.example:9090")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("allowedHosts"));
    // The streamable endpoint refuses a foreign Origin before anything else.
    let r = http
        .post(hub.url("/fx/mcp"))
        .bearer_auth(TOKEN)
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&req(json!(1), "initialize", init_params("2025-11-25")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // No CORS headers unless configured.
    let r = get(Some("http://localhost:5173"), None).await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_only_when_configured() {
    let hub = Hub::start(
        json!({"options": {"cors": {"origins": ["http://webui.lan:3000"]}}}),
        json!({"fx": fx(json!({}))}),
    );
    let http = reqwest::Client::new();
    let r = http
        .request(reqwest::Method::OPTIONS, hub.url("/fx/mcp"))
        .header("origin", "http://webui.lan:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "preflight needs no token");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://webui.lan:3000"
    );
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("mcp-session-id"));
    let r = http
        .request(reqwest::Method::OPTIONS, hub.url("/fx/mcp"))
        .header("origin", "http://other.lan:3000")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = http
        .post(hub.url("/fx/mcp"))
        .bearer_auth(TOKEN)
        .header("origin", "http://webui.lan:3000")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&req(json!(1), "initialize", init_params("2025-11-25")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://webui.lan:3000"
    );
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("mcp-session-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["serverInfo"]["name"], "mcp-fixture");
}

/// Sends raw bytes on a fresh connection and returns the status line's code
/// (0 when the connection closed without an answer).
async fn raw_status(hub: &Hub, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn malformed_host_is_refused_and_the_hub_lives() {
    // Host checks are on once baseURL is set, as in config/lan.json.
    let mut hub = Hub::start(
        json!({"baseURL": "http://hub.lan:9090"}),
        json!({"fx": fx(json!({}))}),
    );
    for host in ["[", "[::1", "[:", "]", "[]:80"] {
        let code = raw_status(
            &hub,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            code == 400 || code == 403,
            "Host {host:?} answered {code}, want a refusal"
        );
        assert!(
            hub.child.try_wait().unwrap().is_none(),
            "the hub died on Host {host:?}"
        );
    }
    assert!(!hub.log_contains("panicked"));
    let r = reqwest::get(hub.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rebinding_names_that_look_like_loopback_are_refused() {
    let hub = Hub::start(
        json!({"baseURL": "http://hub.lan:9090"}),
        json!({"fx": fx(json!({}))}),
    );
    let http = reqwest::Client::new();
    let r = http
        .get(hub.url("/fx/sse"))
        .bearer_auth(TOKEN)
        .header("host", "127.0.0.1.evil.example:9090")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "Host");
    let r = http
        .get(hub.url("/fx/sse"))
        .bearer_auth(TOKEN)
        .header("host", "hub.lan:9090")
        .header("origin", "http://127.0.0.1.evil.example:9090")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "Origin");
    // Real loopback still passes both checks.
    let r = http
        .get(hub.url("/healthz"))
        .header("host", "127.0.0.1:9090")
        .header("origin", "http://127.0.0.1:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
