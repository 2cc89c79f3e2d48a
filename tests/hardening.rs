//! Hostile input, faults and shutdown: each test makes the attack first, then
//! checks the hub held (token scope, connection floods, slow bodies, log
//! floods, reloads under a log setting, orphans at shutdown).

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn write_config(hub: &Hub, proxy: Value, servers: Value) {
    let cfg = json!({"mcpProxy": proxy, "mcpServers": servers});
    std::fs::write(&hub.config_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

fn hup_and_wait(hub: &Hub) {
    let before = hub
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("reloaded"))
        .count();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hub.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("reloaded"))
        .count()
        == before
    {
        assert!(Instant::now() < deadline, "no reload");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_revoked_tokens_stream_is_closed_on_reload() {
    let servers = json!({"fx": fx(json!({}))});
    let hub = Hub::start(
        json!({"options": {"authTokens": ["old", "kept"]}}),
        servers.clone(),
    );
    let old = reqwest::Client::new()
        .get(hub.url("/fx/sse"))
        .bearer_auth("old")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    let kept = reqwest::Client::new()
        .get(hub.url("/fx/sse"))
        .bearer_auth("kept")
        .send()
        .await
        .unwrap();
    write_config(&hub, json!({"options": {"authTokens": ["kept"]}}), servers);
    hup_and_wait(&hub);
    // The revoked stream ends: reading it to the end finishes promptly.
    let body = tokio::time::timeout(Duration::from_secs(10), old.text())
        .await
        .expect("the revoked token's stream stays open");
    assert!(body.unwrap().contains("endpoint"));
    // The other one stays open.
    let mut kept = kept.bytes_stream();
    use futures_util::StreamExt;
    assert!(kept.next().await.is_some());
    assert!(
        tokio::time::timeout(Duration::from_millis(500), kept.next())
            .await
            .is_err(),
        "a valid token's stream must stay open"
    );
    assert!(hub.log_contains("revoked"));
}

#[tokio::test]
async fn status_shows_a_scoped_token_only_its_servers() {
    let hub = Hub::start(
        json!({"options": {"authTokens": ["global"]}}),
        json!({"a": fx(json!({})), "b": fx(json!({"options": {"authTokens": ["b-only"]}}))}),
    );
    let status = |t: &'static str| {
        let url = hub.url("/status");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (code, v) = status("b-only").await;
    assert_eq!(code, 200);
    let names: Vec<_> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("b")],
        "a server-scoped token sees only its server"
    );
    let (_, v) = status("global").await;
    let names: Vec<_> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a")]);
    assert_eq!(status("nope").await.0, 401);
    // statusTokens: only they may look, and they see everything.
    let hub = Hub::start(
        json!({"options": {"authTokens": ["global"], "statusTokens": ["ops"]}}),
        json!({"a": fx(json!({})), "b": fx(json!({"options": {"authTokens": ["b-only"]}}))}),
    );
    let get = |t: &'static str| {
        reqwest::Client::new()
            .get(hub.url("/status"))
            .bearer_auth(t)
            .send()
    };
    assert_eq!(get("global").await.unwrap().status(), 401);
    let v: Value = get("ops").await.unwrap().json().await.unwrap();
    assert_eq!(v["servers"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_connection_flood_under_a_low_fd_limit_locks_nobody_out() {
    let hub = Hub::start_env(
        json!({"options": {"maxConnectionsPerIp": 100}}),
        json!({"fx": fx(json!({}))}),
        &[(NOFILE, "256")],
    );
    let addr: std::net::SocketAddr = hub.base.trim_start_matches("http://").parse().unwrap();
    // 400 silent connections from 127.0.0.1: more than the hub has descriptors.
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..400 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            flood.push(s);
        }
    }
    // The ones past the per-IP limit are answered 503 and closed.
    for s in flood.iter_mut().skip(100) {
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            if String::from_utf8_lossy(&buf[..n]).contains(" 503 ") {
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 250,
        "only {refused} of 300 excess connections were refused with 503"
    );
    // Meanwhile a client from another loopback address is served, and /healthz answers.
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let r = other.get(hub.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = other
        .post(hub.url("/fx/mcp"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&req(json!(1), "initialize", init_params("2025-11-25")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(hub.log_contains("maxConnectionsPerIp"));
    drop(flood);
}

#[tokio::test]
async fn a_slow_body_is_cut_at_the_timeout() {
    let hub = Hub::start(
        json!({"options": {"bodyReadTimeout": "2s"}}),
        json!({"fx": fx(json!({}))}),
    );
    let addr = hub.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /fx/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let trickle = async {
        loop {
            if s.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut buf = [0u8; 256];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(10), s.read(&mut buf)).await
            {
                return String::from_utf8_lossy(&buf[..n]).to_string();
            }
        }
        String::new()
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the slow body was never cut");
    assert!(answer.contains(" 408 "), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn sessions_per_token_are_capped() {
    let hub = Hub::start(
        json!({"options": {"maxSessionsPerToken": 2}}),
        json!({"fx": fx(json!({}))}),
    );
    let mut a = Mcp::new(&hub, "fx");
    a.initialize().await;
    let mut b = Mcp::new(&hub, "fx");
    b.initialize().await;
    let r = Mcp::new(&hub, "fx")
        .post(&req(json!(1), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 503);
    assert!(r.last()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maxSessionsPerToken"));
    // Closing one frees its slot.
    assert_eq!(a.delete().await, 200);
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
}

#[tokio::test]
async fn a_batch_of_100k_pings_logs_a_bounded_number_of_lines() {
    let hub = Hub::start(
        json!({"options": {"maxBodySize": "8MiB"}}),
        json!({"fx": fx(json!({})), "pc": fx(json!({"session": "per-client"}))}),
    );
    for server in ["fx", "pc"] {
        let mut c = Mcp::new(&hub, server);
        c.initialize().await;
        let before = hub.logs.lock().unwrap().len();
        let batch: Vec<Value> = (0..100_000)
            .map(|_| json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .collect();
        let r = c.post(&Value::Array(batch)).await;
        assert!(r.status == 200 || r.status == 503, "{}", r.status);
        let after = hub.logs.lock().unwrap().len();
        let warns = hub.logs.lock().unwrap()[before..after]
            .iter()
            .filter(|l| l.contains("WARN"))
            .count();
        assert!(warns < 20, "{server}: {warns} warning lines for one batch");
        // Still serving.
        let mut d = Mcp::new(&hub, server);
        d.initialize().await;
        assert_eq!(d.call_text(2, "echo", json!({"text": "ok"})).await, "ok");
    }
}

#[tokio::test]
async fn toggling_log_enabled_on_reload_keeps_the_child() {
    let servers = json!({"fx": fx(json!({"sandbox": false}))});
    let hub = Hub::start(json!({"options": {"logEnabled": false}}), servers.clone());
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let pid: i32 = c.call_text(1, "pid", json!({})).await.parse().unwrap();
    write_config(
        &hub,
        json!({"options": {"authTokens": [TOKEN], "logEnabled": true, "toolFilter": {"mode": "block", "list": ["crash"]}}}),
        servers,
    );
    hup_and_wait(&hub);
    assert!(hub.log_contains(r#"kept ["fx"], changed []"#));
    // Same session, same child, and the new settings apply to it.
    let again: i32 = c.call_text(2, "pid", json!({})).await.parse().unwrap();
    assert_eq!(again, pid);
    // The log is read from the hub's stderr by another thread: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !hub.log_contains("tools/call \"pid\": ok") {
        assert!(Instant::now() < deadline, "logEnabled applies in place");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = c.post(&call(3, "crash", json!({}))).await;
    assert_eq!(r.last()["error"]["message"], json!("Unknown tool: crash"));
}

#[tokio::test]
async fn sigterm_with_a_short_timeout_leaves_no_process_behind() {
    // Children that ignore stdin EOF and leave grandchildren, shared and
    // per-client, unsandboxed (no pid namespace takes them down).
    let mut hub = Hub::start(
        json!({"options": {"shutdownTimeout": "2s"}}),
        json!({
            "sh": fx(json!({"sandbox": false, "args": ["--ignore-eof", "--fork-child"]})),
            "pc": fx(json!({"sandbox": false, "session": "per-client", "args": ["--ignore-eof", "--fork-child"]}))
        }),
    );
    let mut pids = vec![];
    for server in ["sh", "pc", "pc"] {
        let mut c = Mcp::new(&hub, server);
        c.initialize().await;
        let pid: i32 = c.call_text(1, "pid", json!({})).await.parse().unwrap();
        pids.extend(group_members(pid));
        std::mem::forget(c);
    }
    assert!(pids.len() >= 6, "children and grandchildren: {pids:?}");
    let t = Instant::now();
    let status = hub.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        t.elapsed()
    );
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} outlived the hub");
    }
}

#[tokio::test]
async fn an_unsandboxed_child_dies_with_a_killed_hub() {
    let hub = Hub::start(
        json!({}),
        json!({"fx": fx(json!({"sandbox": false, "args": ["--ignore-eof"]}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let pid: i32 = c.call_text(1, "pid", json!({})).await.parse().unwrap();
    drop(hub); // SIGKILL: no graceful stop at all
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline, "the child outlived a killed hub");
        std::thread::sleep(Duration::from_millis(50));
    }
}
