//! Exact routing for many clients, black box against the real binary: a
//! server→client request goes to the one client it can belong to or is refused,
//! `resources/updated` reaches only subscribers, a failed server comes back on
//! its own, per-client children are capped and stop when idle, every request
//! ends within its timeout, slow clients cannot grow the hub's memory, and
//! values cross the hub byte for byte.

mod common;
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WATCHED: &str = "test://watched-resource";
const MIB: usize = 1024 * 1024;

fn call_with_progress(id: u64, tool: &str, args: Value) -> Value {
    req(
        json!(id),
        "tools/call",
        json!({"name": tool, "arguments": args, "_meta": {"progressToken": format!("p{id}")}}),
    )
}

/// Reads `events` until the message answering `id`; returns it and every
/// message seen before it.
async fn until_answer(events: &mut RawEvents, id: u64, secs: u64) -> (Value, Vec<Value>) {
    let mut before = vec![];
    loop {
        let m = events.next_message(secs).await;
        if m["id"] == json!(id) && m.get("method").is_none() {
            return (m, before);
        }
        before.push(m);
    }
}

fn error_message(m: &Value) -> &str {
    m["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("a JSON-RPC error, got {m}"))
}

async fn session(hub: &Hub, server: &str) -> Mcp {
    let mut c = Mcp::new(hub, server);
    c.initialize().await;
    c
}

#[tokio::test]
async fn sampling_with_two_clients_in_flight_is_refused_not_guessed() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({"sandbox": false}))}));
    let a = session(&hub, "fx").await;
    let b = session(&hub, "fx").await;
    // A has a request in flight (its first progress proves it), so when B's tool
    // asks for sampling, two sessions could be the one the server means.
    let mut a_events = a
        .post_events(&call_with_progress(1, "slow", json!({"ms": 3000})))
        .await;
    let first = a_events.next_message(10).await;
    assert_eq!(first["method"], "notifications/progress", "{first}");
    let mut b_events = b
        .post_events(&call(2, "test_sampling", json!({"prompt": "b's secret"})))
        .await;
    let answer = b_events.next_message(10).await;
    assert!(
        answer.get("method").is_none(),
        "no server→client request may reach B while A also has one in flight: {answer}"
    );
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("LLM error:") && text.contains("ambiguous in shared mode; use per-client"),
        "the server is told why: {text}"
    );
    let (done, before) = until_answer(&mut a_events, 1, 10).await;
    assert_eq!(done["result"]["content"][0]["text"], "slept 3000ms");
    assert!(
        before
            .iter()
            .all(|m| m["method"] == "notifications/progress"),
        "no server→client request may reach A: {before:?}"
    );
    assert!(
        !hub.log_lines_with(&["ambiguous", "fx"]).is_empty(),
        "a warning names the server"
    );
}

#[tokio::test]
async fn resources_updated_reaches_only_its_subscribers() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({"sandbox": false}))}));
    let subscribe = |id: u64, uri: &str| req(json!(id), "resources/subscribe", json!({"uri": uri}));
    // Streamable: `sub` subscribes to the watched URI, `other` to another one.
    let sub = session(&hub, "fx").await;
    assert!(sub.post(&subscribe(1, WATCHED)).await.last()["result"].is_object());
    let mut sub_get = RawEvents::new(sub.get_stream().await);
    let other = session(&hub, "fx").await;
    assert!(other.post(&subscribe(1, "test://static-text")).await.last()["result"].is_object());
    let mut other_get = RawEvents::new(other.get_stream().await);
    // Legacy SSE: one subscriber, one bystander.
    let http = reqwest::Client::new();
    let mut legacy = vec![];
    for uri in [Some(WATCHED), None] {
        let (url, mut events) = legacy_raw(&hub, "fx").await;
        let init = req(json!(1), "initialize", init_params("2024-11-05"));
        assert_eq!(post_raw_to(&http, &url, &init.to_string()).await, 202);
        events.next_message(10).await;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post_raw_to(&http, &url, &initialized.to_string()).await;
        if let Some(uri) = uri {
            post_raw_to(&http, &url, &subscribe(2, uri).to_string()).await;
            assert_eq!(events.next_message(10).await["id"], 2);
        }
        legacy.push(events);
    }

    let trigger = session(&hub, "fx").await;
    let args = json!({"method": "notifications/resources/updated", "uri": WATCHED, "count": 1});
    assert_eq!(trigger.call_text(1, "flood", args).await, "sent 1");
    // Then something every session gets: whoever sees it first was not told.
    assert_eq!(
        trigger.call_text(2, "list_changed", json!({})).await,
        "sent"
    );

    for (who, events) in [
        ("streamable subscriber", &mut sub_get),
        ("SSE subscriber", &mut legacy[0]),
    ] {
        let m = events.next_message(10).await;
        assert_eq!(m["method"], "notifications/resources/updated", "{who}: {m}");
        assert_eq!(m["params"]["uri"], WATCHED, "{who}");
    }
    let (sse_sub, sse_bystander) = legacy.split_at_mut(1);
    for (who, events) in [
        ("streamable, other URI", &mut other_get),
        ("SSE bystander", &mut sse_bystander[0]),
    ] {
        let m = events.next_message(10).await;
        assert_eq!(
            m["method"], "notifications/tools/list_changed",
            "{who} must not get another URI's update: {m}"
        );
    }
    assert_eq!(
        sse_sub[0].next_message(10).await["method"],
        "notifications/tools/list_changed"
    );
}

#[tokio::test]
async fn a_failed_lazy_server_comes_back_within_a_minute_without_reload() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.sh");
    let starts = dir.path().join("starts");
    let write_script = |body: &str| {
        use std::os::unix::fs::PermissionsExt;
        // Replaced by rename, so a start in progress never sees half a file.
        let tmp = dir.path().join("server.sh.new");
        std::fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &script).unwrap();
    };
    write_script(&format!("echo start >> {}\nexit 1", starts.display()));
    let hub = Hub::start(
        json!({}),
        json!({"flaky": {"command": script, "sandbox": false, "initTimeout": "5s"}}),
    );
    let c = Mcp::new(&hub, "flaky");
    let init = req(json!(1), "initialize", init_params("2025-11-25"));
    let count = || {
        std::fs::read_to_string(&starts)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = c.post(&init).await;
        assert_eq!(
            r.status, 503,
            "a server that cannot start: {:?}",
            r.messages
        );
        if count() >= 6 && hub.server_status("flaky").await["state"] == "failed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "6 failed starts and state failed within 120 s: {} starts, {}",
            count(),
            hub.server_status("flaky").await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    write_script(&format!("exec {}", fixture()));
    let fixed = Instant::now();
    // No reload: a request (or the hub's own retry every 60 s) finds the fix.
    loop {
        let left = Duration::from_secs(65).saturating_sub(fixed.elapsed());
        assert!(
            !left.is_zero(),
            "no answer within 65 s of the fix: {}",
            hub.server_status("flaky").await
        );
        if let Ok(r) = tokio::time::timeout(left, c.post(&init)).await {
            if r.status == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let c = session(&hub, "flaky").await;
    assert_eq!(
        c.call_text(2, "echo", json!({"text": "back"})).await,
        "back"
    );
    assert_eq!(hub.server_status("flaky").await["state"], "ready");
}

#[tokio::test]
async fn a_child_that_stops_reading_cannot_hold_requests_past_their_timeout() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false, "timeout": "3s"})),
               "pc": fx(json!({"sandbox": false, "timeout": "3s", "session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let c = session(&hub, server).await;
        assert_eq!(
            c.call_text(1, "stop_reading", json!({})).await,
            "no longer reading stdin"
        );
        // 2 MiB in flight: far more than a pipe holds, so writers block on stdin.
        let c = Arc::new(c);
        let big = "y".repeat(256 * 1024);
        let calls: Vec<_> = (0..8u64)
            .map(|i| {
                let (c, big) = (c.clone(), big.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let r = tokio::time::timeout(
                        Duration::from_secs(10),
                        c.post(&call(10 + i, "echo", json!({"text": big}))),
                    )
                    .await
                    .unwrap_or_else(|_| panic!("call {} still open after 10 s", 10 + i));
                    (t.elapsed(), r)
                })
            })
            .collect();
        for (i, t) in calls.into_iter().enumerate() {
            let (took, r) = t.await.unwrap();
            assert!(
                took < Duration::from_secs(4),
                "{server}: call {i} took {took:?}"
            );
            assert!(r.last()["error"].is_object(), "{server}: {}", r.last());
            assert_eq!(r.last()["id"], 10 + i as u64);
        }
    }
}

#[tokio::test]
async fn a_second_request_with_an_in_flight_id_is_refused_at_once() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false})),
               "pc": fx(json!({"sandbox": false, "session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let c = session(&hub, server).await;
        let mut first = c
            .post_events(&call_with_progress(7, "slow", json!({"ms": 2000})))
            .await;
        assert_eq!(
            first.next_message(10).await["method"],
            "notifications/progress"
        );
        let t = Instant::now();
        let second = tokio::time::timeout(
            Duration::from_secs(5),
            c.post(&call(7, "echo", json!({"text": "same id"}))),
        )
        .await
        .expect("the second request ends");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{server}: {:?}",
            t.elapsed()
        );
        let m = second.last();
        assert_eq!(m["id"], 7, "{server}: {m}");
        assert!(
            error_message(m).contains("already in flight"),
            "{server}: {m}"
        );
        let (done, _) = until_answer(&mut first, 7, 10).await;
        assert_eq!(
            done["result"]["content"][0]["text"], "slept 2000ms",
            "{server}: the first request keeps its own answer"
        );
    }
}

#[tokio::test]
async fn a_cancelled_request_ends_its_post_with_an_error() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false, "timeout": "60s"})),
               "pc": fx(json!({"sandbox": false, "timeout": "60s", "session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let c = session(&hub, server).await;
        let mut answer = c
            .post_events(&call_with_progress(8, "slow", json!({"ms": 30000})))
            .await;
        assert_eq!(
            answer.next_message(10).await["method"],
            "notifications/progress"
        );
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": 8, "reason": "the user changed their mind"}});
        assert_eq!(c.post(&cancel).await.status, 202);
        let t = Instant::now();
        let (m, _) = until_answer(&mut answer, 8, 5).await;
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{server}: {:?}",
            t.elapsed()
        );
        assert_eq!(m["error"]["code"], -32800, "{server}: {m}");
        assert!(error_message(&m).contains("cancelled"), "{server}: {m}");
        assert!(answer.ends_within(5).await, "{server}: the POST ends");
        assert_eq!(
            c.call_text(9, "echo", json!({"text": "still here"})).await,
            "still here"
        );
    }
}

#[tokio::test]
async fn forty_abandoned_per_client_sessions_leave_at_most_sixteen_children() {
    let hub = Hub::start(
        json!({}),
        json!({"pc": fx(json!({"sandbox": false, "session": "per-client"}))}),
    );
    let mut sessions = vec![];
    for i in 0..40 {
        let c = session(&hub, "pc").await;
        let text = format!("session {i}");
        assert_eq!(c.call_text(1, "echo", json!({"text": text})).await, text);
        sessions.push(c); // never deleted, like most clients
    }
    // Stopping the least recently used takes a moment (stdin EOF, exit).
    let deadline = Instant::now() + Duration::from_secs(15);
    while children_named(hub.pid(), "mcp-fixture").len() > 16 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let live = children_named(hub.pid(), "mcp-fixture").len();
    assert!(live <= 16, "{live} per-client children after 40 sessions");

    let c41 = session(&hub, "pc").await;
    assert_eq!(c41.call_text(1, "echo", json!({"text": "41"})).await, "41");
    assert!(children_named(hub.pid(), "mcp-fixture").len() <= 16);
    // The least recently used session was the one stopped: it is gone.
    let r = sessions[0]
        .post(&call(2, "echo", json!({"text": "0"})))
        .await;
    assert_eq!(r.status, 404, "{:?}", r.messages);
    let st = hub.server_status("pc").await;
    assert_eq!(st["maxClients"], 16, "{st}");
    assert_eq!(st["idleTimeoutSecs"], 300, "{st}");
}

#[tokio::test]
async fn at_max_clients_with_none_idle_a_new_session_gets_503() {
    let hub = Hub::start(
        json!({}),
        json!({"pc": fx(json!({"sandbox": false, "session": "per-client", "maxClients": 2}))}),
    );
    let mut busy = vec![];
    for i in 0..2u64 {
        let c = session(&hub, "pc").await;
        let mut events = c
            .post_events(&call_with_progress(i, "slow", json!({"ms": 4000})))
            .await;
        assert_eq!(
            events.next_message(10).await["method"],
            "notifications/progress"
        );
        busy.push((c, events));
    }
    let third = Mcp::new(&hub, "pc");
    let r = third
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503, "{:?}", r.messages);
    assert!(
        error_message(r.last()).contains("maxClients"),
        "{}",
        r.last()
    );
    // The busy ones are untouched.
    for (i, (_, events)) in busy.iter_mut().enumerate() {
        let (done, _) = until_answer(events, i as u64, 10).await;
        assert_eq!(done["result"]["content"][0]["text"], "slept 4000ms");
    }
    assert_eq!(hub.server_status("pc").await["maxClients"], 2);
}

#[tokio::test]
async fn a_per_client_child_stops_after_its_idle_timeout() {
    let hub = Hub::start(
        json!({}),
        json!({"pc": fx(json!({"sandbox": false, "session": "per-client", "idleTimeout": "1s"}))}),
    );
    let c = session(&hub, "pc").await;
    let pid: i32 = c.call_text(1, "pid", json!({})).await.parse().unwrap();
    assert!(pid_alive(pid));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!pid_alive(pid), "the idle per-client child still runs");
    assert_eq!(hub.server_status("pc").await["idleTimeoutSecs"], 1);
}

#[tokio::test]
async fn clients_that_never_read_cannot_grow_the_hub() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({"sandbox": false}))}));
    let subscribe = req(json!(2), "resources/subscribe", json!({"uri": WATCHED}));
    // A legacy SSE client that subscribes, then stops reading its stream.
    let http = reqwest::Client::new();
    let (sse_url, mut sse_events) = legacy_raw(&hub, "fx").await;
    let init = req(json!(1), "initialize", init_params("2024-11-05"));
    post_raw_to(&http, &sse_url, &init.to_string()).await;
    sse_events.next_message(10).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post_raw_to(&http, &sse_url, &initialized.to_string()).await;
    post_raw_to(&http, &sse_url, &subscribe.to_string()).await;
    assert_eq!(sse_events.next_message(10).await["id"], 2);
    // A streamable client that subscribes and never reads its GET stream.
    let slow = session(&hub, "fx").await;
    assert!(slow.post(&subscribe).await.last()["result"].is_object());
    let slow_get = slow.get_stream().await;

    let before = hub.rss_kib();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), hub.pid());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    let kib = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                        .unwrap_or(0);
                    peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Another client makes the shared server broadcast 1 MiB updates for 20 s
    // (50 MiB/s), while the slow SSE client posts 1 MiB requests whose answers
    // it never reads.
    let fast = session(&hub, "fx").await;
    let flood = tokio::spawn(async move {
        let args = json!({"method": "notifications/resources/updated", "uri": WATCHED,
                          "bytes": MIB, "every": 20, "for": 20_000});
        fast.post(&call(1, "flood", args)).await
    });
    let big = call(3, "echo", json!({"text": "z".repeat(MIB)})).to_string();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        // Whether the hub accepts, refuses or holds the POST is its choice; the
        // client does not wait long for it either way.
        let _ =
            tokio::time::timeout(Duration::from_secs(2), post_raw_to(&http, &sse_url, &big)).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let flooded = tokio::time::timeout(Duration::from_secs(30), flood)
        .await
        .expect("the flood call ends")
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        flooded.last()["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("sent ")),
        "{}",
        flooded.last()
    );
    assert!(
        peak < 64 * 1024,
        "hub RSS peaked at {peak} KiB (from {before} KiB) with clients that never read"
    );
    assert!(
        !hub.log_lines_with(&["overflow", "fx"]).is_empty(),
        "the overflow is logged, naming the server"
    );
    // Both slow streams were closed: what is left in them drains, then they end.
    assert!(
        sse_events.ends_within(30).await,
        "the slow legacy SSE stream was not closed"
    );
    assert!(
        RawEvents::new(slow_get).ends_within(30).await,
        "the slow streamable GET stream was not closed"
    );
}

#[tokio::test]
async fn an_unparseable_answer_fails_its_request_at_once() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false, "timeout": "20s"})),
               "pc": fx(json!({"sandbox": false, "timeout": "20s", "session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let c = session(&hub, server).await;
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            c.post(&call(5, "bad_json", json!({}))),
        )
        .await
        .unwrap_or_else(|_| panic!("{server}: no answer within 10 s"));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{server}: {:?}",
            t.elapsed()
        );
        assert_eq!(r.last()["id"], 5, "{server}: {}", r.last());
        assert!(
            error_message(r.last()).contains("not valid JSON"),
            "{server}: {}",
            r.last()
        );
        assert_eq!(c.call_text(6, "echo", json!({"text": "ok"})).await, "ok");
    }
}

/// Arguments that serde_json without `arbitrary_precision` would change:
/// trailing zeros, out-of-range and 24-digit numbers, an escape, key order.
const EXACT: &str = r#"{"z":1.50,"big":1e400,"int":123456789012345678901234,"s":"\u00e9","nested":{"b":[1.0,-0.0,2E+5],"a":"x"}}"#;

fn exact_call(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo_raw","arguments":{EXACT}}}}}"#
    )
}

/// `answer` is the raw text the client received for `exact_call`.
fn assert_exact(answer: &str, what: &str) {
    let arrived = serde_json::to_string(EXACT).unwrap();
    assert!(
        answer.contains(&arrived),
        "{what}: the server did not receive the arguments as sent: {answer}"
    );
    assert!(
        answer.contains(EXACT),
        "{what}: the result did not come back as the server wrote it: {answer}"
    );
}

#[tokio::test]
async fn values_cross_the_hub_byte_for_byte_both_ways() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false})),
               "pc": fx(json!({"sandbox": false, "session": "per-client"}))}),
    );
    let http = reqwest::Client::new();
    for server in ["fx", "pc"] {
        let c = session(&hub, server).await;
        let (status, body) = c.post_raw(&exact_call(3)).await;
        assert_eq!(status, 200, "{server}: {body}");
        assert_exact(&body, &format!("{server} streamable"));

        let (url, mut events) = legacy_raw(&hub, server).await;
        let init = req(json!(1), "initialize", init_params("2024-11-05"));
        post_raw_to(&http, &url, &init.to_string()).await;
        events.next_message(10).await;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post_raw_to(&http, &url, &initialized.to_string()).await;
        assert_eq!(
            post_raw_to(&http, &url, &exact_call(4)).await,
            202,
            "{server}"
        );
        let answer = events.next_raw(10).await.expect("an answer");
        assert_exact(&answer, &format!("{server} legacy SSE"));
    }
}
