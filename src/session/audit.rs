//! The audit line of a `tools/call` (with `logEnabled`): who called which
//! tool on which server, how it ended and how long it took, with the
//! journal's fields for Loki.

use super::SessionInfo;
use crate::config::ServerConfig;
use crate::jsonrpc::Message;
use std::sync::Arc;
use tokio::time::Instant;

/// One audited `tools/call` (with `logEnabled`): started when the call goes up,
/// logged when its answer comes back, times out, or is lost.
pub struct Audit {
    tool: String,
    started: Instant,
    info: Arc<SessionInfo>,
    /// The W3C trace id the client sent in `_meta.traceparent`.
    trace: Option<String>,
}

impl Audit {
    pub fn start(cfg: &ServerConfig, msg: &Message, info: &Arc<SessionInfo>) -> Option<Audit> {
        if !cfg.log_enabled || msg.method() != Some("tools/call") {
            return None;
        }
        let tool: String = msg.param("name").unwrap_or_default();
        Some(Audit {
            trace: crate::mcp::trace_id(msg),
            tool,
            started: Instant::now(),
            info: info.clone(),
        })
    }

    /// `ok`, `tool-error` (a result with isError) or `error` (a JSON-RPC error).
    pub fn outcome_of(answer: &Message) -> &'static str {
        if answer.is_error() {
            "error"
        } else if answer.result_field::<bool>("isError") == Some(true) {
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
            // A stateless (2026-07-28) call has no session to name.
            mcp_session = (!self.info.id.is_empty())
                .then(|| tracing::field::display(&self.info.id)),
            mcp_method = "tools/call",
            // The name is the client's: escaped, and quoted in the message,
            // so it cannot forge log lines.
            mcp_tool = %crate::logsafe::Escaped(&self.tool),
            duration_ms = ms,
            outcome,
            token,
            // MCP_CLIENT in the journal: who called, by name.
            mcp_client = self.info.caller(),
            // MCP_SUBJECT: the identity provider's `sub` of a signed-in caller.
            mcp_subject = self.info.client.as_ref().and_then(|c| c.subject.as_deref()),
            // TRACE_ID in the journal; absent when the client sent no trace context.
            trace_id = self.trace.as_deref(),
            "tools/call {:?}: {outcome} in {ms} ms ({} {})",
            self.tool,
            // A named client by its name; a plain token by its place.
            if self.info.client.is_some() { "client" } else { "token" },
            self.info.caller()
        );
    }
}
