//! The child's life: crash and restart, requests that never end, garbage on
//! stdout, lazy/eager/idle start and stop, and a clean shutdown of everything.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn crash_fails_in_flight_then_restarts_without_reinitialize() {
    // --fork-child: a grandchild keeps stdout open, so only the exit tells.
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false, "args": ["--fork-child"]}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let p1: i32 = c.call_text(1, "pid", json!({})).await.parse().unwrap();
    // A slow call in flight when the child dies.
    let c = std::sync::Arc::new(c);
    let c2 = c.clone();
    let slow = tokio::spawn(async move { c2.post(&call(2, "slow", json!({"ms": 20000}))).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let crash = c.post(&call(3, "crash", json!({}))).await;
    let inflight = slow.await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "in-flight requests fail within a second, took {:?}",
        t.elapsed()
    );
    for r in [crash.last(), inflight.last()] {
        assert_eq!(r["error"]["code"], -32000, "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("exited with status 3"),
            "{r}"
        );
    }
    // Same session, no new initialize: the next call reaches a new child.
    let p2: i32 = c.call_text(4, "pid", json!({})).await.parse().unwrap();
    assert_ne!(p1, p2);
    let st = hub.server_status("fx").await;
    assert_eq!(st["restarts"], 1);
    assert_eq!(st["state"], "ready");
    assert!(st["lastError"]
        .as_str()
        .unwrap()
        .contains("exited with status 3"));
    assert!(!pid_alive(p1));
}

#[tokio::test]
async fn a_request_that_never_ends_times_out() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"timeout": "1s"})), "pc": fx(json!({"timeout": "1s", "session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let mut c = Mcp::new(&hub, server);
        c.initialize().await;
        let t = Instant::now();
        let r = c.post(&call(9, "hang", json!({}))).await;
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        assert_eq!(r.last()["id"], 9);
        assert_eq!(r.last()["error"]["code"], -32001);
        assert!(r.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer tools/call within 1s"));
        assert_eq!(
            c.call_text(10, "echo", json!({"text": "alive"})).await,
            "alive"
        );
    }
}

#[tokio::test]
async fn a_child_that_never_initializes_gets_503() {
    let hub = Hub::start(
        json!({}),
        json!({"mute": fx(json!({"args": ["--no-init"], "initTimeout": "1s"})),
                                           "dies": fx(json!({"args": ["--exit-on-init"], "initTimeout": "5s"})),
                                           "missing": {"command": "/nonexistent/mcp-server"}}),
    );
    for (server, why) in [
        ("mute", "did not answer initialize within 1s"),
        ("dies", "exited with status 1"),
        ("missing", "cannot start"),
    ] {
        let c = Mcp::new(&hub, server);
        let r = c
            .post(&req(json!(1), "initialize", init_params("2025-11-25")))
            .await;
        assert_eq!(r.status, 503, "{server}");
        assert!(r.headers.get("mcp-session-id").is_none());
        let msg = r.last()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(server) && msg.contains(why), "{server}: {msg}");
    }
    let st = hub.server_status("missing").await;
    assert!(st["lastError"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/mcp-server"));
    // The other servers are unaffected.
    assert_eq!(hub.server_status("mute").await["sessions"], 0);
}

#[tokio::test]
async fn garbage_on_stdout_is_logged_and_skipped() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"args": ["--garbage-on-start"]}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    assert_eq!(c.call_text(1, "garbage", json!({})).await, "after garbage");
    assert_eq!(c.call_text(2, "echo", json!({"text": "ok"})).await, "ok");
    assert!(hub.log_contains("not JSON-RPC"));
    assert!(
        hub.log_contains("mcp-fixture ready"),
        "stderr lines are logged"
    );
    assert_eq!(hub.server_status("fx").await["restarts"], 0);
}

#[tokio::test]
async fn lazy_eager_and_idle_stop() {
    let hub = Hub::start(
        json!({}),
        json!({"lazy": fx(json!({"sandbox": false, "idleTimeout": "1s"})), "eager": fx(json!({"sandbox": false, "start": "eager"}))}),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.server_status("eager").await["state"] != "ready" {
        assert!(
            Instant::now() < deadline,
            "an eager server starts without clients"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hub.server_status("lazy").await["state"], "stopped");
    let mut c = Mcp::new(&hub, "lazy");
    c.initialize().await;
    let st = hub.server_status("lazy").await;
    assert_eq!(st["state"], "ready");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(c.delete().await, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.server_status("lazy").await["state"] != "stopped" {
        assert!(Instant::now() < deadline, "an idle child stops");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!pid_alive(pid));
    // And comes back for the next client.
    let mut c = Mcp::new(&hub, "lazy");
    c.initialize().await;
    assert_eq!(
        c.call_text(1, "echo", json!({"text": "back"})).await,
        "back"
    );
}

#[tokio::test]
async fn sigterm_stops_every_child_and_its_group() {
    let mut hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false, "args": ["--fork-child"]})), "pc": fx(json!({"sandbox": false, "session": "per-client"}))}),
    );
    let mut a = Mcp::new(&hub, "fx");
    a.initialize().await;
    let mut b = Mcp::new(&hub, "pc");
    b.initialize().await;
    let pa: i32 = a.call_text(1, "pid", json!({})).await.parse().unwrap();
    let pb: i32 = b.call_text(1, "pid", json!({})).await.parse().unwrap();
    let grandchildren = group_members(pa);
    assert!(
        grandchildren.len() >= 2,
        "the fixture left a grandchild in its group"
    );
    let sse_task = tokio::spawn({
        let base = hub.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/fx/sse"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = hub.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(sse_task.await.unwrap().is_ok(), "SSE streams end cleanly");
    for pid in grandchildren.iter().chain([&pb]) {
        assert!(!pid_alive(*pid), "pid {pid} outlived the hub");
    }
    assert!(hub.log_contains("stopped"));
}

#[tokio::test]
async fn children_exit_when_the_hub_is_killed() {
    // SIGKILL gives the hub no chance to stop anything: its children see stdin
    // close, which is the stdio transport's shutdown signal.
    let mut hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false})), "pc": fx(json!({"sandbox": false, "session": "per-client"}))}),
    );
    let mut a = Mcp::new(&hub, "fx");
    a.initialize().await;
    let mut b = Mcp::new(&hub, "pc");
    b.initialize().await;
    let pa: i32 = a.call_text(1, "pid", json!({})).await.parse().unwrap();
    let pb: i32 = b.call_text(1, "pid", json!({})).await.parse().unwrap();
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while (pid_alive(pa) || pid_alive(pb)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !pid_alive(pa) && !pid_alive(pb),
        "children outlived a killed hub"
    );
}

#[tokio::test]
async fn exit_on_idle_waits_for_sessions_then_exits_zero() {
    let mut hub = Hub::start(
        json!({"options": {"exitOnIdle": "1s"}}),
        json!({"fx": fx(json!({}))}),
    );
    let sse = LegacySse::connect(&hub, "fx").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        hub.child.try_wait().unwrap().is_none(),
        "an open session keeps the hub up"
    );
    drop(sse);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = hub.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the idle hub exits");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(hub.log_contains("exitOnIdle"));
}

#[tokio::test]
async fn a_child_gets_only_its_configured_environment_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start_env(
        json!({}),
        json!({"fx": fx(json!({"env": {"FOO": "bar"}, "cwd": dir.path()}))}),
        &[("HUB_ONLY_SECRET", "must-not-leak")],
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let env: serde_json::Value =
        serde_json::from_str(&c.call_text(1, "env", json!({})).await).unwrap();
    let mut keys: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["FOO", "HOME", "PATH"],
        "only the configured env plus PATH and HOME: {env}"
    );
    assert_eq!(env["FOO"], "bar");
    let cwd = c.call_text(2, "cwd", json!({})).await;
    assert_eq!(
        std::path::Path::new(&cwd),
        dir.path().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn a_disabled_server_is_not_served() {
    let hub = Hub::start(
        json!({}),
        json!({"off": fx(json!({"options": {"disabled": true}})), "on": fx(json!({}))}),
    );
    let c = Mcp::new(&hub, "off");
    let r = c
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 404);
    assert!(
        r.last()["error"].as_str().unwrap().contains("disabled"),
        "{:?}",
        r.messages
    );
    assert_eq!(hub.server_status("off").await["state"], "disabled");
    let mut on = Mcp::new(&hub, "on");
    on.initialize().await;
}

#[tokio::test]
async fn sigterm_exits_within_the_drain_timeout() {
    // The child ignores stdin EOF, so its polite stop would take 5 s and more.
    let mut hub = Hub::start(
        json!({"options": {"shutdownTimeout": "2s"}}),
        json!({"fx": fx(json!({"sandbox": false, "args": ["--ignore-eof"]}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let pid: i32 = c.call_text(1, "pid", json!({})).await.parse().unwrap();
    let t = Instant::now();
    assert!(hub.terminate().success());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "took {:?}",
        t.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the child outlived the hub's drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_failed_start_shows_the_last_twenty_stderr_lines() {
    let hub = Hub::start(
        json!({}),
        json!({"bad": {"command": "/bin/sh", "sandbox": false,
                       "args": ["-c", "for i in $(seq 1 25); do echo \"line $i\" >&2; done; exit 3"]}}),
    );
    let r = Mcp::new(&hub, "bad")
        .post(&req(json!(0), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = hub.server_status("bad").await;
        let lines: Vec<String> =
            serde_json::from_value(st["lastStderr"].clone()).unwrap_or_default();
        if lines.last().map(String::as_str) == Some("line 25") {
            assert_eq!(lines.len(), 20, "{lines:?}");
            assert_eq!(lines[0], "line 6");
            // lastError is written at the exit, when the reader may not have
            // reached the last line yet; lastStderr waits for it.
            assert!(
                st["lastError"]
                    .as_str()
                    .unwrap()
                    .contains("exited with status 3"),
                "{st}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
