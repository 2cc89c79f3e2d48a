//! Sessions: how a client's messages reach an upstream and back.
//!
//! - `shared`: one upstream for all clients of a server; ids are rewritten so
//!   clients never see each other's traffic.
//! - `passthrough`: one upstream per client session, forwarded verbatim.
//!
//! A downstream transport hands the session a [`Downstream`] sink; the session
//! calls `deliver` for every message meant for that client. Sessions guarantee
//! that each client request gets exactly one response: the upstream's, or a
//! JSON-RPC error when the upstream dies, times out or cannot start.

pub mod passthrough;
pub mod shared;

use crate::config::{ServerConfig, ToolFilter};
use crate::jsonrpc::{Id, Message, INVALID_PARAMS};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// Who a session is, for logs: the downstream session id, and the config path
/// of the token that opened it (never the token itself).
#[derive(Debug, Default, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub token: Option<String>,
}

/// One audited `tools/call` (with `logEnabled`): started when the call goes up,
/// logged when its answer comes back, times out, or is lost.
pub struct Audit {
    tool: String,
    started: Instant,
    info: Arc<SessionInfo>,
}

impl Audit {
    pub fn start(cfg: &ServerConfig, msg: &Message, info: &Arc<SessionInfo>) -> Option<Audit> {
        if !cfg.log_enabled || msg.method() != Some("tools/call") {
            return None;
        }
        let tool = msg
            .params()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some(Audit {
            tool,
            started: Instant::now(),
            info: info.clone(),
        })
    }

    /// `ok`, `tool-error` (a result with isError) or `error` (a JSON-RPC error).
    pub fn outcome_of(answer: &Message) -> &'static str {
        if answer.0.contains_key("error") {
            "error"
        } else if answer
            .result()
            .and_then(|r| r.get("isError"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            "tool-error"
        } else {
            "ok"
        }
    }

    pub fn finish(self, server: &str, outcome: &str) {
        let ms = self.started.elapsed().as_millis() as u64;
        let token = self.info.token.as_deref().unwrap_or("none");
        tracing::info!(
            target: "mcp_hub::audit",
            mcp_server = server,
            mcp_session = %self.info.id,
            mcp_method = "tools/call",
            mcp_tool = %self.tool,
            duration_ms = ms,
            outcome,
            token,
            "tools/call {}: {outcome} in {ms} ms (token {token})",
            self.tool
        );
    }
}

/// Where a session sends messages for its client.
pub trait Downstream: Send + Sync {
    fn deliver(&self, msg: Message);
    /// The session's upstream is gone for good; the client must re-initialize.
    fn closed(&self, reason: &str);
}

/// The protocol versions the hub accepts from clients, newest first.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
pub const LATEST_PROTOCOL: &str = PROTOCOL_VERSIONS[0];

pub enum Session {
    Shared(shared::Client),
    Passthrough(Arc<passthrough::Passthrough>),
}

impl Session {
    /// Forwards one message from the client. Responses come through the sink.
    pub async fn send(&self, msg: Message) {
        match self {
            Session::Shared(c) => c.send(msg).await,
            Session::Passthrough(p) => p.send(msg).await,
        }
    }

    pub fn close(&self) {
        match self {
            Session::Shared(c) => c.close(),
            Session::Passthrough(p) => p.close(),
        }
    }
}

/// Applies `toolFilter` to a `tools/list` result in place.
pub fn filter_tool_list(filter: &ToolFilter, result: &mut Value) {
    if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
        tools.retain(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| filter.allows(n))
        });
    }
}

/// If `msg` is a `tools/call` the filter blocks, the error to answer it with.
/// A blocked tool is indistinguishable from one that does not exist.
pub fn blocked_call(filter: Option<&ToolFilter>, id: &Id, msg: &Message) -> Option<Message> {
    let filter = filter?;
    if msg.method() != Some("tools/call") {
        return None;
    }
    let name = msg
        .params()
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    (!filter.allows(name)).then(|| {
        Message::error(
            Some(id.clone()),
            INVALID_PARAMS,
            format!("Unknown tool: {name}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_lists_and_calls() {
        let f = ToolFilter::Block(vec!["rm".into()]);
        let mut r = json!({"tools": [{"name": "ls"}, {"name": "rm"}], "nextCursor": "c"});
        filter_tool_list(&f, &mut r);
        assert_eq!(r, json!({"tools": [{"name": "ls"}], "nextCursor": "c"}));
        let id = Id::from(1u64);
        let call = Message::request(id.clone(), "tools/call", json!({"name": "rm"}));
        let err = blocked_call(Some(&f), &id, &call).unwrap();
        assert_eq!(err.0["error"]["message"], json!("Unknown tool: rm"));
        let ok = Message::request(id.clone(), "tools/call", json!({"name": "ls"}));
        assert!(blocked_call(Some(&f), &id, &ok).is_none());
        let allow = ToolFilter::Allow(vec!["ls".into()]);
        assert!(blocked_call(Some(&allow), &id, &call).is_some());
    }
}
