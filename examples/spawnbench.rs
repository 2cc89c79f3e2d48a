//! What the sandbox costs at start: time from a client's `initialize` (which
//! makes a per-client server spawn its own child) to the answer, for the
//! fixture server with the default sandbox and with `"sandbox": false`. The
//! HTTP round trip is the same in both, so the difference is the sandbox.
//!
//!     cargo build --release && cargo run --release --example spawnbench
//!
//! Options: --runs N (default 50), --hub PATH, --fixture PATH (default target/release/…).

use serde_json::json;
use std::time::{Duration, Instant};

#[path = "shared/hub.rs"]
mod hub;

const TOKEN: &str = "bench-token";

fn main() {
    let mut runs = 50;
    let mut hub = "target/release/mcp-hub".to_string();
    let mut fixture = "target/release/mcp-fixture".to_string();
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--runs", Some(v)) => runs = v.parse().expect("--runs N"),
            ("--hub", Some(v)) => hub = v.clone(),
            ("--fixture", Some(v)) => fixture = v.clone(),
            _ => panic!("usage: spawnbench [--runs N] [--hub PATH] [--fixture PATH]"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let fx =
        std::fs::canonicalize(&fixture).expect("build the fixture first: cargo build --release");
    let cfg = json!({
        "mcpProxy": {"options": {"authTokens": [TOKEN], "stateDir": dir.path().join("state")}},
        "mcpServers": {
            "sandboxed": {"command": fx, "session": "per-client"},
            "plain": {"command": fx, "session": "per-client", "sandbox": false},
        }
    });
    let (mut child, addr) = hub::start(&hub, &cfg, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let mut report = vec![];
    for server in ["plain", "sandboxed", "plain", "sandboxed"] {
        let mut times = vec![];
        for _ in 0..runs {
            times.push(rt.block_on(one(&client, &addr, server)));
        }
        times.sort();
        report.push((server, times[times.len() / 2], times[times.len() * 9 / 10]));
    }
    // The second pass of each, after the page cache is warm.
    let (p, s) = (&report[2], &report[3]);
    println!("spawn -> initialize answer, {runs} runs each (per-client session, release build)");
    for (name, p50, p90) in [p, s] {
        println!(
            "  {name:<10} p50 {:>6.2} ms  p90 {:>6.2} ms",
            ms(*p50),
            ms(*p90)
        );
    }
    println!("  the sandbox adds {:.2} ms at p50", ms(s.1) - ms(p.1));
    let _ = child.kill();
    let _ = child.wait();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn one(client: &reqwest::Client, addr: &str, server: &str) -> Duration {
    let url = format!("http://{addr}/{server}/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
    let start = Instant::now();
    let r = client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    let session = r.headers().get("mcp-session-id").cloned();
    let body = r.text().await.unwrap();
    let took = start.elapsed();
    assert!(body.contains("serverInfo"), "{server}: {body}");
    if let Some(s) = session {
        let _ = client
            .delete(&url)
            .bearer_auth(TOKEN)
            .header("mcp-session-id", s)
            .send()
            .await;
    }
    took
}
