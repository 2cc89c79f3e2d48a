//! The hub's Prometheus metrics: what is counted, under which labels, and how
//! a scrape renders it (`GET /metrics`, served by `http::metrics`).
//!
//! Names follow the OpenTelemetry MCP semantic conventions as a Prometheus
//! exporter writes them (`mcp.server.operation.duration` in seconds becomes
//! `mcp_server_operation_duration_seconds`, `error.type` becomes `error_type`):
//!
//! - `mcp_server_operation_duration_seconds{mcp_method_name, gen_ai_tool_name,
//!   error_type, server, transport, protocol_era}`: the hub as server, from the
//!   moment a client request enters a session until its answer is handed to
//!   the client's stream. `transport` is how the client came: `sse`,
//!   `streamable` or `openapi` ([`Transport`]).
//! - `mcp_client_operation_duration_seconds{…, network_transport}`: the hub
//!   as client, from the moment the request is handed to the upstream until
//!   the upstream answers (or the hub gives up: timeout, upstream lost).
//!   `transport` is what the upstream speaks (`stdio`, `sse`, `streamable`)
//!   and `network_transport` is `pipe` for stdio, `tcp` otherwise.
//! - `mcp_server_session_duration_seconds{server, transport}`: client sessions
//!   from open to close (legacy SSE and streamable; a 2026-07-28 request is no
//!   session).
//! - `mcphub_sessions_active{server, transport}`, `mcphub_upstream_up{server}`,
//!   `mcphub_upstream_state{server, state}` (one series per state, 1 for the
//!   current one), `mcphub_upstream_restarts_total{server, reason}`,
//!   `mcphub_http_requests_total{route, code}`, `mcphub_auth_failures_total{reason}`,
//!   `mcphub_child_memory_bytes{server}`, `mcphub_child_cpu_seconds_total{server}`
//!   and the `process_*` metrics of the hub (`system`).
//!
//! Label values, and why none of them can be chosen by a client:
//! - `server`: a configured name. `transport`, `network_transport`,
//!   `protocol_era` (`legacy` for 2024-11-05 … 2025-11-25, `modern` for
//!   2026-07-28), `state`, `reason`, `route` (a template such as
//!   `/{server}/mcp`) and `code` (an HTTP status): fixed vocabularies.
//! - `mcp_method_name`: one of the MCP request methods ([`METHODS`]); any
//!   other method is `other`.
//! - `gen_ai_tool_name`: set on `tools/call` only (empty otherwise), and only
//!   to a name the server itself listed in a `tools/list` answer (at most
//!   [`MAX_TOOLS`] per server); a name the server never listed is `other`.
//! - `error_type`: empty on success, as the conventions leave `error.type`
//!   unset then; `tool_error` for a result with `isError: true`; else the
//!   JSON-RPC error code as a string when it lies in -32999 … -32000 (the
//!   range JSON-RPC reserves, plus MCP's and the hub's own codes), and
//!   `other` for any other code.
//!
//! Session ids, tokens, users, arguments and raw paths never become labels;
//! they are in the journal.
//!
//! Off the hot path: recording a call takes no lock shared across requests.
//! Each series is a [`hist::Hist`] of atomic buckets; the series of a server
//! live in lock-free maps (`papaya`, epoch-based: a lookup is a hash and a
//! few loads, an insert a compare-and-swap) held by that server's
//! [`ServerMetrics`], which each session's router resolves once when it is
//! built. prometheus-client's `Family` (a `RwLock`) and `Histogram` (a mutex
//! per observation) are used for nothing on that path; the crate is the
//! encoder: a scrape registers a [`prometheus_client::collector::Collector`]
//! that walks these maps and the hub's registry.

pub mod hist;
pub mod system;

use crate::jsonrpc::Message;
use hist::Hist;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

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

    fn index(self) -> usize {
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

    fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            ErrorType::None => "".into(),
            ErrorType::Tool => "tool_error".into(),
            ErrorType::Code(c) => c.to_string().into(),
            ErrorType::Other => OTHER.into(),
        }
    }
}

/// The labels of one operation series, within one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OpKey {
    method: &'static str,
    tool: Option<Arc<str>>,
    error: ErrorType,
    /// `Transport::as_str` or `UpstreamKind::as_str`.
    transport: &'static str,
    era: Era,
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

/// Everything counted for one configured server. Outlives reloads: a server
/// changed by a reload keeps counting into the same series.
pub struct ServerMetrics {
    name: Arc<str>,
    tools: papaya::HashSet<Arc<str>>,
    server_ops: papaya::HashMap<OpKey, Hist>,
    client_ops: papaya::HashMap<OpKey, Hist>,
    sessions: [AtomicI64; 3],
    session_time: [Hist; 3],
    restarts: [AtomicU64; 5],
}

impl ServerMetrics {
    fn new(name: &str) -> ServerMetrics {
        ServerMetrics {
            name: name.into(),
            tools: papaya::HashSet::new(),
            server_ops: papaya::HashMap::new(),
            client_ops: papaya::HashMap::new(),
            sessions: Default::default(),
            session_time: Default::default(),
            restarts: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label for a tool a client names: the server's own listed name, or `other`.
    pub fn tool_label(&self, name: &str) -> Arc<str> {
        static OTHER_ARC: OnceLock<Arc<str>> = OnceLock::new();
        match self.tools.pin().get(name) {
            Some(t) => t.clone(),
            None => OTHER_ARC.get_or_init(|| OTHER.into()).clone(),
        }
    }

    /// Remembers the tool names a server listed (a `tools/list` answer).
    pub fn listed_tools(&self, answer: &Message) {
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        let Some(tools) = answer.result_field::<Vec<Named>>("tools") else {
            return;
        };
        let set = self.tools.pin();
        for t in tools {
            if set.len() >= MAX_TOOLS {
                break;
            }
            if !set.contains(t.name.as_str()) {
                set.insert(t.name.into());
            }
        }
    }

    /// A call the hub answered, as server to its client.
    pub fn server_op(&self, call: &Call, error: ErrorType) {
        let key = OpKey {
            method: call.method,
            tool: call.tool.clone(),
            error,
            transport: call.transport.as_str(),
            era: call.era,
        };
        observe(&self.server_ops, key, call.started.elapsed());
    }

    /// A request the hub sent upstream, as client, and how it ended.
    pub fn client_op(&self, call: &Call, kind: UpstreamKind, era: Era, error: ErrorType) {
        let Some(sent) = call.sent else { return };
        let key = OpKey {
            method: call.method,
            tool: call.tool.clone(),
            error,
            transport: kind.as_str(),
            era,
        };
        observe(&self.client_ops, key, sent.elapsed());
    }

    pub fn session_opened(&self, t: Transport) {
        self.sessions[t.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_closed(&self, t: Transport, lasted: Duration) {
        self.sessions[t.index()].fetch_sub(1, Ordering::Relaxed);
        self.session_time[t.index()].observe(lasted);
    }

    pub fn restarted(&self, why: RestartReason) {
        self.restarts[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Observations of the server-side series so far (for tests).
    pub fn server_calls(&self) -> u64 {
        self.server_ops.pin().values().map(Hist::count).sum()
    }
}

/// Records into the series `key`, made on its first observation. A lookup
/// first: the series exists on every call but the first.
fn observe(map: &papaya::HashMap<OpKey, Hist>, key: OpKey, d: Duration) {
    let m = map.pin();
    match m.get(&key) {
        Some(h) => h.observe(d),
        None => m.get_or_insert_with(key, Hist::default).observe(d),
    }
}

/// One client request on its way through the hub: started when it enters a
/// session, labelled from the server's own vocabulary, finished with the
/// answer its client gets.
#[derive(Debug, Clone)]
pub struct Call {
    started: Instant,
    /// When it went upstream, if it did.
    sent: Option<Instant>,
    method: &'static str,
    tool: Option<Arc<str>>,
    transport: Transport,
    era: Era,
}

impl Call {
    /// A request entering a session of `server`; `tool`: the name a
    /// `tools/call` asks for.
    pub fn start(
        server: &ServerMetrics,
        method: &str,
        tool: Option<&str>,
        transport: Transport,
        era: Era,
    ) -> Call {
        let method = method_label(method);
        let tool = (method == "tools/call").then(|| server.tool_label(tool.unwrap_or("")));
        Call {
            started: Instant::now(),
            sent: None,
            method,
            tool,
            transport,
            era,
        }
    }

    /// The request goes upstream now.
    pub fn sent(&mut self) {
        self.sent = Some(Instant::now());
    }

    pub fn is_tool_call(&self) -> bool {
        self.method == "tools/call"
    }

    pub fn method(&self) -> &'static str {
        self.method
    }
}

/// Every series of the process.
pub struct Metrics {
    servers: papaya::HashMap<Arc<str>, Arc<ServerMetrics>>,
    http: papaya::HashMap<(&'static str, u16), AtomicU64>,
    auth: [AtomicU64; 2],
}

/// Reasons for `mcphub_auth_failures_total`.
#[derive(Debug, Clone, Copy)]
pub enum AuthFailure {
    /// No bearer token.
    Missing,
    /// A token that no list holds.
    Invalid,
}

impl AuthFailure {
    fn as_str(i: usize) -> &'static str {
        ["missing", "invalid"][i]
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            servers: papaya::HashMap::new(),
            http: papaya::HashMap::new(),
            auth: Default::default(),
        }
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

impl Metrics {
    /// A server's metrics, made on first use (by the server's name).
    pub fn server(&self, name: &str) -> Arc<ServerMetrics> {
        let m = self.servers.pin();
        if let Some(s) = m.get(name) {
            return s.clone();
        }
        m.get_or_insert_with(name.into(), || Arc::new(ServerMetrics::new(name)))
            .clone()
    }

    /// One HTTP request answered: `route` is a template, never a raw path.
    pub fn http(&self, route: &'static str, code: u16) {
        let m = self.http.pin();
        match m.get(&(route, code)) {
            Some(n) => n.fetch_add(1, Ordering::Relaxed),
            None => m
                .get_or_insert_with((route, code), || AtomicU64::new(0))
                .fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn auth_failed(&self, why: AuthFailure) {
        self.auth[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything, with `hub` for what is
    /// read at scrape time (upstream state, child resources).
    pub fn render(&'static self, hub: &crate::hub::Hub) -> String {
        self.render_with(system::upstreams(hub))
    }

    fn render_with(&'static self, upstreams: Vec<system::UpstreamReading>) -> String {
        encode(Scrape {
            metrics: self,
            upstreams,
            process: system::process(),
        })
    }
}

fn encode(scrape: Scrape) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// What one scrape shows: the live series, plus what was read from the hub
/// and /proc for it.
#[derive(Debug)]
struct Scrape {
    metrics: &'static Metrics,
    upstreams: Vec<system::UpstreamReading>,
    process: system::ProcessReading,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The text encoder adds `_total` to counters itself.
fn counter_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let servers: Vec<Arc<ServerMetrics>> = {
            let m = self.metrics.servers.pin();
            let mut v: Vec<_> = m.values().cloned().collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        self.ops(&mut enc, &servers)?;
        sessions(&mut enc, &servers)?;
        self.upstream(&mut enc, &servers)?;
        self.http(&mut enc)?;
        system::encode_process(&mut enc, &self.process)?;
        Ok(())
    }
}

impl Scrape {
    fn ops(
        &self,
        enc: &mut DescriptorEncoder,
        servers: &[Arc<ServerMetrics>],
    ) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            "mcp_server_operation_duration_seconds",
            "MCP requests the hub answered as server, from arrival to answer.",
            None,
            MetricType::Histogram,
        )?;
        for s in servers {
            let ops = s.server_ops.pin();
            for (k, h) in sorted(ops.iter()) {
                let e = k.error.label();
                let labels = [
                    ("mcp_method_name", k.method),
                    ("gen_ai_tool_name", k.tool.as_deref().unwrap_or("")),
                    ("error_type", &e),
                    ("server", &s.name),
                    ("transport", k.transport),
                    ("protocol_era", k.era.as_str()),
                ];
                h.encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mcp_client_operation_duration_seconds",
            "MCP requests the hub sent upstream as client, until the upstream answered or the hub gave up.",
            None,
            MetricType::Histogram,
        )?;
        for s in servers {
            let ops = s.client_ops.pin();
            for (k, h) in sorted(ops.iter()) {
                let e = k.error.label();
                let network = if k.transport == "stdio" {
                    "pipe"
                } else {
                    "tcp"
                };
                let labels = [
                    ("mcp_method_name", k.method),
                    ("gen_ai_tool_name", k.tool.as_deref().unwrap_or("")),
                    ("error_type", &e),
                    ("server", &s.name),
                    ("transport", k.transport),
                    ("protocol_era", k.era.as_str()),
                    ("network_transport", network),
                ];
                h.encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }

    fn upstream(
        &self,
        enc: &mut DescriptorEncoder,
        servers: &[Arc<ServerMetrics>],
    ) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            "mcphub_upstream_up",
            "1 while the server's upstream is ready.",
            None,
            MetricType::Gauge,
        )?;
        for u in &self.upstreams {
            let up = i64::from(u.state == "ready");
            ConstGauge::new(up).encode(m.encode_family(&[("server", u.name.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "mcphub_upstream_state",
            "The upstream's lifecycle state: 1 for the current one.",
            None,
            MetricType::Gauge,
        )?;
        for u in &self.upstreams {
            for st in system::STATES {
                let labels = [("server", u.name.as_str()), ("state", st)];
                ConstGauge::new(i64::from(u.state == st)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_upstream_restarts_total"),
            "Upstream restarts after a crash or a failed start, by cause.",
            None,
            MetricType::Counter,
        )?;
        for s in servers {
            for r in RestartReason::ALL {
                let n = s.restarts[r as usize].load(Ordering::Relaxed);
                let labels = [("server", &*s.name), ("reason", r.as_str())];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mcphub_child_memory_bytes",
            "Memory of the server's processes: its cgroup's memory.current when delegated, else their resident set.",
            None,
            MetricType::Gauge,
        )?;
        for u in &self.upstreams {
            if let Some(b) = u.memory_bytes {
                ConstGauge::new(b as i64)
                    .encode(m.encode_family(&[("server", u.name.as_str())])?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_child_cpu_seconds_total"),
            "CPU time of the server's running processes: its cgroup's cpu.stat when delegated, else /proc.",
            None,
            MetricType::Counter,
        )?;
        for u in &self.upstreams {
            if let Some(s) = u.cpu_seconds {
                ConstCounter::new(s).encode(m.encode_family(&[("server", u.name.as_str())])?)?;
            }
        }
        Ok(())
    }

    fn http(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_http_requests_total"),
            "HTTP requests answered, by route template and status code.",
            None,
            MetricType::Counter,
        )?;
        let mut rows: Vec<((&'static str, u16), u64)> = self
            .metrics
            .http
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for ((route, code), n) in rows {
            let code = code.to_string();
            let labels = [("route", route), ("code", code.as_str())];
            ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_auth_failures_total"),
            "Requests refused for a missing or invalid bearer token.",
            None,
            MetricType::Counter,
        )?;
        for (i, c) in self.metrics.auth.iter().enumerate() {
            let labels = [("reason", AuthFailure::as_str(i))];
            ConstCounter::new(c.load(Ordering::Relaxed)).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Series in a stable order, so one scrape reads like the last.
fn sorted<'a>(it: impl Iterator<Item = (&'a OpKey, &'a Hist)>) -> Vec<(&'a OpKey, &'a Hist)> {
    let mut v: Vec<_> = it.collect();
    v.sort_by(|(a, _), (b, _)| {
        (
            a.method,
            a.tool.as_deref(),
            a.error.label(),
            a.transport,
            a.era.as_str(),
        )
            .cmp(&(
                b.method,
                b.tool.as_deref(),
                b.error.label(),
                b.transport,
                b.era.as_str(),
            ))
    });
    v
}

fn sessions(
    enc: &mut DescriptorEncoder,
    servers: &[Arc<ServerMetrics>],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(
        "mcphub_sessions_active",
        "Open client sessions.",
        None,
        MetricType::Gauge,
    )?;
    for s in servers {
        for t in Transport::ALL {
            let n = s.sessions[t.index()].load(Ordering::Relaxed);
            let labels = [("server", &*s.name), ("transport", t.as_str())];
            ConstGauge::new(n).encode(m.encode_family(&labels)?)?;
        }
    }
    let mut m = enc.encode_descriptor(
        "mcp_server_session_duration_seconds",
        "Client sessions, from open to close.",
        None,
        MetricType::Histogram,
    )?;
    for s in servers {
        for t in Transport::ALL {
            let h = &s.session_time[t.index()];
            if h.count() == 0 {
                continue;
            }
            let labels = [("server", &*s.name), ("transport", t.as_str())];
            h.encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
