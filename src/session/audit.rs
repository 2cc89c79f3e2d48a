//! The audit line of a `tools/call` (with `logEnabled`): who called which
//! tool on which server, how it ended and how long it took, with the
//! journal's fields for Loki. On plain stderr, the hub's usual place at
//! load, the line is formatted here, once, straight into a reused buffer
//! (what the subscriber would write, byte for byte) and handed to
//! [`logwriter`]; elsewhere it goes through tracing.

use super::SessionInfo;
use crate::config::ServerConfig;
use crate::jsonrpc::Message;
use crate::systemd::logwriter;
use std::cell::RefCell;
use std::fmt::Write;
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
        let line = Line {
            server,
            // A stateless (2026-07-28) call has no session to name.
            session: (!self.info.id.is_empty()).then_some(self.info.id.as_str()),
            tool: &self.tool,
            ms: self.started.elapsed().as_millis() as u64,
            outcome,
            token: self.info.token.as_deref().unwrap_or("none"),
            client: self.info.caller(),
            subject: self.info.client.as_ref().and_then(|c| c.subject.as_deref()),
            trace: self.trace.as_deref(),
            // A named client by its name; a plain token by its place.
            kind: if self.info.client.is_some() {
                "client"
            } else {
                "token"
            },
        };
        if logwriter::plain() && tracing::enabled!(target: "mcp_hub::audit", tracing::Level::INFO) {
            // The same line the subscriber would write, formatted once into
            // this thread's buffer and handed to the writer.
            thread_local!(static BUF: RefCell<String> = const { RefCell::new(String::new()) });
            BUF.with_borrow_mut(|buf| {
                buf.clear();
                line.format(buf);
                logwriter::write(buf.as_bytes());
                if buf.capacity() > 4096 {
                    *buf = String::new();
                }
            });
        } else {
            line.log();
        }
    }
}

/// One audit line's fields.
struct Line<'a> {
    server: &'a str,
    session: Option<&'a str>,
    tool: &'a str,
    ms: u64,
    outcome: &'a str,
    token: &'a str,
    client: &'a str,
    subject: Option<&'a str>,
    trace: Option<&'a str>,
    kind: &'a str,
}

impl Line<'_> {
    /// Through tracing: to the journal with its fields, or to a terminal.
    fn log(&self) {
        let Line { ms, outcome, .. } = *self;
        tracing::info!(
            target: "mcp_hub::audit",
            mcp_server = self.server,
            mcp_session = self.session.map(tracing::field::display),
            mcp_method = "tools/call",
            // The name is the client's: escaped, and quoted in the message,
            // so it cannot forge log lines.
            mcp_tool = %crate::logsafe::Escaped(self.tool),
            duration_ms = ms,
            outcome,
            token = self.token,
            // MCP_CLIENT in the journal: who called, by name.
            mcp_client = self.client,
            // MCP_SUBJECT: the identity provider's `sub` of a signed-in caller.
            mcp_subject = self.subject,
            // TRACE_ID in the journal; absent when the client sent no trace context.
            trace_id = self.trace,
            "tools/call {:?}: {outcome} in {ms} ms ({} {})",
            self.tool,
            self.kind,
            self.client
        );
    }

    /// The line [`Line::log`] writes to plain stderr, byte for byte (the
    /// subscriber's full format without colours: the message with terminal
    /// escapes escaped, then each present field, strings quoted).
    fn format(&self, out: &mut String) {
        logwriter::timestamp(out, std::time::SystemTime::now());
        out.push_str("  INFO mcp_hub::audit: ");
        let _ = write!(
            logwriter::Sanitized(out),
            "tools/call {:?}: {} in {} ms ({} {})",
            self.tool,
            self.outcome,
            self.ms,
            self.kind,
            self.client
        );
        let _ = write!(out, " mcp_server={:?}", self.server);
        if let Some(s) = self.session {
            let _ = write!(out, " mcp_session={s}");
        }
        out.push_str(" mcp_method=\"tools/call\" mcp_tool=");
        let _ = write!(out, "{}", crate::logsafe::Escaped(self.tool));
        let _ = write!(
            out,
            " duration_ms={} outcome={:?} token={:?} mcp_client={:?}",
            self.ms, self.outcome, self.token, self.client
        );
        if let Some(s) = self.subject {
            let _ = write!(out, " mcp_subject={s:?}");
        }
        if let Some(t) = self.trace {
            let _ = write!(out, " trace_id={t:?}");
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the subscriber the hub installs on plain stderr writes for `line`.
    fn through_tracing(line: &Line) -> String {
        let out = Captured::default();
        let sink = out.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(sub, || line.log());
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_formatted_line_is_the_subscribers_byte_for_byte() {
        let hostile = "echo\n2031-01-01T00:00:00.000000Z  INFO mcp_hub::audit: \x1b[31m\u{85}\u{202e}\"q\"\x07\x7f\\";
        let cases = [
            Line {
                server: "fx",
                session: Some("3f2a-sess"),
                tool: "echo",
                ms: 12,
                outcome: "ok",
                token: "mcpProxy.options.authTokens[0]",
                client: "mcpProxy.options.authTokens[0]",
                subject: None,
                trace: None,
                kind: "token",
            },
            Line {
                server: "odd \"server\"",
                session: None,
                tool: hostile,
                ms: 0,
                outcome: "tool-error",
                token: "none",
                client: "laptop\x1b[2J",
                subject: Some("user@example.org\u{9b}"),
                trace: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                kind: "client",
            },
        ];
        for line in &cases {
            let ours = {
                let mut s = String::new();
                line.format(&mut s);
                s
            };
            let theirs = through_tracing(line);
            // The timestamps are a few microseconds apart; the rest is equal.
            let stamp = "2026-01-01T00:00:00.000000Z".len();
            assert_eq!(
                ours[stamp..],
                theirs[stamp..],
                "ours:   {ours}theirs: {theirs}"
            );
            assert_eq!(ours.as_bytes()[stamp - 1], b'Z');
            assert_eq!(ours.lines().count(), 1, "{ours}");
            assert_eq!(ours[..4], theirs[..4], "the year");
        }
    }
}
