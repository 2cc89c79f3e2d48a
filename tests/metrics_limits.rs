//! `/metrics` under hostile servers and clients, against the real binary:
//! huge and many tool names, an error-code flood, the size of one scrape,
//! which servers a token sees, and `metricsListen`'s Host check and
//! connection cap.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn scrape_with(hub: &Hub, token: &str) -> String {
    let resp = reqwest::Client::new()
        .get(hub.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The distinct values of `label` in a scrape.
fn values_of(text: &str, label: &str) -> Vec<String> {
    let key = format!("{label}=\"");
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(key.as_str()).nth(1))
        .filter_map(|r| r.split('"').next())
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Replaces the hub's config with `servers` (the options as started) and
/// reloads, waiting for the reload to be applied.
fn reload(hub: &Hub, servers: Value) {
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&hub.config_path).unwrap()).unwrap();
    cfg["mcpServers"] = servers;
    std::fs::write(&hub.config_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let before = hub.log_lines_with(&["reloaded "]).len();
    let pid = nix::unistd::Pid::from_raw(hub.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.log_lines_with(&["reloaded "]).len() == before {
        assert!(Instant::now() < deadline, "the reload was not logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
}

#[tokio::test]
async fn a_new_huge_tool_name_per_listing_leaves_memory_bounded() {
    // Each tools/list names one new tool of 8 MiB.
    let env = json!({"FIXTURE_EXTRA_TOOLS": format!("1:{}:fresh", 8 << 20)});
    let servers = json!({"big": fx(json!({"env": env})), "fx": fx(json!({}))});
    let hub = Hub::start(json!({}), servers);
    let mut c = Mcp::new(&hub, "big");
    c.initialize().await;
    let list = |i: u64| req(json!(i), "tools/list", json!({}));
    for i in 1..=2 {
        assert!(c.post(&list(i)).await.last()["result"]["tools"].is_array());
    }
    let base = hub.rss_kib();
    for i in 3..=24 {
        assert!(c.post(&list(i)).await.last()["result"]["tools"].is_array());
    }
    // A call naming a listed tool of the server's, and one of the huge ones.
    let echo = c.post(&call(100, "echo", json!({"text": "hi"}))).await;
    assert_eq!(echo.last()["result"]["content"][0]["text"], "hi");
    let after = hub.rss_kib();
    let text = scrape_with(&hub, TOKEN).await;
    eprintln!(
        "RSS after 2 lists {} MiB, after 24 {} MiB; scrape {} bytes",
        base / 1024,
        after / 1024,
        text.len()
    );
    // The leak grew 9.7 MiB a listing (212 MiB over these 22).
    assert!(
        after < base + 48 * 1024,
        "RSS {base} KiB → {after} KiB over 22 listings"
    );
    assert!(!text.contains("yyyyyyyy"), "a huge name became a label");
    assert!(text.len() < 256 << 10, "{} bytes", text.len());
    assert!(text.contains("server=\"big\""));
    // The server is removed: its series go, and nothing of it grows the hub.
    drop(c);
    reload(&hub, json!({"fx": fx(json!({}))}));
    let text = scrape_with(&hub, TOKEN).await;
    assert!(!text.contains("server=\"big\""), "{text}");
    let removed = hub.rss_kib();
    eprintln!("RSS after the server was removed {} MiB", removed / 1024);
    assert!(removed < base + 48 * 1024, "{removed} KiB");
}

#[tokio::test]
async fn many_long_tool_names_make_a_bounded_scrape() {
    // 1,024 tools of 8 KiB, and 1,000 of 100 bytes.
    let servers = json!({
        "wide": fx(json!({"env": {"FIXTURE_EXTRA_TOOLS": "1024:8192"}})),
        "many": fx(json!({"env": {"FIXTURE_EXTRA_TOOLS": "1000:100"}})),
    });
    let hub = Hub::start(json!({}), servers);
    let mut names = Vec::new();
    for server in ["wide", "many"] {
        let mut c = Mcp::new(&hub, server);
        c.initialize().await;
        let listed = c.post(&req(json!(1), "tools/list", json!({}))).await;
        let tools = listed.last()["result"]["tools"].as_array().unwrap().clone();
        assert!(tools.len() > 1000, "{server}: {}", tools.len());
        // Call 300 distinct listed names (the fixture answers Unknown tool):
        // those past the first 256 the server listed count as `_other`.
        for (i, t) in tools.iter().skip(30).take(300).enumerate() {
            let name = t["name"].as_str().unwrap();
            c.post(&call(10 + i as u64, name, json!({}))).await;
            names.push(name.to_string());
        }
    }
    let text = scrape_with(&hub, TOKEN).await;
    let tools = values_of(&text, "gen_ai_tool_name");
    eprintln!("scrape {} bytes, {} tool labels", text.len(), tools.len());
    assert!(
        tools.iter().all(|t| t.len() <= 128),
        "a label past 128 bytes"
    );
    // At most 256 listed names per server, plus `_other` and the empty one.
    assert!(tools.len() <= 2 * 256 + 2, "{}", tools.len());
    assert!(
        tools.len() > 200,
        "the listed 100-byte names: {}",
        tools.len()
    );
    assert!(tools.iter().any(|t| t == "_other"));
    assert!(text.len() < 4 << 20, "one scrape is {} bytes", text.len());
}

#[tokio::test]
async fn an_error_code_flood_adds_no_series() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({}))}));
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    c.post(&req(json!(1), "tools/list", json!({}))).await;
    for (i, code) in (-32999..=-32000).step_by(3).enumerate() {
        let r = c
            .post(&call(10 + i as u64, "rpc_error", json!({"code": code})))
            .await;
        assert_eq!(r.last()["error"]["code"], code);
    }
    let text = scrape_with(&hub, TOKEN).await;
    let errors = values_of(&text, "error_type");
    eprintln!("{} error types, scrape {} bytes", errors.len(), text.len());
    assert!(errors.len() <= 15, "{errors:?}");
    assert!(errors.iter().any(|e| e == "other"), "{errors:?}");
    assert!(!errors.iter().any(|e| e == "-32999" || e == "-32300"));
    assert!(text.len() < 256 << 10, "{} bytes", text.len());
}

#[tokio::test]
async fn a_token_sees_only_the_servers_it_may_reach() {
    let servers = json!({
        "a": fx(json!({"options": {"authTokens": ["token-a"]}})),
        "b": fx(json!({"options": {"authTokens": ["token-b"]}})),
    });
    let hub = Hub::start(json!({}), servers);
    for (server, token) in [("a", "token-a"), ("b", "token-b")] {
        let mut c = Mcp::new(&hub, server);
        c.token = token.into();
        c.initialize().await;
        c.post(&req(json!(1), "tools/list", json!({}))).await;
        assert_eq!(c.call_text(2, "echo", json!({"text": "x"})).await, "x");
    }
    let a = scrape_with(&hub, "token-a").await;
    assert!(a.contains("server=\"a\""), "{a}");
    assert!(!a.contains("server=\"b\""), "token-a sees b:\n{a}");
    let b = scrape_with(&hub, "token-b").await;
    assert!(
        b.contains("server=\"b\"") && !b.contains("server=\"a\""),
        "{b}"
    );
    // The hub-wide token reaches neither server here.
    let global = scrape_with(&hub, TOKEN).await;
    assert!(!global.contains("server=\"a\"") && !global.contains("server=\"b\""));
    assert!(global.contains("mcphub_http_requests_total"));
}

#[tokio::test]
async fn metrics_tokens_see_every_server() {
    let servers = json!({
        "a": fx(json!({"options": {"authTokens": ["token-a"]}})),
        "b": fx(json!({"options": {"authTokens": ["token-b"]}})),
    });
    let hub = Hub::start(json!({"options": {"metricsTokens": ["scraper"]}}), servers);
    let text = scrape_with(&hub, "scraper").await;
    assert!(text.contains("mcphub_upstream_up{server=\"a\"}"), "{text}");
    assert!(text.contains("mcphub_upstream_up{server=\"b\"}"), "{text}");
}

/// A raw GET of /metrics on `addr` with `host` (and `origin`): the status.
fn raw_get(addr: &str, host: &str, origin: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_listen_refuses_a_rebinding_host() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _hub = Hub::start(
        json!({"options": {"metricsListen": addr}}),
        json!({"fx": fx(json!({}))}),
    );
    assert_eq!(raw_get(&addr, &addr, None), 200);
    assert_eq!(raw_get(&addr, &format!("localhost:{port}"), None), 200);
    // DNS rebinding: the attacker's name, now resolving to loopback.
    for host in [
        format!("attacker.example:{port}"),
        format!("127.0.0.1.attacker.example:{port}"),
        "user@127.0.0.1".to_string(),
        String::new(),
    ] {
        assert_eq!(raw_get(&addr, &host, None), 403, "Host: {host:?}");
    }
    assert_eq!(
        raw_get(&addr, &addr, Some("http://attacker.example")),
        403,
        "a foreign Origin"
    );
    // With allowedHosts the main port's list applies as it is.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _hub = Hub::start(
        json!({"options": {"metricsListen": addr, "allowedHosts": ["metrics.internal"]}}),
        json!({}),
    );
    assert_eq!(raw_get(&addr, "metrics.internal", None), 200);
    assert_eq!(raw_get(&addr, "other.internal", None), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_to_metrics_listen_leave_the_main_port_alone() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let hub = Hub::start_env(
        json!({"options": {"metricsListen": addr}}),
        json!({"fx": fx(json!({}))}),
        &[(NOFILE, "1024")],
    );
    // 1,100 connections that send nothing, more than the hub's descriptors.
    // Those the hub does not accept wait in its listen backlog or in SYN
    // retries: each task holds its connection until it is aborted.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let idle: Vec<_> = (0..1100)
        .map(|_| {
            let (a, tx) = (addr.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(s) = tokio::net::TcpStream::connect(a).await {
                    let _ = tx.send(());
                    std::future::pending::<()>().await;
                    drop(s);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut connected = 0;
    while rx.try_recv().is_ok() {
        connected += 1;
    }
    assert!(connected >= 64, "only {connected} connected");
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let t = Instant::now();
        let s = tokio::time::timeout(Duration::from_secs(5), http.get(hub.url("/healthz")).send())
            .await
            .expect("/healthz hung")
            .unwrap()
            .status();
        let took = t.elapsed();
        assert_eq!(s, 200);
        assert!(took < Duration::from_millis(200), "/healthz took {took:?}");
    }
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    assert_eq!(c.call_text(1, "echo", json!({"text": "x"})).await, "x");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", hub.pid()))
        .unwrap()
        .count();
    eprintln!("hub holds {fds} descriptors; {connected} of 1,100 connections were established");
    assert!(fds < 300, "{fds} descriptors");
    // Once they are gone, a scrape gets through.
    for t in idle {
        t.abort();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    assert_eq!(raw_get(&addr, &addr, None), 200);
    eprintln!("a scrape after them took {:?}", t.elapsed());
}

#[tokio::test]
async fn metrics_listen_closes_a_connection_that_sends_no_request() {
    use std::io::{Read, Write};
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _hub = Hub::start(json!({"options": {"metricsListen": addr}}), json!({}));
    let silent = std::net::TcpStream::connect(&addr).unwrap();
    // Headers that never end, one byte a second.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let _ = slow.write_all(b"GET /metrics HTTP/1.1\r\n");
        for _ in 0..20 {
            std::thread::sleep(Duration::from_secs(1));
            if slow.write_all(b"X").is_err() {
                break;
            }
        }
        t.elapsed()
    });
    let mut silent = silent;
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = silent.read(&mut buf).unwrap_or(0);
    let closed = t.elapsed();
    eprintln!("silent connection closed after {closed:?}");
    assert!(closed < Duration::from_secs(8), "open for {closed:?}");
    assert!(closed >= Duration::from_secs(4), "closed after {closed:?}");
    // hyper may answer 408 before it closes.
    assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "{n} bytes");
    let slow_closed = writer.join().unwrap();
    eprintln!("slow headers cut after {slow_closed:?}");
    assert!(slow_closed < Duration::from_secs(10), "{slow_closed:?}");
}

#[tokio::test]
async fn a_tool_the_server_stopped_listing_leaves_the_scrape_at_a_reload() {
    // Each listing names one new tool (`x<n>-0-…`) and drops the one before.
    let servers = json!({"fx": fx(json!({"env": {"FIXTURE_EXTRA_TOOLS": "1:12:fresh"}}))});
    let hub = Hub::start(json!({}), servers.clone());
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let name_of = |r: &Reply| {
        let tools = r.last()["result"]["tools"].as_array().unwrap().clone();
        tools.last().unwrap()["name"].as_str().unwrap().to_string()
    };
    let first = name_of(&c.post(&req(json!(1), "tools/list", json!({}))).await);
    c.post(&call(2, &first, json!({}))).await;
    let second = name_of(&c.post(&req(json!(3), "tools/list", json!({}))).await);
    assert_ne!(first, second);
    let text = scrape_with(&hub, TOKEN).await;
    assert!(
        text.contains(&format!("gen_ai_tool_name=\"{first}\"")),
        "{text}"
    );
    // The same config again: the server stays. A reload forgets the tools
    // no listing named since the reload before: none before this one, so
    // both stay; then a listing that names neither, and the next one drops them.
    reload(&hub, servers.clone());
    let text = scrape_with(&hub, TOKEN).await;
    assert!(
        text.contains(&format!("gen_ai_tool_name=\"{first}\"")),
        "{text}"
    );
    let third = name_of(&c.post(&req(json!(5), "tools/list", json!({}))).await);
    reload(&hub, servers);
    let text = scrape_with(&hub, TOKEN).await;
    assert!(!text.contains(&first), "{first} is still in:\n{text}");
    assert!(text.contains("server=\"fx\""));
    // The tool it lists now is a label, the one it no longer lists is not.
    c.post(&call(6, &third, json!({}))).await;
    c.post(&call(7, &second, json!({}))).await;
    let text = scrape_with(&hub, TOKEN).await;
    assert!(
        text.contains(&format!("gen_ai_tool_name=\"{third}\"")),
        "{text}"
    );
    assert!(!text.contains(&second), "{second} is still in:\n{text}");
}
