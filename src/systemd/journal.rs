//! Where logs go. To journald, with plain field names (`MCP_SERVER`,
//! `MCP_SESSION`, `MCP_METHOD`, `MCP_TOOL`, `DURATION_MS`, and `TRACE_ID`
//! on an audit line whose request carried a W3C `_meta.traceparent`, so Loki
//! lines join the trace a client started; levels map to PRIORITY) when systemd connected our stderr to the journal (JOURNAL_STREAM)
//! and the journal socket answers; otherwise readable lines on stderr. A hub
//! started from a terminal on a systemd machine thus logs to the terminal.
//! `MCP_HUB_LOG_TARGET=journal|stderr` overrides the choice; `MCP_HUB_LOG`
//! takes a tracing filter (default `info`). Lines on stderr go through
//! [`super::logwriter`], which writes them in batches.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter =
        || EnvFilter::try_from_env("MCP_HUB_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = match std::env::var("MCP_HUB_LOG_TARGET").as_deref() {
        Ok("journal") => true,
        Ok("stderr") => false,
        _ => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("mcp-hub".into());
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return;
            }
            Err(e) => eprintln!("mcp-hub: the journal is not reachable ({e}); logging to stderr"),
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !ansi {
        super::logwriter::set_plain();
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(super::logwriter::Stderr)
        .with_ansi(ansi)
        .init();
}
