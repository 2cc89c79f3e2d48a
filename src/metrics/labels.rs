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

/// Tool names remembered per server; past this, new names are [`OTHER_TOOL`].
pub const MAX_TOOLS: usize = 256;

/// The longest tool name that becomes a label (bytes); a longer one is
/// [`OTHER_TOOL`].
pub const MAX_TOOL_NAME: usize = 128;

/// Operation series per server and per side (server, client). Past it a new
/// combination folds into one series per method, transport and era with the
/// tool `_other` and the error `other`, so a scrape stays bounded.
pub const MAX_OP_SERIES: usize = 512;

/// The fixed label for a method or an error outside the vocabulary.
pub const OTHER: &str = "other";

/// The label for a tool the server never listed, or past the caps. Not
/// `other`: a server may well list a tool of that name.
pub const OTHER_TOOL: &str = "_other";

/// The JSON-RPC error codes that are `error_type` values: JSON-RPC's own,
/// MCP's, and the hub's (`jsonrpc`, `mcp`). Any other code is `other`.
pub const ERROR_CODES: [i32; 13] = [
    -32700, -32600, -32601, -32602, -32603, // JSON-RPC 2.0
    -32000, -32001, -32800, // upstream error, timeout, cancelled (the hub's)
    -32002, -32042, // MCP: resource not found, URL elicitation required
    -32020, -32021, -32022, // 2026-07-28: header mismatch, capability, version
];

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
        match ERROR_CODES.iter().find(|c| i64::from(**c) == code) {
            Some(c) => ErrorType::Code(*c),
            None => ErrorType::Other,
        }
    }

    pub(super) fn label(self) -> &'static str {
        const NAMES: [&str; 13] = [
            "-32700", "-32600", "-32601", "-32602", "-32603", "-32000", "-32001", "-32800",
            "-32002", "-32042", "-32020", "-32021", "-32022",
        ];
        match self {
            ErrorType::None => "",
            ErrorType::Tool => "tool_error",
            ErrorType::Code(c) => ERROR_CODES
                .iter()
                .position(|k| *k == c)
                .map_or(OTHER, |i| NAMES[i]),
            ErrorType::Other => OTHER,
        }
    }
}

/// A tool name as the series know it: an index into the server's tool
/// table (so a key is `Copy` and recording touches no shared reference
/// count). Never reused while the process lives; [`ToolId::OTHER`] is
/// `_other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolId(pub(super) u64);

impl ToolId {
    pub const OTHER: ToolId = ToolId(u64::MAX);
}

/// The labels of one operation series, within one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct OpKey {
    pub(super) method: &'static str,
    /// A [`ToolId`] of the server's, for `tools/call`.
    pub(super) tool: Option<ToolId>,
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
