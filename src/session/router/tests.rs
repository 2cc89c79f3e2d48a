//! The router as plain data: clients, an upstream, and what goes where.

use super::*;
use crate::session::outbound::{self, Inbound};
use serde_json::Value;
use std::sync::Mutex as StdMutex;

/// A session-wide sink that records what it gets.
#[derive(Default)]
struct Rec(StdMutex<Vec<Message>>, StdMutex<bool>);

impl Downstream for Rec {
    fn deliver(&self, msg: Message) {
        self.0.lock().unwrap().push(msg);
    }
    fn closed(&self, _: &str) {
        *self.1.lock().unwrap() = true;
    }
}

impl Rec {
    fn take(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .drain(..)
            .map(|m| m.to_value())
            .collect()
    }
}

fn router(shared: bool) -> Router {
    Router::new("fx", shared, None, Duration::from_secs(10))
}

fn req(id: Value, method: &str, params: Value) -> Message {
    Message::from_value(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})).unwrap()
}

/// Carries out effects; returns what went up.
fn run(fx: Vec<Effect>) -> Vec<Value> {
    fx.into_iter()
        .filter_map(Effect::deliver)
        .map(|m| m.to_value())
        .collect()
}

fn drain(rx: &mut Inbound) -> Vec<Value> {
    let mut out = vec![];
    while let (Some(m), _) = rx.try_recv() {
        out.push(m.to_value());
    }
    out
}

#[test]
fn ids_progress_and_cancellation_are_rewritten_both_ways() {
    let mut r = router(true);
    let (a, b) = (Arc::new(Rec::default()), Arc::new(Rec::default()));
    let ca = r.attach(a.clone(), None);
    let cb = r.attach(b.clone(), None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    let (tb, mut rb) = outbound::channel("fx", "b");
    let now = Instant::now();
    let up_a = run(r.request(
        ca,
        req(
            json!(1),
            "tools/call",
            json!({"_meta": {"progressToken": "pa"}}),
        ),
        &ta,
        now,
        None,
    ));
    let up_b = run(r.request(cb, req(json!(1), "tools/call", json!({})), &tb, now, None));
    let ia = up_a[0]["id"].clone();
    let ib = up_b[0]["id"].clone();
    assert_ne!(ia, ib, "two clients' id 1 must differ upstream");
    assert_eq!(up_a[0]["params"]["_meta"]["progressToken"], ia);
    // Progress goes to a's stream with a's token.
    run(r.from_upstream(
        Message::from_value(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": ia, "progress": 1}}))
            .unwrap(),
    ));
    assert_eq!(drain(&mut ra)[0]["params"]["progressToken"], json!("pa"));
    // b cancels its request: the upstream hears the upstream id, b's POST ends with an error.
    let up = run(r.from_client(
        cb,
        Message::from_value(
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": 1}}),
        )
        .unwrap(),
    ));
    assert_eq!(up[0]["params"]["requestId"], ib);
    let got = drain(&mut rb);
    assert_eq!(got[0]["id"], json!(1));
    assert_eq!(got[0]["error"]["code"], json!(CANCELLED));
    // a's answer comes back with a's id, to a only.
    run(r.from_upstream(
        Message::from_value(json!({"jsonrpc":"2.0","id": ia, "result": {"ok": true}})).unwrap(),
    ));
    let got = drain(&mut ra);
    assert_eq!(
        got,
        vec![json!({"jsonrpc":"2.0","id":1,"result":{"ok":true}})]
    );
    assert!(drain(&mut rb).is_empty());
    assert!(a.take().is_empty() && b.take().is_empty());
}

#[test]
fn server_requests_go_only_where_they_can_be_attributed() {
    let mut r = router(true);
    let (a, b) = (Arc::new(Rec::default()), Arc::new(Rec::default()));
    let ca = r.attach(a.clone(), None);
    let cb = r.attach(b.clone(), None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    let (tb, _rb) = outbound::channel("fx", "b");
    let now = Instant::now();
    let sampling = || {
        Message::from_value(
            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}),
        )
        .unwrap()
    };
    // Nobody waiting: refused.
    let up = run(r.from_upstream(sampling()));
    assert!(up[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no client request"));
    // Only a waits: a gets it on its request's stream, with a hub id.
    run(r.request(ca, req(json!(1), "tools/call", json!({})), &ta, now, None));
    assert!(run(r.from_upstream(sampling())).is_empty());
    let got = drain(&mut ra);
    assert_eq!(got[0]["method"], json!("sampling/createMessage"));
    let hub_id = got[0]["id"].clone();
    // b cannot answer it; a can, and the upstream sees its own id.
    let answer = |id: Value| {
        Message::from_value(json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant"}})).unwrap()
    };
    assert!(run(r.from_client(cb, answer(hub_id.clone()))).is_empty());
    let up = run(r.from_client(ca, answer(hub_id)));
    assert_eq!(up[0]["id"], json!("s1"));
    // Both wait: ambiguous, refused, nobody sees the prompt.
    run(r.request(cb, req(json!(1), "tools/call", json!({})), &tb, now, None));
    let up = run(r.from_upstream(sampling()));
    assert!(up[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ambiguous in shared mode; use per-client"));
    assert!(drain(&mut ra).is_empty());
    assert!(a.take().is_empty() && b.take().is_empty());
}

#[test]
fn a_request_waiting_on_its_own_question_does_not_make_anothers_ambiguous() {
    let mut r = router(true);
    let (a, b) = (Arc::new(Rec::default()), Arc::new(Rec::default()));
    let ca = r.attach(a.clone(), None);
    let cb = r.attach(b.clone(), None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    let (tb, mut rb) = outbound::channel("fx", "b");
    let now = Instant::now();
    let ask = |id: &str| {
        Message::from_value(
            json!({"jsonrpc":"2.0","id":id,"method":"elicitation/create","params":{}}),
        )
        .unwrap()
    };
    // a's call asks a question, which a has not answered yet (a held call).
    run(r.request(ca, req(json!(1), "tools/call", json!({})), &ta, now, None));
    assert!(run(r.from_upstream(ask("qa"))).is_empty());
    let qa = drain(&mut ra)[0]["id"].clone();
    // b calls and its server asks: b's question is b's, not ambiguous.
    run(r.request(cb, req(json!(1), "tools/call", json!({})), &tb, now, None));
    assert!(
        run(r.from_upstream(ask("qb"))).is_empty(),
        "routed, not refused"
    );
    let got = drain(&mut rb);
    assert_eq!(got[0]["method"], json!("elicitation/create"));
    assert!(drain(&mut ra).is_empty(), "a does not see b's question");
    // a answers its own: that reaches the upstream under the server's id.
    let answer = |id: Value| {
        Message::from_value(json!({"jsonrpc":"2.0","id":id,"result":{"action":"accept"}})).unwrap()
    };
    assert_eq!(run(r.from_client(ca, answer(qa)))[0]["id"], json!("qa"));
    // Now both wait and neither is asked: a new question is ambiguous again.
    assert_eq!(
        run(r.from_client(cb, answer(got[0]["id"].clone())))[0]["id"],
        json!("qb")
    );
    let up = run(r.from_upstream(ask("qc")));
    assert!(up[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ambiguous"));
}

#[test]
fn a_question_on_a_requests_own_stream_goes_to_that_requests_client() {
    let mut r = router(true);
    let (a, b) = (Arc::new(Rec::default()), Arc::new(Rec::default()));
    let ca = r.attach(a.clone(), None);
    let cb = r.attach(b.clone(), None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    let (tb, mut rb) = outbound::channel("fx", "b");
    let now = Instant::now();
    let up_a = run(r.request(ca, req(json!(1), "tools/call", json!({})), &ta, now, None));
    run(r.request(cb, req(json!(1), "tools/call", json!({})), &tb, now, None));
    let on = Id::from_value(&up_a[0]["id"]).unwrap();
    let ask = Message::from_value(
        json!({"jsonrpc":"2.0","id":"q","method":"elicitation/create","params":{}}),
    )
    .unwrap();
    // Both wait, yet the upstream said whose request the question came with.
    assert!(run(r.from_upstream_on(ask, &on)).is_empty());
    let got = drain(&mut ra);
    assert_eq!(got[0]["method"], json!("elicitation/create"));
    assert!(drain(&mut rb).is_empty());
    let answer =
        Message::from_value(json!({"jsonrpc":"2.0","id":got[0]["id"],"result":{}})).unwrap();
    assert!(
        run(r.from_client(cb, answer.clone())).is_empty(),
        "not b's to answer"
    );
    assert_eq!(run(r.from_client(ca, answer))[0]["id"], json!("q"));
    // Without that word, the same question is ambiguous.
    let ask = Message::from_value(
        json!({"jsonrpc":"2.0","id":"q2","method":"elicitation/create","params":{}}),
    )
    .unwrap();
    assert!(run(r.from_upstream(ask))[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ambiguous"));
}

#[test]
fn a_per_client_upstream_routes_to_its_one_client() {
    let mut r = router(false);
    let a = Arc::new(Rec::default());
    r.attach(a.clone(), None);
    let up = run(r.from_upstream(
        Message::from_value(json!({"jsonrpc":"2.0","id":5,"method":"roots/list"})).unwrap(),
    ));
    assert!(up.is_empty());
    assert_eq!(a.take()[0]["method"], json!("roots/list"));
}

#[test]
fn resource_updates_reach_subscribers_only() {
    let mut r = router(true);
    let (a, b) = (Arc::new(Rec::default()), Arc::new(Rec::default()));
    let ca = r.attach(a.clone(), None);
    let cb = r.attach(b.clone(), None);
    let (ta, _ra) = outbound::channel("fx", "a");
    let (tb, mut rb) = outbound::channel("fx", "b");
    let now = Instant::now();
    let sub = |id| {
        req(
            json!(id),
            "resources/subscribe",
            json!({"uri": "file:///x"}),
        )
    };
    // The first subscriber's request goes up; the second is answered here.
    assert_eq!(run(r.request(ca, sub(1), &ta, now, None)).len(), 1);
    assert!(run(r.request(cb, sub(2), &tb, now, None)).is_empty());
    assert_eq!(drain(&mut rb)[0]["result"], json!({}));
    let updated = |uri: &str| {
        Message::from_value(json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri": uri}}))
            .unwrap()
    };
    run(r.from_upstream(updated("file:///x")));
    assert_eq!(a.take().len(), 1);
    assert_eq!(b.take().len(), 1);
    run(r.from_upstream(updated("file:///other")));
    assert!(a.take().is_empty() && b.take().is_empty());
    // b leaves: the upstream subscription stays for a; when a leaves it goes.
    assert!(run(r.detach(cb)).is_empty());
    run(r.from_upstream(updated("file:///x")));
    assert_eq!(a.take().len(), 1);
    let up = run(r.detach(ca));
    assert!(
        up.iter()
            .any(|m| m["method"] == json!("resources/unsubscribe")),
        "{up:?}"
    );
}

#[test]
fn deadlines_duplicates_and_crashes_answer_every_request() {
    let mut r = router(true);
    let a = Arc::new(Rec::default());
    let ca = r.attach(a.clone(), None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    let now = Instant::now();
    run(r.request(ca, req(json!(1), "tools/call", json!({})), &ta, now, None));
    // The same id again while the first is in flight: refused at once.
    assert!(run(r.request(ca, req(json!(1), "tools/call", json!({})), &ta, now, None)).is_empty());
    let got = drain(&mut ra);
    assert!(got[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already in flight"));
    // Past its deadline: a timeout error down, a cancellation up.
    let up = run(r.expire(now + Duration::from_secs(11)));
    assert_eq!(up[0]["method"], json!("notifications/cancelled"));
    assert_eq!(drain(&mut ra)[0]["error"]["code"], json!(TIMEOUT_ERROR));
    // A crash fails what is in flight.
    run(r.request(ca, req(json!(2), "tools/list", json!({})), &ta, now, None));
    run(r.fail_all("server \"fx\": exited with status 1"));
    let got = drain(&mut ra);
    assert_eq!(got[0]["id"], json!(2));
    assert!(got[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exited"));
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn tool_filter_hides_and_refuses() {
    let mut r = Router::new(
        "fx",
        true,
        Some(ToolFilter::Block(vec!["rm".into()])),
        Duration::from_secs(10),
    );
    let a = Arc::new(Rec::default());
    let ca = r.attach(a, None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    let now = Instant::now();
    assert!(run(r.request(
        ca,
        req(json!(1), "tools/call", json!({"name": "rm"})),
        &ta,
        now,
        None
    ))
    .is_empty());
    assert_eq!(
        drain(&mut ra)[0]["error"]["message"],
        json!("Unknown tool: rm")
    );
    let up = run(r.request(ca, req(json!(2), "tools/list", json!({})), &ta, now, None));
    run(r.from_upstream(
        Message::from_value(json!({"jsonrpc":"2.0","id": up[0]["id"], "result": {"tools":[{"name":"ls"},{"name":"rm"}]}}))
            .unwrap(),
    ));
    assert_eq!(
        drain(&mut ra)[0]["result"],
        json!({"tools":[{"name":"ls"}]})
    );
}

#[test]
fn a_client_that_leaves_gets_its_waiting_requests_answered() {
    let mut r = router(false);
    let a = Arc::new(Rec::default());
    let ca = r.attach(a, None);
    let (ta, mut ra) = outbound::channel("fx", "a");
    run(r.request(
        ca,
        req(json!(9), "tools/call", json!({})),
        &ta,
        Instant::now(),
        None,
    ));
    let up = run(r.detach(ca));
    assert_eq!(up[0]["method"], json!("notifications/cancelled"));
    let got = drain(&mut ra);
    assert_eq!(got[0]["id"], json!(9));
    assert!(got[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("session ended"));
}
