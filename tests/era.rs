//! MCP 2026-07-28 on `/<name>/mcp` through the real binary: what needs it
//! (OAuth discovery and the 401 a modern client meets, held calls against
//! `maxClients` and the per-token cap, memory and body budgets under load).
//! The transport's own rules (headers, `_meta`, versions, discover, listen)
//! are unit tests of `transport::modern`.

mod common;
use common::*;
use serde_json::{json, Value};

fn modern(method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

const V: (&str, &str) = ("mcp-protocol-version", "2026-07-28");

fn hub() -> Hub {
    Hub::start(json!({}), json!({"fx": fx(json!({}))}))
}

#[tokio::test]
async fn closed_routes_for_modern_clients() {
    let hub = hub();
    let http = reqwest::Client::new();
    // (GET and DELETE without a session, 405, are the transport's: its unit tests.)
    // OAuth discovery finds nothing, without a token, so clients keep their bearer header.
    for p in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/fx/mcp",
    ] {
        assert_eq!(
            http.get(hub.url(p)).send().await.unwrap().status(),
            404,
            "{p}"
        );
    }
    let r = http.post(hub.url("/fx/mcp")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer") && !challenge.contains("resource_metadata"));
}

/// One modern `tools/call` of the fixture's eliciting tool, with the
/// capability to be asked, on `server` with `token`.
async fn held_call(hub: &Hub, server: &str, token: &str, n: u64) -> (u16, Value) {
    let mut body = modern(
        "tools/call",
        json!({"name": "test_elicitation", "arguments": {"message": format!("q{n}")}}),
    );
    body["id"] = json!(n);
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {"form": {}}});
    let resp = reqwest::Client::new()
        .post(hub.url(&format!("/{server}/mcp")))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "test_elicitation")
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn held_calls_do_not_lock_other_clients_out() {
    let hub = Hub::start(
        json!({"options": {"authTokens": [TOKEN, "other-token"]}}),
        json!({"fx": fx(json!({})),
               "pc": fx(json!({"session": "per-client", "maxClients": 2}))}),
    );
    // Two held calls fill the per-client server's two upstreams...
    for n in 1..=2 {
        let (code, v) = held_call(&hub, "pc", TOKEN, n).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    }
    // ...and are idle capacity: another token's session still opens.
    let mut other = Mcp::new(&hub, "pc");
    other.token = "other-token".into();
    other.initialize().await;
    let text = other.call_text(5, "echo", json!({"text": "in"})).await;
    assert_eq!(text, "in");

    // One token holds at most 64 calls (two are held above); the next is
    // refused, saying so, and another token still holds its own.
    for n in 1..=62 {
        let (code, v) = held_call(&hub, "fx", TOKEN, 100 + n).await;
        assert_eq!(
            v["result"]["resultType"], "input_required",
            "call {n}: {code} {v}"
        );
    }
    let (_, v) = held_call(&hub, "fx", TOKEN, 200).await;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("64 calls of this token")),
        "{v}"
    );
    let (_, v) = held_call(&hub, "fx", "other-token", 201).await;
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
}

/// A `_meta` of 200,000 keys (about 3 MB), the rest of a `tools/call echo`.
fn huge_meta(modern: bool) -> Value {
    let mut meta = serde_json::Map::new();
    for i in 0..200_000 {
        meta.insert(format!("k{i}"), json!(i));
    }
    if modern {
        meta.insert(
            "io.modelcontextprotocol/protocolVersion".into(),
            json!("2026-07-28"),
        );
        meta.insert(
            "io.modelcontextprotocol/clientCapabilities".into(),
            json!({}),
        );
    }
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": "big"}, "_meta": meta}})
}

/// 16 requests at once whose `_meta` has 200,000 keys: the 2026-07-28 path
/// reads the envelope borrowed and strips it in one pass, so it costs no
/// more memory than the same bytes on the 2025 path (it cost 5.5× that,
/// 706 MiB, when `_meta` was parsed into trees several times), and /healthz
/// answers meanwhile.
#[tokio::test]
async fn a_huge_meta_costs_the_modern_path_no_more_than_the_legacy_one() {
    let peak_growth = |modern: bool| async move {
        // A budget that admits all 16 at once: this compares the paths, and a
        // busy machine must not turn a slow answer into a refusal.
        let hub = Hub::start(
            json!({"options": {"maxBodiesInFlight": "1GiB"}}),
            json!({"fx": fx(json!({}))}),
        );
        let mut c = Mcp::new(&hub, "fx");
        c.initialize().await;
        c.call_text(1, "echo", json!({"text": "warm"})).await;
        let base = hub.peak_kib();
        let body = serde_json::to_vec(&huge_meta(modern)).unwrap();
        let health = hub.healthz_worst();
        let calls = (0..16).map(|i| {
            let mut r = reqwest::Client::new()
                .post(hub.url("/fx/mcp"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            r = if modern {
                r.header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "echo")
            } else {
                r.header("mcp-session-id", c.session.clone().unwrap())
            };
            // One session, so each call its own id.
            let text = String::from_utf8(body.clone()).unwrap();
            let body = text.replacen("\"id\":1,", &format!("\"id\":{},", i + 10), 1);
            async move {
                let resp = r.body(body).send().await.unwrap();
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["result"]["content"][0]["text"], "big", "{v}");
            }
        });
        let ((), worst) = tokio::join!(
            async {
                futures_util::future::join_all(calls).await;
            },
            health
        );
        (hub.peak_kib().saturating_sub(base), worst)
    };
    let (legacy, _) = peak_growth(false).await;
    let (modern, worst) = peak_growth(true).await;
    eprintln!("peak growth: 2025 path {legacy} KiB, 2026-07-28 path {modern} KiB; /healthz worst {worst:?}");
    assert!(
        modern <= legacy + legacy / 2 + (16 << 10),
        "2026-07-28 grew {modern} KiB against {legacy} KiB on the 2025 path"
    );
    assert!(
        worst < std::time::Duration::from_millis(500),
        "/healthz took {worst:?}"
    );
}

/// The same 16 requests at once, on each path, against the hub's own bound:
/// request bodies are charged together to `maxBodiesInFlight`, so the hub
/// stays under 64 MiB (a debug hub peaked at 127 MiB on the 2025 path when
/// each body was bounded only by itself), `/healthz` answers within 200 ms
/// throughout (it took 1.2 s),
/// another client's small call is served meanwhile, and every large request
/// is answered or refused naming the limit (none lost).
#[tokio::test]
async fn bodies_in_flight_are_bounded_together() {
    for modern in [false, true] {
        let hub = hub();
        let mut c = Mcp::new(&hub, "fx");
        c.initialize().await;
        c.call_text(1, "echo", json!({"text": "warm"})).await;
        let mut other = Mcp::new(&hub, "fx");
        other.initialize().await;
        let text = serde_json::to_string(&huge_meta(modern)).unwrap();
        // Bodies made before the clock starts: the test's own work is not the hub's.
        let bodies: Vec<String> = (0..16)
            .map(|i| text.replacen("\"id\":1,", &format!("\"id\":{},", i + 10), 1))
            .collect();
        let calls = bodies.into_iter().map(|body| {
            let mut r = reqwest::Client::new()
                .post(hub.url("/fx/mcp"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            r = if modern {
                r.header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", "echo")
            } else {
                r.header("mcp-session-id", c.session.clone().unwrap())
            };
            async move {
                let resp = r.body(body).send().await.unwrap();
                let code = resp.status().as_u16();
                let retry = resp.headers().get("retry-after").cloned();
                let v: Value = resp.json().await.unwrap();
                if code == 200 {
                    assert_eq!(v["result"]["content"][0]["text"], "big", "{v}");
                    return true;
                }
                assert_eq!(code, 503, "{v}");
                assert!(retry.is_some(), "a refusal says when to retry");
                let why = v["error"]["message"].as_str().unwrap_or_default();
                assert!(why.contains("mcpProxy.options.maxBodiesInFlight"), "{v}");
                false
            }
        });
        let small = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let t = std::time::Instant::now();
            let got = other.call_text(2, "echo", json!({"text": "small"})).await;
            (got, t.elapsed())
        };
        let ((answered, (got, small_took)), worst) = hub
            .healthz_during(async { tokio::join!(futures_util::future::join_all(calls), small) })
            .await;
        let peak = hub.peak_kib();
        let served = answered.iter().filter(|a| **a).count();
        eprintln!(
            "{} path: peak RSS {peak} KiB, /healthz worst {worst:?}, {served}/16 answered, \
             the small call took {small_took:?}",
            if modern { "2026-07-28" } else { "2025" }
        );
        assert_eq!(got, "small");
        assert!(peak < 64 << 10, "the hub peaked at {peak} KiB");
        assert!(
            worst < std::time::Duration::from_millis(200),
            "/healthz took {worst:?}"
        );
    }
}

/// A body that finds `maxBodiesInFlight` taken waits, unread, until its
/// `bodyReadTimeout`, then is refused with 503 and `Retry-After`, naming the
/// limit; a small body still fits in the eighth kept for small ones. The
/// budget is held by a large call to a server that takes 3 s to start: its
/// body counts until its message is handed on.
#[tokio::test]
async fn a_body_over_the_budget_is_refused_naming_the_limit() {
    // Unsandboxed: under the sandbox this shell could not run the fixture (127).
    let late = json!({"command": "sh", "sandbox": false,
                      "args": ["-c", format!("sleep 3; exec {}", fixture())]});
    let hub = Hub::start(
        json!({"options": {"maxBodiesInFlight": "1MiB", "bodyReadTimeout": "1s"}}),
        json!({"fx": fx(json!({})), "late": late}),
    );
    let echo = |text: String| {
        modern(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": text}}),
        )
    };
    let headers = [V, ("mcp-method", "tools/call"), ("mcp-name", "echo")];
    let to = |server: &str, body: &Value| {
        let mut r = reqwest::Client::new()
            .post(hub.url(&format!("/{server}/mcp")))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let body = body.to_string();
        async move {
            let resp = r.body(body).send().await.unwrap();
            let code = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").cloned();
            (code, resp.text().await.unwrap(), retry)
        }
    };
    // 300 KB (600 KB charged) held until `late` is up to take it.
    let held = tokio::spawn(to("late", &echo("h".repeat(300_000))));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // 200 KB more (400 KB charged) do not fit beside it.
    let t = std::time::Instant::now();
    let (code, text, retry) = to("fx", &echo("x".repeat(200_000))).await;
    assert_eq!(code, 503, "{text}");
    assert!(t.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(retry.unwrap(), "1");
    let v: Value = serde_json::from_str(&text).unwrap();
    let why = v["error"]["message"].as_str().unwrap();
    assert!(
        why.contains("mcpProxy.options.maxBodiesInFlight (1.0 MiB)"),
        "{why}"
    );
    // A small one still gets in at once.
    let t = std::time::Instant::now();
    let (code, text, _) = to("fx", &echo("small".into())).await;
    assert_eq!(code, 200, "{text}");
    assert!(t.elapsed() < std::time::Duration::from_millis(500));
    // And the held one is answered once its server is up (on a stream:
    // the start took a while).
    let (code, text, _) = held.await.unwrap();
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains(&"h".repeat(300_000)),
        "{}",
        text.get(..300).unwrap_or(&text)
    );
}
