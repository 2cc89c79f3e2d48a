//! The label vocabularies: every value a label may take, apart from the
//! configured server names and the tool names a server listed.

use crate::jsonrpc::Message;

/// The MCP request methods that are label values; anything else is `other`.
pub const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// Tool names remembered per server; past this, new names are `other`.
pub const MAX_TOOLS: usize = 1024;

/// The fixed label for a method or tool name outside the vocabulary.
pub const OTHER: &str = "other";

/// A method name as a label value.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(OTHER)
}

/// How a client reached the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    Sse,
    #[default]
    Streamable,
    /// The OpenAPI facade (`views`).
    Openapi,
}

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Sse, Transport::Streamable, Transport::Openapi];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Streamable => "streamable",
            Transport::Openapi => "openapi",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Which protocol era a request (or an upstream) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    Legacy,
    Modern,
}

impl Era {
    pub fn of(modern: bool) -> Era {
        if modern {
            Era::Modern
        } else {
            Era::Legacy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

/// What the upstream speaks, for the client-side series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UpstreamKind {
    #[default]
    Stdio,
    Sse,
    Streamable,
}

impl UpstreamKind {
    pub fn of(up: &crate::config::Upstream) -> UpstreamKind {
        match up {
            crate::config::Upstream::Stdio(_) => UpstreamKind::Stdio,
            crate::config::Upstream::Sse { .. } => UpstreamKind::Sse,
            crate::config::Upstream::Streamable { .. } => UpstreamKind::Streamable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Stdio => "stdio",
            UpstreamKind::Sse => "sse",
            UpstreamKind::Streamable => "streamable",
        }
    }

    pub fn network(self) -> &'static str {
        match self {
            UpstreamKind::Stdio => "pipe",
            _ => "tcp",
        }
    }
}

/// How an operation ended, as `error_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    None,
    Tool,
    Code(i32),
    Other,
}

impl ErrorType {
    /// From the answer a client gets; `tool_call`: whether `isError` counts.
    pub fn of(answer: &Message, tool_call: bool) -> ErrorType {
        if let Some(code) = answer.error_code() {
            return ErrorType::code(code);
        }
        if answer.is_error() {
            return ErrorType::Other;
        }
        // Most results carry no isError: skip the parse then.
        let flagged = answer
            .result_raw()
            .is_some_and(|r| r.get().contains("\"isError\""));
        if tool_call && flagged && answer.result_field::<bool>("isError") == Some(true) {
            return ErrorType::Tool;
        }
        ErrorType::None
    }

    pub fn code(code: i64) -> ErrorType {
        if (-32999..=-32000).contains(&code) {
            ErrorType::Code(code as i32)
        } else {
            ErrorType::Other
        }
    }

    pub(super) fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            ErrorType::None => "".into(),
            ErrorType::Tool => "tool_error".into(),
            ErrorType::Code(c) => c.to_string().into(),
            ErrorType::Other => OTHER.into(),
        }
    }
}

/// The labels of one operation series, within one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct OpKey {
    pub(super) method: &'static str,
    pub(super) tool: Option<&'static str>,
    pub(super) error: ErrorType,
    /// `Transport::as_str` or `UpstreamKind::as_str`.
    pub(super) transport: &'static str,
    pub(super) era: Era,
}

/// Restart reasons, as `mcphub_upstream_restarts_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    Exit,
    Signal,
    Oom,
    Ping,
    Connect,
}

impl RestartReason {
    pub const ALL: [RestartReason; 5] = [
        RestartReason::Exit,
        RestartReason::Signal,
        RestartReason::Oom,
        RestartReason::Ping,
        RestartReason::Connect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartReason::Exit => "exit",
            RestartReason::Signal => "signal",
            RestartReason::Oom => "oom",
            RestartReason::Ping => "ping",
            RestartReason::Connect => "connect",
        }
    }
}
