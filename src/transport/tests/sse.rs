//! Legacy HTTP+SSE (2024-11-05) in-process: the endpoint event, answers on
//! the stream, keep-alives, and a session that lives as long as its stream.

use super::*;

/// Opens `/fx/sse`; the stream and the endpoint its first event names.
async fn connect(h: &Harness) -> (Events, String) {
    let r = h
        .send(Method::GET, "/fx/sse", &[("accept", "text/event-stream")])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = Events::new(r);
    let endpoint = stream
        .until(|seen| {
            let first = seen
                .split("\n\n")
                .next()
                .filter(|_| seen.contains("\n\n"))?;
            assert!(first.starts_with("event: endpoint\n"), "{seen}");
            first
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .await;
    (stream, endpoint)
}

#[tokio::test]
async fn legacy_sse_announces_its_endpoint_and_answers_on_the_stream() {
    let h = harness().await;
    let (mut stream, endpoint) = connect(&h).await;
    assert!(endpoint.starts_with("/fx/message?sessionId="), "{endpoint}");
    let init = rpc(1, "initialize", init_params("2024-11-05"));
    assert_eq!(h.post(&endpoint, init, &[]).await.status(), 202);
    let echo = call(2, "echo", json!({"text": "over sse"}));
    assert_eq!(h.post(&endpoint, echo, &[]).await.status(), 202);
    let answer = stream.message(|m| m["id"] == 2).await;
    assert_eq!(answer["result"]["content"][0]["text"], "over sse");
    // An unknown session id is refused with 404.
    let r = h
        .post("/fx/message?sessionId=nope", rpc(3, "ping", json!({})), &[])
        .await;
    assert_eq!(r.status(), 404);
}

/// Moved from `transports::legacy_sse_roundtrip` (a shorter run of it stays
/// there, through the binary).
#[tokio::test]
async fn legacy_sse_roundtrip_and_refusals() {
    let h = harness().await;
    let (mut stream, endpoint) = connect(&h).await;
    assert!(
        endpoint.starts_with("/fx/message?sessionId="),
        "relative endpoint without baseURL: {endpoint}"
    );
    let init = rpc(1, "initialize", init_params("2024-11-05"));
    assert_eq!(h.post(&endpoint, init, &[]).await.status(), 202);
    let init = stream.message(|m| m["id"] == 1).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(h.post(&endpoint, note, &[]).await.status(), 202);
    let add = call(2, "add", json!({"a": 40, "b": 2}));
    assert_eq!(h.post(&endpoint, add, &[]).await.status(), 202);
    let r = stream.message(|m| m["id"] == 2).await;
    assert_eq!(r["result"]["content"][0]["text"], "42");
    // Malformed JSON is refused without harming the session.
    let bad = h.post_bytes(&endpoint, b"{nope".to_vec(), &[]).await;
    assert_eq!(bad.status(), 400);
    let echo = call(3, "echo", json!({"text": "ok"}));
    assert_eq!(h.post(&endpoint, echo, &[]).await.status(), 202);
    let r = stream.message(|m| m["id"] == 3).await;
    assert_eq!(r["result"]["content"][0]["text"], "ok");
    // Unknown session: 404; none named: 400.
    let r = h
        .post(
            "/fx/message?sessionId=nope",
            call(1, "echo", json!({})),
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    let r = h.post("/fx/message", call(1, "echo", json!({})), &[]).await;
    assert_eq!(r.status(), 400);
}

/// Moved from `transports::legacy_sse_absolute_endpoint_and_keepalive`.
#[tokio::test]
async fn the_endpoint_is_absolute_under_base_url_and_keepalives_flow() {
    let h = harness_with(json!({"baseURL": "http://127.0.0.1:1/prefix",
        "options": {"sseKeepAlive": "300ms"}}))
    .await;
    let r = h.send(Method::GET, "/fx/sse", &[]).await;
    assert_eq!(r.status(), 200, "no Accept header is */*");
    let mut stream = Events::new(r);
    let seen = stream
        .until(|seen| seen.contains(": keep-alive\n\n").then(|| seen.to_owned()))
        .await;
    assert!(
        seen.contains("data: http://127.0.0.1:1/prefix/fx/message?sessionId="),
        "absolute endpoint from baseURL: {seen}"
    );
}

#[tokio::test]
async fn a_stream_for_another_media_type_is_refused() {
    let h = harness().await;
    let r = h
        .send(Method::GET, "/fx/sse", &[("accept", "application/json")])
        .await;
    assert_eq!(r.status(), 406);
}

#[tokio::test]
async fn the_session_ends_with_its_stream() {
    let h = harness().await;
    let (stream, endpoint) = connect(&h).await;
    let init = rpc(1, "initialize", init_params("2024-11-05"));
    assert_eq!(h.post(&endpoint, init, &[]).await.status(), 202);
    drop(stream);
    // The server notices the hang-up on its next write or poll.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = h
            .post(&endpoint, rpc(2, "ping", json!({})), &[])
            .await
            .status();
        if status == 404 {
            break;
        }
        assert_eq!(status, 202);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session outlived its stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_session_id_belongs_to_its_server_only() {
    let h = harness().await;
    let (_stream, endpoint) = connect(&h).await;
    let other = endpoint.replacen("/fx/", "/fx2/", 1);
    let r = h.post(&other, rpc(1, "ping", json!({})), &[]).await;
    assert_eq!(r.status(), 404);
}
