//! What a client can learn that it should not: a crashing child's stderr in
//! error bodies, the members of a group it cannot reach in `/status`, and
//! group member names that collide on a public tool name.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SECRET: &str = "DB_PASSWORD=hunter2";

fn bodies(r: &Reply) -> String {
    serde_json::to_string(&r.messages).unwrap()
}

/// Waits until `/status` shows the secret among the server's last stderr lines.
async fn status_shows_secret(hub: &Hub, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let st = hub.server_status(name).await;
        let lines: Vec<String> =
            serde_json::from_value(st["lastStderr"].clone()).unwrap_or_default();
        if lines.iter().any(|l| l.contains(SECRET)) {
            return st;
        }
        assert!(Instant::now() < deadline, "/status never showed it: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_crashing_childs_stderr_reaches_the_log_and_status_not_clients() {
    // One child fails at start with the secret as its last stderr line; the
    // other crashes under a call and its wrapper prints the secret last.
    let hub = Hub::start(
        json!({}),
        json!({
            "bad": {"command": "/bin/sh", "sandbox": false,
                    "args": ["-c", format!("echo {SECRET} >&2; sleep 0.3; exit 3")]},
            "wrapped": {"command": "/bin/sh", "sandbox": false,
                    "args": ["-c", format!("\"$0\"; echo {SECRET} >&2; sleep 0.3; exit 3"), fixture()]},
        }),
    );
    let c = Mcp::new(&hub, "bad");
    let r = c
        .post(&req(json!(0), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    let body = bodies(&r);
    assert!(!body.contains("hunter2"), "{body}");
    assert!(
        body.contains("\\\"bad\\\"") && body.contains("exited with status 3"),
        "names the server and what happened: {body}"
    );
    // During the backoff that follows, the refusal says it is restarting.
    let r = c
        .post(&req(json!(0), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    let body = bodies(&r);
    assert!(!body.contains("hunter2"), "{body}");
    assert!(body.contains("bad"), "{body}");

    let mut w = Mcp::new(&hub, "wrapped");
    w.initialize().await;
    let r = w.post(&call(1, "crash", json!({}))).await;
    let body = bodies(&r);
    assert!(
        !body.contains("hunter2"),
        "the in-flight call's error: {body}"
    );
    assert!(body.contains("wrapped"), "{body}");
    let st = status_shows_secret(&hub, "wrapped").await;
    assert!(
        !st["lastError"].as_str().unwrap_or("").contains("hunter2"),
        "{st}"
    );
    // A new session while it restarts: refused without the stderr.
    let r = Mcp::new(&hub, "wrapped")
        .post(&req(json!(0), "initialize", init_params("2025-11-25")))
        .await;
    let body = bodies(&r);
    assert!(!body.contains("hunter2"), "{body}");

    status_shows_secret(&hub, "bad").await;
    assert!(hub.log_contains(SECRET), "the log keeps the stderr");
}
