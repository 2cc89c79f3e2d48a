//! `subscriptions/listen`: the long-lived stream of change notifications a
//! modern client asked for, on a session of its own.

use super::*;

/// The resources one `subscriptions/listen` may subscribe to. A client's
/// listens are sessions, so `maxSessionsPerToken` bounds how many it keeps.
pub const MAX_LISTEN_URIS: usize = 256;

/// `subscriptions/listen`: acknowledged, then the change notifications asked
/// for, each tagged with the listen's id, until the client closes the stream.
pub(super) async fn listen(
    ctx: &Arc<Ctx>,
    keepalive: Duration,
    server: Route,
    msg: Message,
    caps: Value,
    token: Option<Token>,
) -> Response<Body> {
    let Some(id) = msg.id().cloned() else {
        return error(None, INVALID_REQUEST, "a request needs an id", None);
    };
    let n = msg.param::<Value>("notifications").unwrap_or(json!({}));
    let flag = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false);
    let uris: Vec<String> = n
        .get("resourceSubscriptions")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if uris.len() > MAX_LISTEN_URIS {
        // Each is a subscription upstream, held while the stream lives.
        return error(
            Some(id),
            INVALID_PARAMS,
            format!(
                "{} resourceSubscriptions in one listen; at most {MAX_LISTEN_URIS}",
                uris.len()
            ),
            None,
        );
    }
    let filter = Filter {
        id: id.clone(),
        tools: flag("toolsListChanged"),
        prompts: flag("promptsListChanged"),
        resources: flag("resourcesListChanged"),
        uris,
    };
    let mut honored = json!({
        "toolsListChanged": filter.tools,
        "promptsListChanged": filter.prompts,
        "resourcesListChanged": filter.resources,
    });
    if !filter.uris.is_empty() {
        honored["resourceSubscriptions"] = json!(filter.uris);
    }
    let uris = filter.uris.clone();
    let (out, rx) = outbound::channel(server.key(), "listen");
    let sink = Arc::new(Sink {
        out: Mutex::new(Some(out.clone())),
        log: false,
        listen: Some(filter),
    });
    let (session, _) = match open(ctx, &server, sink, &caps, token.as_ref(), false).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    for (i, uri) in uris.iter().enumerate() {
        let (tx, _rx) = outbound::channel(server.key(), "listen-subscribe");
        session
            .request(
                Message::request(
                    Id::Str(format!("mcp-hub-listen-{i}").into()),
                    "resources/subscribe",
                    json!({"uri": uri}),
                ),
                &tx,
            )
            .await;
    }
    let ack = Message::notification(
        "notifications/subscriptions/acknowledged",
        Some(json!({"notifications": honored, "_meta": {mcp::META_SUBSCRIPTION: id.to_value()}})),
    );
    sse_response(
        SseStream {
            first: VecDeque::from([crate::transport::message_event(&ack)]),
            rx,
            keepalive,
            shutdown: ctx.shutdown.clone(),
            done: Box::new(|_| false),
            ended: false,
            // The session lives as long as the stream: closing it unsubscribes.
            guard: session,
        },
        &[],
    )
}
