//! The session layer and the link lifecycle in-process, over an in-memory
//! upstream, with tokio's clock paused: routing, deadlines, crashes, backoff,
//! recovery from `failed`, idle stop, and a property test that interleaved
//! clients never see each other's answers.

use super::*;
use crate::config;
use crate::jsonrpc::Id;
use crate::upstream::link::{Connector, Kind, LinkState};
use crate::upstream::{memory, ConnectError};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

fn cfg(extra: Value) -> Arc<ServerConfig> {
    let mut server = json!({"command": "/bin/true", "sandbox": false});
    for (k, v) in extra.as_object().unwrap() {
        server[k] = v.clone();
    }
    let text = json!({"mcpServers": {"fx": server}}).to_string();
    let mut c = config::parse(&text, "t", &|_| None).unwrap();
    Arc::new(c.servers.shift_remove("fx").unwrap())
}

/// The test's side of one in-memory upstream connection.
struct Peer {
    from_hub: mpsc::Receiver<Message>,
    to_hub: mpsc::Sender<Message>,
}

impl Peer {
    async fn recv(&mut self) -> Value {
        self.from_hub
            .recv()
            .await
            .expect("hub sent nothing")
            .to_value()
    }

    /// Answers the hub's handshake (shared links) as a 2025 server: the
    /// `server/discover` probe is an unknown method, then `initialize`.
    async fn handshake(&mut self) {
        let probe = self.recv().await;
        assert_eq!(probe["method"], json!("server/discover"));
        assert_eq!(
            probe["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            json!("2026-07-28")
        );
        self.send(json!({"jsonrpc":"2.0","id": probe["id"], "error": {"code": -32601, "message": "Method not found"}}))
            .await;
        let init = self.recv().await;
        assert_eq!(init["method"], json!("initialize"));
        self.send(json!({"jsonrpc":"2.0","id": init["id"], "result": {
            "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
            "serverInfo": {"name": "mem", "version": "1"}}}))
            .await;
        assert_eq!(
            self.recv().await["method"],
            json!("notifications/initialized")
        );
    }

    async fn send(&self, v: Value) {
        self.to_hub
            .send(Message::from_value(v).unwrap())
            .await
            .unwrap();
    }
}

/// A connector that hands each new connection's peer to the test, and fails
/// to connect while `failing` is non-zero (counting down).
fn connector(failing: Arc<AtomicUsize>) -> (Connector, mpsc::UnboundedReceiver<Peer>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let c: Connector = Arc::new(move || {
        let tx = tx.clone();
        let failing = failing.clone();
        Box::pin(async move {
            if failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(ConnectError::Remote("connection refused".into()));
            }
            let (up, from_hub, to_hub) = memory(64);
            let _ = tx.send(Peer { from_hub, to_hub });
            Ok(up)
        })
    });
    (c, rx)
}

struct Quiet;
impl Downstream for Quiet {
    fn deliver(&self, _: Message) {}
    fn closed(&self, _: &str) {}
}

fn request(id: u64, method: &str) -> Message {
    Message::request(id.into(), method, json!({}))
}

async fn next(rx: &mut outbound::Inbound) -> Value {
    tokio::time::timeout(Duration::from_secs(600), rx.recv())
        .await
        .expect("no answer")
        .expect("stream ended")
        .to_value()
}

fn shared(
    extra: Value,
    failing: usize,
) -> (
    Arc<Upstream>,
    Arc<Supervisor>,
    mpsc::UnboundedReceiver<Peer>,
    Arc<AtomicUsize>,
) {
    let failing = Arc::new(AtomicUsize::new(failing));
    let (c, peers) = connector(failing.clone());
    let sup = Arc::new(Supervisor::new("fx"));
    let (up, _task) = Upstream::spawn_with(cfg(extra), sup.clone(), Kind::Shared, Some(c));
    (up, sup, peers, failing)
}

#[tokio::test(start_paused = true)]
async fn a_crash_fails_what_is_in_flight_and_the_session_carries_on() {
    let (up, sup, mut peers, _) = shared(json!({}), 0);
    let s = up.attach(Arc::new(Quiet), SessionInfo::default(), &sup);
    let (reply, mut rx) = outbound::channel("fx", "s");
    let init = Message::request(
        1u64.into(),
        "initialize",
        json!({"protocolVersion": "2025-06-18"}),
    );
    let (_, mut peer) = tokio::join!(s.request(init, &reply), async {
        let mut p = peers.recv().await.unwrap();
        p.handshake().await;
        p
    });
    let answer = next(&mut rx).await;
    assert_eq!(answer["result"]["protocolVersion"], json!("2025-06-18"));
    assert_eq!(answer["result"]["serverInfo"]["name"], json!("mem"));

    s.request(request(2, "tools/list"), &reply).await;
    assert_eq!(peer.recv().await["method"], json!("tools/list"));
    drop(peer); // the upstream dies with the request in flight
    let lost = next(&mut rx).await;
    assert_eq!(lost["id"], json!(2));
    assert!(lost["error"]["message"].as_str().unwrap().contains("lost"));
    // Restarted after the backoff; the same session goes on without initializing.
    let mut peer = peers.recv().await.unwrap();
    peer.handshake().await;
    let (_, got) = tokio::join!(s.request(request(3, "tools/list"), &reply), peer.recv());
    assert_eq!(got["method"], json!("tools/list"));
    peer.send(json!({"jsonrpc":"2.0","id": got["id"], "result": {"tools": []}}))
        .await;
    assert_eq!(next(&mut rx).await["id"], json!(3));
    assert_eq!(sup.snapshot().restarts, 1);
}

#[tokio::test(start_paused = true)]
async fn deadlines_answer_and_cancel_upstream() {
    let (up, sup, mut peers, _) = shared(json!({"timeout": "3s"}), 0);
    let s = up.attach(Arc::new(Quiet), SessionInfo::default(), &sup);
    let (reply, mut rx) = outbound::channel("fx", "s");
    let started = tokio::time::Instant::now();
    let (_, mut peer) = tokio::join!(s.request(request(1, "tools/call"), &reply), async {
        let mut p = peers.recv().await.unwrap();
        p.handshake().await;
        p
    });
    let sent = peer.recv().await;
    let err = next(&mut rx).await;
    assert_eq!(err["error"]["code"], json!(crate::jsonrpc::TIMEOUT_ERROR));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    let cancel = peer.recv().await;
    assert_eq!(cancel["method"], json!("notifications/cancelled"));
    assert_eq!(cancel["params"]["requestId"], sent["id"]);
    // A late answer is dropped, never delivered twice.
    peer.send(json!({"jsonrpc":"2.0","id": sent["id"], "result": {}}))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(rx.try_recv(), (None, false)));
}

#[tokio::test(start_paused = true)]
async fn backoff_then_failed_then_recovers_on_the_next_request() {
    // Six failed connects: 1+2+4+8+16 s of backoff, then failed.
    let (up, sup, mut peers, failing) = shared(json!({}), 6);
    let s = up.attach(Arc::new(Quiet), SessionInfo::default(), &sup);
    let mut state = up.link.watch_state();
    let mut seen = vec![];
    while !matches!(*state.borrow(), LinkState::Failed(_)) {
        state.changed().await.unwrap();
        seen.push(state.borrow().as_str());
    }
    assert!(seen.contains(&"backoff"), "{seen:?}");
    assert_eq!(sup.snapshot().restarts, 5);
    // The cause goes away; a request asks for an attempt at once instead of
    // waiting out the 60 s backoff.
    failing.store(0, Ordering::SeqCst);
    let (reply, mut rx) = outbound::channel("fx", "s");
    let t0 = tokio::time::Instant::now();
    let (_, mut peer) = tokio::join!(s.request(request(1, "tools/list"), &reply), async {
        // The sixth attempt fails too (its count was taken already) or succeeds.
        let mut p = peers.recv().await.unwrap();
        p.handshake().await;
        p
    });
    let got = peer.recv().await;
    peer.send(json!({"jsonrpc":"2.0","id": got["id"], "result": {"tools": []}}))
        .await;
    assert_eq!(next(&mut rx).await["id"], json!(1));
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn an_idle_shared_upstream_stops_and_restarts_on_demand() {
    let (up, sup, mut peers, _) = shared(json!({"idleTimeout": "10s"}), 0);
    let s = up.attach(Arc::new(Quiet), SessionInfo::default(), &sup);
    let (reply, _rx) = outbound::channel("fx", "s");
    let (_, mut peer) = tokio::join!(s.request(request(1, "ping"), &reply), async {
        let mut p = peers.recv().await.unwrap();
        p.handshake().await;
        p
    });
    drop(s);
    // Closed stdin (the memory channel) after idleTimeout, and the link is idle.
    tokio::time::timeout(Duration::from_secs(30), async {
        while peer.from_hub.recv().await.is_some() {}
    })
    .await
    .expect("upstream not stopped when idle");
    let mut state = up.link.watch_state();
    while *state.borrow() != LinkState::Idle {
        state.changed().await.unwrap();
    }
    let s = up.attach(Arc::new(Quiet), SessionInfo::default(), &sup);
    let (_, mut peer) = tokio::join!(s.request(request(2, "tools/list"), &reply), async {
        let mut p = peers.recv().await.unwrap();
        p.handshake().await;
        p
    });
    assert_eq!(peer.recv().await["method"], json!("tools/list"));
}

#[tokio::test(start_paused = true)]
async fn a_modern_upstream_gets_each_clients_envelope_and_drives_input_required() {
    let (up, sup, mut peers, _) = shared(json!({}), 0);
    let s = up.attach(Arc::new(Quiet), SessionInfo::default(), &sup);
    let (reply, mut rx) = outbound::channel("fx", "s");
    let init = Message::request(
        1u64.into(),
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
               "clientInfo": {"name": "legacy", "version": "1"}}),
    );
    let (_, mut peer) = tokio::join!(s.request(init, &reply), async {
        let mut p = peers.recv().await.unwrap();
        let probe = p.recv().await;
        assert_eq!(probe["method"], json!("server/discover"));
        p.send(json!({"jsonrpc":"2.0","id": probe["id"], "result": {
            "resultType": "complete", "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}}, "ttlMs": 0, "cacheScope": "public",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "2"}}}}))
            .await;
        // The hub's listen for change notifications.
        assert_eq!(p.recv().await["method"], json!("subscriptions/listen"));
        p
    });
    // The 2025 client's initialize is answered from the discover result.
    let answer = next(&mut rx).await;
    assert_eq!(answer["result"]["serverInfo"]["name"], json!("modern"));
    assert_eq!(answer["result"]["protocolVersion"], json!("2025-06-18"));
    // A call carries the client's envelope; input_required becomes a real
    // elicitation request on the call's stream, and the answer a retry.
    let (_, call) = tokio::join!(
        s.request(
            Message::request(2u64.into(), "tools/call", json!({"name": "greet"})),
            &reply
        ),
        peer.recv()
    );
    let meta = &call["params"]["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        json!("2026-07-28")
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        json!({"elicitation": {"form": {}}})
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"],
        json!("legacy")
    );
    peer.send(
        json!({"jsonrpc":"2.0","id": call["id"], "result": {"resultType": "input_required",
        "inputRequests": {"q": {"method": "elicitation/create", "params": {"message": "name?"}}},
        "requestState": "opaque-1"}}),
    )
    .await;
    let asked = next(&mut rx).await;
    assert_eq!(asked["method"], json!("elicitation/create"));
    s.notify(
        Message::from_value(json!({"jsonrpc":"2.0","id": asked["id"], "result": {"action": "accept", "content": {"name": "x"}}}))
            .unwrap(),
    )
    .await;
    let retry = peer.recv().await;
    assert_ne!(retry["id"], call["id"], "a retry has a new id");
    assert_eq!(retry["params"]["requestState"], json!("opaque-1"));
    assert_eq!(
        retry["params"]["inputResponses"]["q"]["content"]["name"],
        json!("x")
    );
    peer.send(json!({"jsonrpc":"2.0","id": retry["id"], "result": {"resultType": "complete", "content": []}}))
        .await;
    let done = next(&mut rx).await;
    assert_eq!(done["id"], json!(2));
    assert_eq!(
        done["result"],
        json!({"content": []}),
        "resultType is not for a 2025 client"
    );
}

mod property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Clients that interleave requests with the same ids, answered by the
        /// upstream in any order, each get exactly their own answers.
        #[test]
        fn interleaved_clients_never_see_each_others_answers(
            plan in proptest::collection::vec((0usize..4, 0u64..3), 1..40),
            order in any::<u64>(),
        ) {
            let mut r = router::Router::new("fx", true, None, Duration::from_secs(60));
            let sinks: Vec<_> = (0..4).map(|_| outbound::channel("fx", "c")).collect();
            let clients: Vec<u64> = (0..4).map(|_| r.attach(Arc::new(Quiet), None)).collect();
            let now = Instant::now();
            let mut sent = vec![];
            let mut expect: Vec<Vec<(Value, Value)>> = vec![vec![]; 4];
            for (i, (c, id)) in plan.iter().enumerate() {
                // The body names its sender; the id repeats across clients.
                let m = Message::request(Id::from(*id), "tools/call", json!({"from": c, "n": i}));
                for e in r.request(clients[*c], m, &sinks[*c].0, now, None) {
                    if let Some(up) = e.deliver() {
                        sent.push((up.to_value(), *c, *id, i));
                    }
                }
            }
            // Answer in a shuffled order; each answer echoes the request's body.
            let mut idx: Vec<usize> = (0..sent.len()).collect();
            let mut x = order | 1;
            for i in (1..idx.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                idx.swap(i, (x % (i as u64 + 1)) as usize);
            }
            for &k in &idx {
                let (req, c, id, _) = &sent[k];
                expect[*c].push((json!(id), req["params"].clone()));
                let answer = Message::from_value(json!({"jsonrpc":"2.0","id": req["id"], "result": req["params"]})).unwrap();
                for e in r.from_upstream(answer) {
                    prop_assert!(e.deliver().is_none());
                }
            }
            for (c, (_, rx)) in sinks.into_iter().enumerate() {
                let mut rx = rx;
                let mut got = vec![];
                while let (Some(m), _) = rx.try_recv() {
                    got.push(m.to_value());
                }
                // Every answer on c's stream is c's, with c's own id, and all of
                // c's requests that went up were answered (duplicates were refused).
                let answered: Vec<_> = got.iter().filter(|m| m.get("result").is_some()).collect();
                prop_assert_eq!(answered.len(), expect[c].len());
                for m in &answered {
                    prop_assert_eq!(&m["result"]["from"], &json!(c));
                    prop_assert!(expect[c].iter().any(|(id, body)| *id == m["id"] && *body == m["result"]));
                }
                for m in got.iter().filter(|m| m.get("error").is_some()) {
                    prop_assert!(m["error"]["message"].as_str().unwrap().contains("already in flight"));
                }
            }
        }
    }
}
