//! `GET /metrics` against the real binary: counters equal the calls made,
//! histogram counts equal the calls, a crash shows as one restart and `up`
//! going 1 → 0 → 1, the endpoint's tokens, `metricsListen` without a token,
//! and routes counted by template only.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// One scrape, with `token` (or none).
async fn scrape_at(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn scrape(hub: &Hub) -> String {
    let (status, body) = scrape_at(&hub.url("/metrics"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{labels}` (labels exactly as written), if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

fn op_labels(method: &str, tool: &str, error: &str) -> String {
    format!(
        "{{mcp_method_name=\"{method}\",gen_ai_tool_name=\"{tool}\",error_type=\"{error}\",server=\"fx\",transport=\"streamable\",protocol_era=\"legacy\"}}"
    )
}

fn client_labels(method: &str, tool: &str, error: &str) -> String {
    format!(
        "{{mcp_method_name=\"{method}\",gen_ai_tool_name=\"{tool}\",error_type=\"{error}\",server=\"fx\",transport=\"stdio\",protocol_era=\"legacy\",network_transport=\"pipe\"}}"
    )
}

#[tokio::test]
async fn counters_and_histogram_counts_equal_the_calls_made() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let listed = c.post(&req(json!(1), "tools/list", json!({}))).await;
    assert!(listed.last()["result"]["tools"].is_array());
    const ECHOES: u64 = 7;
    for i in 0..ECHOES {
        assert_eq!(
            c.call_text(10 + i, "echo", json!({"text": "hi"})).await,
            "hi"
        );
    }
    // isError, a tool the server never listed, and a method outside MCP.
    let e = c.post(&call(30, "test_error_handling", json!({}))).await;
    assert_eq!(e.last()["result"]["isError"], true);
    let u = c
        .post(&call(31, "no_such_tool_from_a_client", json!({})))
        .await;
    assert!(u.last()["error"].is_object(), "{}", u.last());
    let o = c
        .post(&req(json!(32), "vendor/secret_method", json!({})))
        .await;
    assert!(o.last()["error"].is_object());

    let text = scrape(&hub).await;
    let server = "mcp_server_operation_duration_seconds_count";
    assert_eq!(
        sample(
            &text,
            &format!("{server}{}", op_labels("tools/call", "echo", ""))
        ),
        Some(ECHOES as f64),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "{server}{}",
                op_labels("tools/call", "test_error_handling", "tool_error")
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{server}{}", op_labels("tools/call", "_other", "-32602"))
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{server}{}", op_labels("other", "", "-32601"))
        ),
        Some(1.0),
        "{text}"
    );
    for m in ["initialize", "tools/list"] {
        assert_eq!(
            sample(&text, &format!("{server}{}", op_labels(m, "", ""))),
            Some(1.0),
            "{m}: {text}"
        );
    }
    // The +Inf bucket holds every call, and the sum is some time.
    let echo = op_labels("tools/call", "echo", "");
    let inf = echo.replace('}', ",le=\"+Inf\"}");
    assert_eq!(
        sample(
            &text,
            &format!("mcp_server_operation_duration_seconds_bucket{inf}")
        ),
        Some(ECHOES as f64)
    );
    assert!(
        sample(
            &text,
            &format!("mcp_server_operation_duration_seconds_sum{echo}")
        )
        .unwrap()
            > 0.0
    );
    // As client: every echo went up the pipe (initialize did not: the hub
    // answered it from its cache).
    assert_eq!(
        sample(
            &text,
            &format!(
                "mcp_client_operation_duration_seconds_count{}",
                client_labels("tools/call", "echo", "")
            )
        ),
        Some(ECHOES as f64),
        "{text}"
    );
    // initialize, tools/list, 7 echoes, 3 more calls: 12 POSTs answered 200;
    // notifications/initialized: 202.
    assert_eq!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"/{server}/mcp\",code=\"200\"}"
        ),
        Some(12.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"/{server}/mcp\",code=\"202\"}"
        ),
        Some(1.0)
    );
    for secret in [
        "no_such_tool_from_a_client",
        "vendor/secret_method",
        c.session.as_deref().unwrap(),
        TOKEN,
    ] {
        assert!(!text.contains(secret), "{secret:?} is in the scrape");
    }
    assert_eq!(
        sample(
            &text,
            "mcphub_sessions_active{server=\"fx\",transport=\"streamable\"}"
        ),
        Some(1.0)
    );

    // The session ends: no longer active, one session duration observed.
    assert_eq!(c.delete().await, 200);
    let text = scrape(&hub).await;
    assert_eq!(
        sample(
            &text,
            "mcphub_sessions_active{server=\"fx\",transport=\"streamable\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "mcp_server_session_duration_seconds_count{server=\"fx\",transport=\"streamable\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // The hub's own process metrics.
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&text, name).is_some_and(|v| v > 0.0),
            "{name}: {text}"
        );
    }
    // The child's resources: some memory, while it runs.
    assert!(
        sample(&text, "mcphub_child_memory_bytes{server=\"fx\"}").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(sample(&text, "mcphub_child_cpu_seconds_total{server=\"fx\"}").is_some());
}

#[tokio::test]
async fn legacy_sse_calls_are_counted_under_their_transport() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let mut s = LegacySse::connect(&hub, "fx").await;
    assert_eq!(
        s.post(&req(json!(1), "initialize", init_params("2024-11-05")))
            .await,
        202
    );
    s.next_message(10).await;
    for i in 0..3 {
        assert_eq!(
            s.post(&call(2 + i, "echo", json!({"text": "x"}))).await,
            202
        );
        s.next_message(10).await;
    }
    let text = scrape(&hub).await;
    let labels = "{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"_other\",error_type=\"\",server=\"fx\",transport=\"sse\",protocol_era=\"legacy\"}";
    // No tools/list yet on this hub: "echo" is a name the server never listed to it.
    assert_eq!(
        sample(
            &text,
            &format!("mcp_server_operation_duration_seconds_count{labels}")
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mcphub_sessions_active{server=\"fx\",transport=\"sse\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"/{server}/message\",code=\"202\"}"
        ),
        Some(4.0),
        "{text}"
    );
}

/// Polls until `mcphub_upstream_up{server="fx"}` is `want`; how long it took.
async fn wait_up(hub: &Hub, want: f64, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let text = scrape(hub).await;
        if sample(&text, "mcphub_upstream_up{server=\"fx\"}") == Some(want) {
            return text;
        }
        assert!(t.elapsed() < within, "up never became {want}:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_crash_is_one_restart_and_up_goes_1_0_1() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let text = wait_up(&hub, 1.0, Duration::from_secs(10)).await;
    assert_eq!(
        sample(
            &text,
            "mcphub_upstream_state{server=\"fx\",state=\"ready\"}"
        ),
        Some(1.0)
    );
    let crash = c.post(&call(1, "crash", json!({}))).await;
    assert_eq!(crash.last()["error"]["code"], -32000);
    // Between the crash and the restart (a backoff of 1 s), up is 0.
    let text = wait_up(&hub, 0.0, Duration::from_secs(1)).await;
    assert_eq!(
        sample(
            &text,
            "mcphub_upstream_state{server=\"fx\",state=\"ready\"}"
        ),
        Some(0.0)
    );
    let text = wait_up(&hub, 1.0, Duration::from_secs(10)).await;
    let restarts = |reason: &str| {
        sample(
            &text,
            &format!("mcphub_upstream_restarts_total{{server=\"fx\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(restarts("exit"), Some(1.0), "{text}");
    for other in ["signal", "oom", "ping", "connect"] {
        assert_eq!(restarts(other), Some(0.0), "{other}: {text}");
    }
    // The failed call counts as a server error and a client error.
    let lost = "{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"_other\",error_type=\"-32000\",server=\"fx\",transport=\"streamable\",protocol_era=\"legacy\"}";
    assert_eq!(
        sample(
            &text,
            &format!("mcp_server_operation_duration_seconds_count{lost}")
        ),
        Some(1.0),
        "{text}"
    );
    // Same session, a new child.
    assert_eq!(
        c.call_text(2, "echo", json!({"text": "back"})).await,
        "back"
    );
}

#[tokio::test]
async fn metrics_needs_a_token_and_metrics_tokens_narrow_it() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let url = hub.url("/metrics");
    let resp = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(scrape_at(&url, Some("wrong")).await.0, 401);
    let (status, text) = scrape_at(&url, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&text, "mcphub_auth_failures_total{reason=\"missing\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mcphub_auth_failures_total{reason=\"invalid\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"/metrics\",code=\"401\"}"
        ),
        Some(2.0)
    );

    // metricsTokens: only they may scrape; the MCP token may not.
    let port = free_port();
    let hub = Hub::start(
        json!({"options": {"metricsTokens": ["scraper"], "metricsListen": format!("127.0.0.1:{port}")}}),
        json!({"fx": fx(json!({}))}),
    );
    let url = hub.url("/metrics");
    assert_eq!(scrape_at(&url, Some(TOKEN)).await.0, 401);
    let (status, text) = scrape_at(&url, Some("scraper")).await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE mcp_server_operation_duration_seconds histogram"));
    // metricsListen: the same metrics, no token, and nothing else.
    let plain = format!("http://127.0.0.1:{port}");
    let (status, text) = scrape_at(&format!("{plain}/metrics"), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("mcphub_upstream_up{server=\"fx\"}"), "{text}");
    for path in ["/status", "/fx/mcp", "/"] {
        assert_eq!(
            scrape_at(&format!("{plain}{path}"), None).await.0,
            404,
            "{path}"
        );
    }
    let resp = reqwest::Client::new()
        .get(format!("{plain}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[tokio::test]
async fn routes_are_counted_by_template_never_by_path() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let http = reqwest::Client::new();
    // The harness polled /healthz until the hub was up.
    let healthz = "mcphub_http_requests_total{route=\"/healthz\",code=\"200\"}";
    let before = sample(&scrape(&hub).await, healthz).unwrap();
    for path in [
        "/fx/secret-subpath-1234",
        "/no-such-server-5678/mcp",
        "/fx/mcp/extra-9012",
        "/unlisted-top-3456",
    ] {
        let s = http
            .get(hub.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status();
        assert!(s.is_client_error(), "{path}: {s}");
    }
    let s = http.get(hub.url("/healthz")).send().await.unwrap().status();
    assert_eq!(s, 200);
    let text = scrape(&hub).await;
    for raw in [
        "secret-subpath-1234",
        "no-such-server-5678",
        "extra-9012",
        "unlisted-top-3456",
    ] {
        assert!(!text.contains(raw), "{raw} is in the scrape:\n{text}");
    }
    assert_eq!(sample(&text, healthz), Some(before + 1.0));
    assert_eq!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"/{server}/mcp\",code=\"404\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"other\",code=\"404\"}"
        ),
        Some(3.0),
        "{text}"
    );
}

#[test]
fn a_bad_metrics_listen_is_a_config_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        json!({"mcpProxy": {"options": {"metricsListen": "localhost"}}, "mcpServers": {}})
            .to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(hub_bin())
        .args(["--config", path.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mcpProxy.options.metricsListen"), "{err}");
}

#[tokio::test]
async fn a_2026_call_is_counted_as_modern_and_opens_no_session() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "hi"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    for _ in 0..2 {
        let resp = reqwest::Client::new()
            .post(hub.url("/fx/mcp"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "echo")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let text = scrape(&hub).await;
    let modern = "{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"_other\",error_type=\"\",server=\"fx\",transport=\"streamable\",protocol_era=\"modern\"}";
    assert_eq!(
        sample(
            &text,
            &format!("mcp_server_operation_duration_seconds_count{modern}")
        ),
        Some(2.0),
        "{text}"
    );
    // Only the two calls: no hub-made request is counted.
    let calls: f64 = text
        .lines()
        .filter(|l| l.starts_with("mcp_server_operation_duration_seconds_count{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(calls, 2.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "mcphub_sessions_active{server=\"fx\",transport=\"streamable\"}"
        ),
        Some(0.0)
    );
}

/// The OpenAPI facade counts as transport `openapi`, on the server it calls,
/// and its routes and a group's count by template.
#[tokio::test]
async fn openapi_and_group_calls_are_counted_by_transport_and_template() {
    let hub = Hub::start(
        json!({"options": {"groups": {"all": {"servers": ["fx"]}}}}),
        json!({"fx": fx(json!({}))}),
    );
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let r = http
            .post(hub.url("/fx/tools/echo"))
            .bearer_auth(TOKEN)
            .json(&json!({"text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = http
        .post(hub.url("/g/all/tools/fx__echo"))
        .bearer_auth(TOKEN)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let r = c
        .post(&call(5, "fx__echo", json!({"text": "via group"})))
        .await;
    assert_eq!(r.last()["result"]["content"][0]["text"], "via group");

    let text = scrape(&hub).await;
    let openapi = "{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\",error_type=\"\",server=\"fx\",transport=\"openapi\",protocol_era=\"legacy\"}";
    assert_eq!(
        sample(
            &text,
            &format!("mcp_server_operation_duration_seconds_count{openapi}")
        ),
        Some(3.0),
        "{text}"
    );
    // The group's MCP client reaches fx as a streamable client of it.
    assert_eq!(
        sample(
            &text,
            &format!(
                "mcp_server_operation_duration_seconds_count{}",
                op_labels("tools/call", "echo", "")
            )
        ),
        Some(1.0),
        "{text}"
    );
    for (route, n) in [
        ("/{server}/tools/{tool}", 2.0),
        ("/g/{group}/tools/{tool}", 1.0),
    ] {
        assert_eq!(
            sample(
                &text,
                &format!("mcphub_http_requests_total{{route=\"{route}\",code=\"200\"}}")
            ),
            Some(n),
            "{route}: {text}"
        );
    }
    assert!(
        sample(
            &text,
            "mcphub_http_requests_total{route=\"/g/{group}/mcp\",code=\"200\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        !text.contains("fx__echo") && !text.contains("/g/all"),
        "{text}"
    );
}
