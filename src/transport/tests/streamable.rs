//! Streamable HTTP (2025-03-26 … 2025-11-25) in-process: session-id rules,
//! header checks, bodies, batches, streams and expiry.

use super::*;

const JSON_OR_SSE: &str = "application/json, text/event-stream";

#[tokio::test]
async fn streamable_sessions_answer_expire_on_delete_and_refuse_unknown_ids() {
    let h = harness().await;
    let r = h
        .post(
            "/fx/mcp",
            rpc(1, "initialize", init_params("2025-11-25")),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    // 128 random bits, as hex.
    assert_eq!(sid.len(), 32, "{sid}");
    assert!(sid.chars().all(|c| c.is_ascii_hexdigit()), "{sid}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["serverInfo"]["name"], "memory", "{v}");
    let echo = call(2, "echo", json!({"text": "hi"}));
    let r = h
        .post("/fx/mcp", echo.clone(), &[("mcp-session-id", &sid)])
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "hi", "{v}");
    // No session header: 400; an unknown one: 404.
    assert_eq!(h.post("/fx/mcp", echo.clone(), &[]).await.status(), 400);
    let r = h
        .post("/fx/mcp", echo.clone(), &[("mcp-session-id", "nope")])
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(open_sessions(&h), 1);
    let r = h
        .send(Method::DELETE, "/fx/mcp", &[("mcp-session-id", &sid)])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(open_sessions(&h), 0, "DELETE ends the session");
    let r = h.post("/fx/mcp", echo, &[("mcp-session-id", &sid)]).await;
    assert_eq!(r.status(), 404, "a deleted session is gone");
}

/// Moved from the integration tests (`transports::streamable_session_rules`).
#[tokio::test]
async fn session_ids_are_checked_per_server_and_end_with_delete() {
    let h = harness().await;
    // No session, not initialize: 400 with -32600.
    let r = Reply::read(h.post("/fx/mcp", call(1, "echo", json!({})), &[]).await).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.last()["error"]["code"], -32600, "{:?}", r.messages);
    // Unknown session: 404.
    let zeros = "0".repeat(32);
    let r = h
        .post(
            "/fx/mcp",
            call(1, "echo", json!({})),
            &[("mcp-session-id", &zeros)],
        )
        .await;
    assert_eq!(r.status(), 404);
    let sid = h.initialize("/fx/mcp").await;
    let s: &[(&str, &str)] = &[("mcp-session-id", &sid)];
    // A session id belongs to its server only.
    let ok = call(2, "echo", json!({"text": "ok"}));
    assert_eq!(h.post("/fx2/mcp", ok.clone(), s).await.status(), 404);
    assert_eq!(h.send(Method::DELETE, "/fx2/mcp", s).await.status(), 404);
    assert_eq!(h.post("/fx/mcp", ok, s).await.status(), 200);
    // DELETE ends it; then 404, for a POST and for a second DELETE.
    assert_eq!(h.send(Method::DELETE, "/fx/mcp", s).await.status(), 200);
    let r = h.post("/fx/mcp", call(3, "echo", json!({})), s).await;
    assert_eq!(r.status(), 404);
    assert_eq!(h.send(Method::DELETE, "/fx/mcp", s).await.status(), 404);
}

#[tokio::test]
async fn a_question_during_a_call_streams_on_that_post_and_the_answer_goes_back() {
    let h = harness().await;
    let r = h
        .post(
            "/fx/mcp",
            rpc(
                1,
                "initialize",
                json!({"protocolVersion": "2025-11-25",
                "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}}),
            ),
            &[],
        )
        .await;
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    // The question comes first: the POST turns into a stream.
    let asked = h
        .post(
            "/fx/mcp",
            call(2, "ask", json!({})),
            &[("mcp-session-id", &sid)],
        )
        .await;
    assert_eq!(asked.headers()["content-type"], "text/event-stream");
    let mut stream = Events::new(asked);
    let question = stream
        .message(|m| m["method"] == "elicitation/create")
        .await;
    let answer = json!({"jsonrpc": "2.0", "id": question["id"],
        "result": {"action": "accept", "content": {"name": "ada"}}});
    let r = h.post("/fx/mcp", answer, &[("mcp-session-id", &sid)]).await;
    assert_eq!(r.status(), 202);
    let done = stream
        .message(|m| m["id"] == 2 && m.get("result").is_some())
        .await;
    assert_eq!(
        done["result"]["content"][0]["text"], "answered ada",
        "{done}"
    );
    assert!(
        stream.ends_within(PATIENCE).await,
        "the stream ends after its last answer"
    );
}

/// Moved from `transports::streamable_progress_streams_as_sse_and_keeps_token`.
#[tokio::test]
async fn progress_makes_the_answer_a_stream_and_keeps_the_clients_token() {
    let h = harness().await;
    let sid = h.initialize("/fx/mcp").await;
    let body = rpc(
        3,
        "tools/call",
        json!({"name": "slow", "arguments": {"ms": 200}, "_meta": {"progressToken": "tok-1"}}),
    );
    let r = Reply::read(h.post("/fx/mcp", body, &[("mcp-session-id", &sid)]).await).await;
    assert_eq!(r.status, 200);
    assert!(
        r.sse,
        "progress before the result makes the response a stream"
    );
    let progress: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 4, "{:?}", r.messages);
    assert!(
        progress
            .iter()
            .all(|m| m["params"]["progressToken"] == "tok-1"),
        "{progress:?}"
    );
    assert_eq!(r.last()["id"], 3);
    assert_eq!(r.last()["result"]["content"][0]["text"], "slept 200ms");
}

/// Moved from `transports::streamable_batch_and_notifications`.
#[tokio::test]
async fn a_batch_is_answered_whole_and_notifications_alone_get_202() {
    let h = harness().await;
    let sid = h.initialize("/fx/mcp").await;
    let s: &[(&str, &str)] = &[("mcp-session-id", &sid)];
    let batch = json!([call(1, "echo", json!({"text": "a"})), call(2, "add", json!({"a": 2, "b": 3})),
                       {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}]);
    let r = Reply::read(h.post("/fx/mcp", batch, s).await).await;
    assert_eq!(r.status, 200);
    assert!(!r.sse, "a batch of plain results is one JSON array");
    let mut ids: Vec<i64> = r
        .messages
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
    let sum = r.messages.iter().find(|m| m["id"] == 2).unwrap();
    assert_eq!(sum["result"]["content"][0]["text"], "5", "{sum}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"});
    let r = Reply::read(h.post("/fx/mcp", note, s).await).await;
    assert_eq!(r.status, 202);
    assert!(r.messages.is_empty());
    // An answer to no question is a response: 202 too.
    let stray = json!({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}});
    assert_eq!(h.post("/fx/mcp", stray, s).await.status(), 202);
}

/// Moved from `transports::streamable_header_checks` (its 405 for an
/// unrouted method stays there: that is the router's).
#[tokio::test]
async fn content_type_accept_and_version_headers_are_checked() {
    let h = harness().await;
    let sid = h.initialize("/fx/mcp").await;
    let body = call(1, "echo", json!({})).to_string();
    let send = |ctype: &'static str, accept: &'static str, version: Option<&'static str>| {
        let mut r = h
            .http
            .post(h.url("/fx/mcp"))
            .header("content-type", ctype)
            .header("accept", accept)
            .header("mcp-session-id", sid.clone())
            .body(body.clone());
        if let Some(v) = version {
            r = r.header("mcp-protocol-version", v);
        }
        r.send()
    };
    let r = send("text/plain", JSON_OR_SSE, None).await.unwrap();
    assert_eq!(r.status(), 415);
    let r = send("application/json", "text/html", None).await.unwrap();
    assert_eq!(r.status(), 406);
    let bad = send("application/json", JSON_OR_SSE, Some("1999-01-01"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let text = bad.text().await.unwrap();
    assert!(text.contains("unsupported MCP-Protocol-Version"), "{text}");
    for v in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let r = send("application/json", JSON_OR_SSE, Some(v))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{v}");
    }
    // A client that accepts only SSE gets SSE even for a plain result.
    let r = Reply::read(
        send("application/json", "text/event-stream", None)
            .await
            .unwrap(),
    )
    .await;
    assert!(r.sse);
    assert_eq!(r.last()["id"], 1);
    let get = h
        .send(
            Method::GET,
            "/fx/mcp",
            &[("accept", "application/json"), ("mcp-session-id", &sid)],
        )
        .await;
    assert_eq!(get.status(), 406);
}

/// Moved from `era::the_legacy_path_answers_an_unknown_version_with_32022`.
#[tokio::test]
async fn the_legacy_path_answers_an_unknown_version_with_32022() {
    let h = harness().await;
    let init = rpc(1, "initialize", init_params("2025-11-25"));
    let r = h
        .post("/fx/mcp", init, &[("mcp-protocol-version", "2031-01-01")])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("mcp-session-id").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], json!(-32022), "{v}");
    assert_eq!(v["error"]["data"]["requested"], json!("2031-01-01"));
    assert_eq!(open_sessions(&h), 0, "a refused initialize opens nothing");
}

/// Moved from `transports::bad_bodies_get_clear_errors`.
#[tokio::test]
async fn bad_bodies_get_clear_errors_and_the_session_survives() {
    let h = harness_with(json!({"options": {"maxBodySize": "64KiB"}})).await;
    let sid = h.initialize("/fx/mcp").await;
    let s: &[(&str, &str)] = &[("mcp-session-id", &sid)];
    let r = h
        .post_bytes("/fx/mcp", b"{\"jsonrpc\": \"2.0\", \"id\": 1, ".to_vec(), s)
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    let r = h
        .post_bytes("/fx/mcp", b"{\"id\": 1, \"method\": \"x\"}".to_vec(), s)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32600);
    let big = call(1, "echo", json!({"text": "x".repeat(100_000)}));
    let r = h.post("/fx/mcp", big, s).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600);
    let why = v["error"]["message"].as_str().unwrap();
    assert!(why.contains("maxBodySize"), "{why}");
    // The session survives all of that.
    let r = Reply::read(
        h.post("/fx/mcp", call(2, "echo", json!({"text": "still here"})), s)
            .await,
    )
    .await;
    assert_eq!(r.last()["result"]["content"][0]["text"], "still here");
}

/// Moved from `era::closed_routes_for_modern_clients` (its OAuth and 401
/// checks stay there: they are the router's).
#[tokio::test]
async fn get_and_delete_without_a_session_are_405() {
    let h = harness().await;
    let r = h
        .send(Method::GET, "/fx/mcp", &[("accept", "text/event-stream")])
        .await;
    assert_eq!(r.status(), 405);
    let r = h.send(Method::DELETE, "/fx/mcp", &[]).await;
    assert_eq!(r.status(), 405);
}

/// Moved from `sessions::list_changed_fans_out_to_every_client`.
#[tokio::test]
async fn what_belongs_to_no_request_goes_to_the_get_stream_or_waits_for_one() {
    let h = harness().await;
    let a = h.initialize("/fx/mcp").await;
    let b = h.initialize("/fx/mcp").await;
    let get = |sid: String| {
        h.http
            .get(h.url("/fx/mcp"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", sid)
            .send()
    };
    let stream = get(b.clone()).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["mcp-session-id"], b.as_str());
    let mut b_stream = Events::new(stream);
    // One GET stream per session: a second is refused while it is open.
    assert_eq!(get(b.clone()).await.unwrap().status(), 409);
    // A legacy SSE client on the same upstream hears it too.
    let legacy = h
        .send(Method::GET, "/fx/sse", &[("accept", "text/event-stream")])
        .await;
    let mut legacy = Events::new(legacy);
    let endpoint = legacy
        .until(|seen| {
            seen.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .await;
    let init = rpc(1, "initialize", init_params("2024-11-05"));
    assert_eq!(h.post(&endpoint, init, &[]).await.status(), 202);
    legacy.message(|m| m["id"] == 1).await;
    let r = Reply::read(
        h.post(
            "/fx/mcp",
            call(1, "list_changed", json!({})),
            &[("mcp-session-id", &a)],
        )
        .await,
    )
    .await;
    assert_eq!(r.last()["result"]["content"][0]["text"], "sent");
    let changed = |m: &Value| m["method"] == "notifications/tools/list_changed";
    b_stream.message(changed).await;
    legacy.message(changed).await;
    // `a` had no GET stream open: the notification waits for its next one.
    let mut a_stream = Events::new(get(a).await.unwrap());
    a_stream.message(changed).await;
}

/// Moved from `sessions::logging_during_a_call_streams_on_its_post`.
#[tokio::test]
async fn logging_during_a_call_streams_on_its_post() {
    let h = harness().await;
    let sid = h.initialize("/fx/mcp").await;
    let r = Reply::read(
        h.post(
            "/fx/mcp",
            call(4, "log", json!({})),
            &[("mcp-session-id", &sid)],
        )
        .await,
    )
    .await;
    assert!(r.sse, "{:?}", r.messages);
    let logs: Vec<&Value> = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 3, "{:?}", r.messages);
    assert_eq!(r.last()["id"], 4);
}

/// Moved from `sessions::idle_sessions_expire`.
#[tokio::test]
async fn idle_sessions_expire() {
    let (_logging, logs) = capture_logs();
    let h = harness_with(json!({"options": {"sessionIdleTimeout": "1s"}})).await;
    let sid = h.initialize("/fx/mcp").await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = h
        .post(
            "/fx/mcp",
            call(1, "echo", json!({})),
            &[("mcp-session-id", &sid)],
        )
        .await;
    assert_eq!(r.status(), 404, "an expired session is unknown");
    assert_eq!(open_sessions(&h), 0);
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("session expired"), "{logged}");
}

#[tokio::test]
async fn a_session_with_an_open_get_stream_does_not_expire() {
    let h = harness_with(json!({"options": {"sessionIdleTimeout": "1s"}})).await;
    let sid = h.initialize("/fx/mcp").await;
    let s: &[(&str, &str)] = &[("mcp-session-id", &sid)];
    let stream = h
        .send(
            Method::GET,
            "/fx/mcp",
            &[("mcp-session-id", &sid), ("accept", "text/event-stream")],
        )
        .await;
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let r = h
        .post("/fx/mcp", call(1, "echo", json!({"text": "here"})), s)
        .await;
    assert_eq!(
        r.status(),
        200,
        "a session whose stream is open is not idle"
    );
    drop(stream);
}
