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

fn check(cfg: &Value) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(cfg).unwrap()).unwrap();
    let out = std::process::Command::new(hub_bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn group_members_that_collide_on_a_public_name_are_config_errors() {
    let servers = json!({"a": fx(json!({})), "a__b": fx(json!({})), "a_": fx(json!({})),
                         "x-y": fx(json!({}))});
    for (groups, needle) in [
        (
            json!({"all": {"servers": ["a", "a__b"]}}),
            r#"groups.all.servers[1]: "a__b" contains the separator "__" of group "all", so "a__b__c" could name a tool of "a" or of "a__b""#,
        ),
        (
            json!({"all": {"servers": ["a__b", "a"]}}),
            r#"groups.all.servers[0]: "a__b" contains the separator "__" of group "all""#,
        ),
        (
            json!({"all": {"servers": ["a", "a_"]}}),
            r#"groups.all.servers[1]: with the separator "__" of group "all", "a_" starts its names as "a" does"#,
        ),
        (
            json!({"one": {"servers": ["a"]}, "dash": {"servers": ["a", "x-y"], "separator": "-"}}),
            r#"groups.dash.servers[1]: "x-y" contains the separator "-" of group "dash""#,
        ),
    ] {
        let (ok, _, err) = check(&json!({"mcpServers": servers, "groups": groups}));
        assert!(!ok, "{groups}");
        assert!(err.contains(needle), "{needle}\n{err}");
    }
    let (ok, _, err) = check(&json!({"mcpServers": servers,
        "mcpProxy": {"options": {"groups": {"x": {"servers": ["a", "a__b"]}}}}}));
    assert!(!ok);
    assert!(
        err.contains(r#"mcpProxy.options.groups.x.servers[1]: "a__b" contains the separator "__" of group "x""#),
        "{err}"
    );
    // The same servers under a separator none of them contains are fine.
    let (ok, _, err) = check(&json!({"mcpServers": servers,
        "groups": {"all": {"servers": ["a", "a__b", "a_", "x-y"], "separator": "."}}}));
    assert!(ok, "{err}");
}

async fn status_as(hub: &Hub, token: &str) -> Value {
    reqwest::Client::new()
        .get(hub.url("/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn status_shows_a_groups_members_only_as_far_as_the_token_reaches() {
    let hub = Hub::start(
        json!({"options": {"authTokens": ["group-t", "secret-t"],
               "groups": {"all": {"servers": ["open", "hidden", "shared"], "authTokens": ["group-t"]}}}}),
        json!({
            "open": fx(json!({"sandbox": false, "options": {"authTokens": ["group-t"]}})),
            "hidden": fx(json!({"sandbox": false, "options": {"authTokens": ["secret-t"]}})),
            "shared": fx(json!({"sandbox": false})),
        }),
    );
    let st = status_as(&hub, "group-t").await;
    let groups = st["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{st}");
    assert_eq!(groups[0]["servers"], json!(["open", "shared"]), "{st}");
    assert!(!st.to_string().contains("hidden"), "{st}");
    // The other token reaches "hidden" but not the group.
    let st = status_as(&hub, "secret-t").await;
    assert_eq!(st["groups"], json!([]), "{st}");
    assert!(st.to_string().contains("hidden"), "{st}");
}
