//! Many at once: silent connections that try to fill `maxConnections`, and
//! many group sessions over a member with a long tool list.

mod common;
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from loopback address 127.0.0.`host` (Linux routes all of
/// 127.0.0.0/8 to lo).
async fn connect_from(host: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from(([127, 0, 0, host], 0)))?;
    s.connect(to).await
}

/// A GET /healthz on a new connection; how long it took.
async fn healthz_fresh(hub: &Hub) -> Duration {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let t = Instant::now();
    let r = c.get(hub.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t.elapsed()
}

#[tokio::test]
async fn silent_connections_cannot_lock_out_clients_that_speak() {
    let hub = Hub::start(
        json!({"options": {"maxConnections": 50}}),
        json!({"fx": fx(json!({}))}),
    );
    let addr: SocketAddr = hub.base.trim_start_matches("http://").parse().unwrap();
    // Fill the cap with silent connections from 20 addresses.
    let mut silent = std::collections::VecDeque::new();
    for i in 0..50u8 {
        silent.push_back(connect_from(2 + i % 20, addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = healthz_fresh(&hub).await;
    assert!(first < Duration::from_millis(200), "{first:?}");

    // The attack renews: new silent connections all the while, as fast as
    // they go, while a client keeps asking on new connections.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut opened = 0u64;
            let mut i = 0u8;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = connect_from(2 + i % 20, addr).await {
                    silent.push_back(s);
                    opened += 1;
                }
                i = i.wrapping_add(1);
                if silent.len() > 200 {
                    silent.pop_front();
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (opened, silent)
        })
    };
    let mut worst = Duration::ZERO;
    let t = Instant::now();
    let mut asked = 0;
    while t.elapsed() < Duration::from_secs(3) {
        worst = worst.max(healthz_fresh(&hub).await);
        asked += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    assert_eq!(
        c.call_text(1, "echo", json!({"text": "heard"})).await,
        "heard"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (opened, mut silent) = flood.await.unwrap();
    eprintln!("flood: {opened} silent connections; slowest of {asked} /healthz: {worst:?}");
    assert!(opened > 100, "the flood opened only {opened}");
    assert!(
        worst < Duration::from_millis(200),
        "slowest of {asked} /healthz: {worst:?}"
    );
    // The flood's oldest connections were closed by the hub.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(2), silent[0].read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert!(hub.log_contains("closed the oldest connection that was not in a request"));
    drop(silent);
    drop(c);

    // Idle connections that have spoken are closed too, oldest first...
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut spoken = Vec::new();
    for i in 0..60u8 {
        let mut s = connect_from(30 + i % 20, addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains(" 200 "), "{i}");
        spoken.push(s);
    }
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(2), spoken[0].read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    drop(spoken);

    // ...but a connection in a request (here: an open SSE stream) is not:
    // when every connection is, a newcomer is refused, naming the cap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut streams = Vec::new();
    for i in 0..50u8 {
        let mut s = connect_from(30 + i % 20, addr).await.unwrap();
        let head = format!(
            "GET /fx/sse HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\naccept: text/event-stream\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).contains(" 200 "),
            "{i}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        streams.push(s);
    }
    let mut s = connect_from(60, addr).await.unwrap();
    let mut got = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut got)).await;
    assert!(got.contains(" 503 "), "{got}");
    assert!(got.contains("mcpProxy.options.maxConnections"), "{got}");
    drop(streams);
}

#[tokio::test]
async fn group_sessions_share_a_members_long_tool_list() {
    const SESSIONS: usize = 200;
    let hub = Hub::start(
        json!({"options": {"groups": {"all": {"servers": ["big"]}}}}),
        json!({"big": fx(json!({"env": {"FIXTURE_EXTRA_TOOLS": "5000:40"}}))}),
    );
    let http = reqwest::Client::new();
    let mut sessions = Vec::new();
    let mut after_first = 0;
    for chunk in 0..SESSIONS / 8 {
        let opened = (0..8).map(|k| {
            let mut c = Mcp::new(&hub, "g/all");
            c.http = http.clone();
            async move {
                c.initialize().await;
                let r = c
                    .post(&req(json!(chunk * 8 + k), "tools/list", json!({})))
                    .await;
                let tools = r.last()["result"]["tools"].as_array().unwrap().len();
                assert!(tools > 5000, "{tools}");
                c
            }
        });
        sessions.extend(futures_util::future::join_all(opened).await);
        if chunk == 0 {
            after_first = vm_kib(hub.pid(), "VmRSS:");
        }
    }
    // Every session routes by the names it listed.
    let last = sessions.last().unwrap();
    let r = last
        .post(&call(9, "big__echo", json!({"text": "routed"})))
        .await;
    assert_eq!(
        r.last()["result"]["content"][0]["text"],
        "routed",
        "{:?}",
        r.messages
    );
    let (rss, hwm) = (vm_kib(hub.pid(), "VmRSS:"), vm_kib(hub.pid(), "VmHWM:"));
    eprintln!("{SESSIONS} group sessions over 5,000 tools: VmRSS {rss} KiB (after 8: {after_first} KiB), VmHWM {hwm} KiB");
    // Each session's own copy of the names was ~1 MiB: 192 more sessions
    // must cost far less than that.
    assert!(
        rss.saturating_sub(after_first) < 16 * 1024,
        "192 sessions added {} KiB",
        rss.saturating_sub(after_first)
    );
    assert!(rss < 64 * 1024, "VmRSS {rss} KiB");
    assert!(hwm < 64 * 1024, "VmHWM {hwm} KiB");
    drop(sessions);
}
