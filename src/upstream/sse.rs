//! A legacy HTTP+SSE (2024-11-05) server as an upstream, e.g. postgres-mcp with
//! `--transport sse`, or anything bridged by supergateway.
//!
//! GET the stream and wait for the `endpoint` event; resolve it against the
//! stream URL and refuse one on another origin (a server must not send the hub's
//! POSTs, with their headers, elsewhere); POST each message there; read every
//! response off the stream. The connection is gone when the stream ends.
//!
//! An event over `maxResponseSize` is skipped without being held in memory:
//! the request it answers (when its id can be read from its first bytes) gets
//! an error naming the limit, and the stream, which carries every other
//! answer, is read on.

use super::events::{Events, Item};
use super::{
    channel_upstream, http_client, parse_messages, salvage_id, set_last_error, snippet, too_large,
    Closed, LastError, Outbox, Upstream,
};
use crate::jsonrpc::{Message, UPSTREAM_ERROR};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use url::Url;

#[derive(Clone)]
pub struct Poster {
    http: reqwest::Client,
    endpoint: Url,
    timeout: Duration,
    /// Weak, so the inbox closes when the stream ends even while posters live.
    inbox: mpsc::WeakSender<Message>,
    server: Arc<str>,
}

pub async fn connect(
    server: &str,
    url: &Url,
    headers: &BTreeMap<String, String>,
    max_response: usize,
    timeout: Duration,
    request_timeout: Duration,
) -> Result<Upstream, String> {
    let http = http_client(headers)?;
    let resp = tokio::time::timeout(
        timeout,
        http.get(url.clone())
            .header("accept", "text/event-stream")
            .send(),
    )
    .await
    .map_err(|_| format!("GET {url}: no answer within {}s", timeout.as_secs()))?
    .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url} answered {}", resp.status()));
    }
    let mut events = Events::new(resp.bytes_stream(), max_response);
    let endpoint = tokio::time::timeout(timeout, async {
        loop {
            match events.next().await {
                Some(Ok(Item::Event(ev))) if ev.event == "endpoint" => {
                    return Ok(String::from_utf8_lossy(&ev.data).into_owned())
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("reading {url}: {}", error_chain(&e))),
                None => return Err(format!("{url} closed the stream before its endpoint event")),
            }
        }
    })
    .await
    .map_err(|_| format!("{url} sent no endpoint event within {}s", timeout.as_secs()))??;
    let endpoint = url
        .join(endpoint.trim())
        .map_err(|e| format!("endpoint {endpoint:?} from {url}: {e}"))?;
    if endpoint.origin() != url.origin() {
        return Err(format!(
            "{url} named an endpoint on another origin ({endpoint}); refusing to post there"
        ));
    }

    let (tx, rx) = mpsc::channel(1024);
    let inbox = tx.downgrade();
    let last_error: LastError = Arc::new(Mutex::new(None));
    let (name, le) = (server.to_string(), last_error.clone());
    let reader = tokio::spawn(async move {
        while let Some(item) = events.next().await {
            match item {
                Ok(Item::Event(ev)) if ev.is_message() => match parse_messages(&ev.data) {
                    Ok(msgs) => {
                        for m in msgs {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(mcp_server = %name, "upstream sent an event that is not JSON-RPC: {e}")
                    }
                },
                Ok(Item::Event(_)) => {}
                Ok(Item::TooLarge { prefix }) => {
                    let why = too_large(&name, max_response);
                    tracing::warn!(mcp_server = %name, "{why}");
                    if let Some(id) = salvage_id(&prefix) {
                        let err = Message::error(Some(id), UPSTREAM_ERROR, why);
                        if tx.send(err).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    set_last_error(&le, format!("the SSE stream failed: {}", error_chain(&e)));
                    return;
                }
            }
        }
        set_last_error(&le, "the SSE stream ended");
    });
    let poster = Poster {
        http,
        endpoint,
        timeout: request_timeout,
        inbox,
        server: server.into(),
    };
    Ok(channel_upstream(
        Outbox::Sse(poster),
        rx,
        last_error,
        vec![reader.abort_handle()],
    ))
}

impl Poster {
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        let body = msg.to_bytes();
        let sent = self
            .http
            .post(self.endpoint.clone())
            .header("content-type", "application/json")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(mcp_server = %self.server, "POST {}: {}", self.endpoint, error_chain(&e));
                return Err(Closed);
            }
        };
        if resp.status().is_success() {
            return Ok(());
        }
        // The server refused this message: answer a request here so it does not hang.
        let status = resp.status();
        let text = snippet(resp).await;
        if let (Some(id), true) = (msg.id().cloned(), msg.is_request()) {
            let err = Message::error(
                Some(id),
                UPSTREAM_ERROR,
                format!("upstream answered HTTP {status}: {text}"),
            );
            if let Some(tx) = self.inbox.upgrade() {
                let _ = tx.send(err).await;
            }
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(Closed);
        }
        Ok(())
    }
}

/// An error with its causes, which reqwest keeps in `source()`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
