//! SIGHUP reload: a per-server diff that keeps unchanged servers' children and
//! sessions, and a bad config that leaves the running one in place.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn hup(hub: &Hub) {
    let pid = nix::unistd::Pid::from_raw(hub.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
}

fn wait_log(hub: &Hub, needle: &str, nth: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
        < nth
    {
        assert!(Instant::now() < deadline, "no {needle:?} in the log");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(hub: &Hub, cfg: &Value) {
    std::fs::write(&hub.config_path, serde_json::to_vec_pretty(cfg).unwrap()).unwrap();
}

#[tokio::test]
async fn reload_applies_a_per_server_diff() {
    let servers = json!({"keep": fx(json!({"sandbox": false})), "chg": fx(json!({"sandbox": false})), "gone": fx(json!({"sandbox": false})), "pc": fx(json!({"sandbox": false, "session": "per-client"}))});
    let hub = Hub::start(json!({}), servers);
    let mut sessions = std::collections::HashMap::new();
    let mut pids = std::collections::HashMap::new();
    for name in ["keep", "chg", "gone", "pc"] {
        let mut c = Mcp::new(&hub, name);
        c.initialize().await;
        pids.insert(
            name,
            c.call_text(1, "pid", json!({}))
                .await
                .parse::<i32>()
                .unwrap(),
        );
        sessions.insert(name, c);
    }
    write(
        &hub,
        &json!({
            "mcpProxy": {"options": {"authTokens": ["rotated-token"]}},
            "mcpServers": {"keep": fx(json!({"sandbox": false})), "chg": fx(json!({"sandbox": false, "env": {"CHANGED": "1"}})), "pc": fx(json!({"sandbox": false, "session": "per-client", "options": {"authTokens": [TOKEN, "rotated-token"]}})), "new": fx(json!({"sandbox": false}))}
        }),
    );
    hup(&hub);
    wait_log(&hub, "reloaded", 1);
    assert!(hub
        .log_contains(r#"kept ["keep", "pc"], changed ["chg"], added ["new"], removed ["gone"]"#));

    // A rotated token counts from the very next request.
    let keep = sessions.get_mut("keep").unwrap();
    assert_eq!(keep.post(&call(2, "echo", json!({}))).await.status, 401);
    // The session the old token opened ended with it; the child stays.
    keep.token = "rotated-token".into();
    assert_eq!(keep.post(&call(3, "echo", json!({}))).await.status, 404);
    let mut keep = Mcp::new(&hub, "keep");
    keep.token = "rotated-token".into();
    keep.initialize().await;
    assert_eq!(
        keep.call_text(3, "pid", json!({}))
            .await
            .parse::<i32>()
            .unwrap(),
        pids["keep"]
    );
    // Unchanged, and its token still valid for it: same session, same child.
    let pc = sessions.get_mut("pc").unwrap();
    assert_eq!(
        pc.call_text(3, "pid", json!({}))
            .await
            .parse::<i32>()
            .unwrap(),
        pids["pc"]
    );
    // Changed: the old session is gone, a new one reaches a new child.
    let chg = sessions.get_mut("chg").unwrap();
    chg.token = "rotated-token".into();
    assert_eq!(chg.post(&call(3, "echo", json!({}))).await.status, 404);
    let mut fresh = Mcp::new(&hub, "chg");
    fresh.token = "rotated-token".into();
    fresh.initialize().await;
    let new_pid: i32 = fresh.call_text(1, "pid", json!({})).await.parse().unwrap();
    assert_ne!(new_pid, pids["chg"]);
    // Removed: no route, and its child stops.
    let gone = sessions.get_mut("gone").unwrap();
    gone.token = "rotated-token".into();
    assert_eq!(gone.post(&call(3, "echo", json!({}))).await.status, 404);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pids["gone"]) || pid_alive(pids["chg"]) {
        assert!(Instant::now() < deadline, "retired children stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Added.
    let mut added = Mcp::new(&hub, "new");
    added.token = "rotated-token".into();
    added.initialize().await;
    assert_eq!(
        added.call_text(1, "echo", json!({"text": "hello"})).await,
        "hello"
    );
}

#[tokio::test]
async fn a_bad_config_on_reload_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let hub = Hub::start_env(
        json!({}),
        json!({"fx": fx(json!({}))}),
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let mut buf = [0u8; 4096];
    let mut drain = || {
        let mut got = vec![];
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        got
    };
    drain();
    for (i, bad) in [
        "{ not json",
        r#"{"mcpServers": {"fx": {"command": "x", "timeout": "soon"}}}"#,
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&hub.config_path, bad).unwrap();
        hup(&hub);
        wait_log(&hub, "reload failed", i + 1);
        let got = drain();
        let all = got.join("\n");
        assert!(
            all.contains("RELOADING=1") && all.contains("MONOTONIC_USEC="),
            "{got:?}"
        );
        assert!(
            all.contains("READY=1")
                && all.contains("STATUS=reload failed, running the previous config"),
            "{got:?}"
        );
        assert_eq!(
            c.call_text(10 + i as u64, "echo", json!({"text": "still"}))
                .await,
            "still"
        );
    }
    assert!(hub.log_contains("mcpServers.fx.timeout: \"soon\" is not a duration"));
}
