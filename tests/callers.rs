//! Who is calling, against the session caps: a named client at its
//! `maxSessions` closes its own least recently used idle session and never
//! touches another client's; with no token configured, one address is
//! refused past `maxSessionsPerAddress` while another is still served.

mod common;
use common::*;
use serde_json::{json, Value};
use std::net::IpAddr;

/// An `initialize` from `from` with `token`: its status, session id and body.
async fn initialize(
    c: &reqwest::Client,
    hub: &Hub,
    token: Option<&str>,
) -> (u16, Option<String>, String) {
    let mut r = c
        .post(hub.url("/fx/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&req(json!(1), "initialize", init_params("2025-06-18")));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, sid, resp.text().await.unwrap())
}

/// A ping on an open session: 200 while it lives, 404 once it is closed.
async fn ping(c: &reqwest::Client, hub: &Hub, token: &str, sid: &str) -> u16 {
    c.post(hub.url("/fx/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&req(json!(2), "ping", json!({})))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_client_at_its_cap_closes_its_own_oldest_idle_session_and_never_locks_another_out() {
    let proxy = json!({"options": {"clients": {
        "laptop": {"token": "laptop-token", "maxSessions": 4},
        "desktop": {"token": "desktop-token", "maxSessions": 16},
    }}});
    let hub = Hub::start(proxy, json!({"fx": fx(json!({}))}));
    let c = client_from([127, 0, 0, 1]);
    let (s, desktop, _) = initialize(&c, &hub, Some("desktop-token")).await;
    assert_eq!(s, 200);
    let desktop = desktop.unwrap();
    let mut laptop = Vec::new();
    for i in 0..2000 {
        let (s, sid, body) = initialize(&c, &hub, Some("laptop-token")).await;
        assert_eq!(s, 200, "laptop's initialize #{i}: {body}");
        laptop.push(sid.unwrap());
        if i % 250 == 0 {
            // desktop at the same time: never refused, its session never taken.
            let (s, _, body) = initialize(&c, &hub, Some("desktop-token")).await;
            assert_eq!(s, 200, "desktop's initialize while laptop has {i}: {body}");
        }
    }
    // The oldest were closed to make room; the newest four live.
    assert_eq!(ping(&c, &hub, "laptop-token", &laptop[0]).await, 404);
    assert_eq!(ping(&c, &hub, "laptop-token", &laptop[1995]).await, 404);
    for sid in &laptop[1996..] {
        assert_eq!(ping(&c, &hub, "laptop-token", sid).await, 200);
    }
    // desktop's first session is its own: laptop's flood never closed it.
    assert_eq!(ping(&c, &hub, "desktop-token", &desktop).await, 200);
    assert!(hub.log_contains("client:laptop is at its maxSessions"));
    // /status shows an operator each client's open sessions and last use.
    let status = hub.status().await;
    let laptop = status["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "laptop")
        .unwrap()
        .clone();
    assert_eq!(laptop["sessions"], 4, "{status}");
    assert!(
        laptop["lastUsed"].as_str().unwrap().starts_with("20"),
        "{laptop}"
    );
}

#[tokio::test]
async fn with_no_token_one_address_is_refused_past_its_cap_and_another_is_served() {
    let hub = Hub::start(
        json!({"options": {"authTokens": []}}),
        json!({"fx": fx(json!({}))}),
    );
    let one = client_from([127, 0, 0, 1]);
    let (mut ok, mut refused) = (0u32, 0u32);
    let mut said: Option<Value> = None;
    let total = 50_000;
    let mut i = 0;
    while i < total {
        // 32 at a time on keep-alive connections.
        let batch: Vec<_> = (0..32.min(total - i))
            .map(|_| {
                let c = one.clone();
                let url = hub.url("/fx/mcp");
                tokio::spawn(async move {
                    let r = c
                        .post(url)
                        .header("accept", "application/json, text/event-stream")
                        .json(&req(json!(1), "initialize", init_params("2025-06-18")))
                        .send()
                        .await
                        .unwrap();
                    (r.status().as_u16(), r.text().await.unwrap())
                })
            })
            .collect();
        for b in batch {
            let (s, body) = b.await.unwrap();
            match s {
                200 => ok += 1,
                503 => {
                    refused += 1;
                    said.get_or_insert_with(|| serde_json::from_str(&body).unwrap());
                }
                other => panic!("initialize answered {other}: {body}"),
            }
            i += 1;
        }
    }
    assert_eq!(ok, 1024, "maxSessionsPerAddress defaults to 1024");
    assert_eq!(refused, total - 1024);
    let msg = said.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("mcpProxy.options.maxSessionsPerAddress"),
        "{msg}"
    );
    // Another address has a cap of its own.
    let two = client_from([127, 0, 0, 2]);
    let (s, _, body) = initialize(&two, &hub, None).await;
    assert_eq!(s, 200, "{body}");
}
