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
//!   to a name the server itself listed in a `tools/list` answer, at most
//!   [`MAX_TOOL_NAME`] bytes long and at most [`MAX_TOOLS`] names per
//!   server; any other name is `_other`.
//! - `error_type`: empty on success, as the conventions leave `error.type`
//!   unset then; `tool_error` for a result with `isError: true`; else the
//!   JSON-RPC error code as a string when it is one of [`ERROR_CODES`]
//!   (JSON-RPC's, MCP's and the hub's own), and `other` for any other code.
//!
//! So a server's label sets are bounded, and past [`MAX_OP_SERIES`] per side
//! a new combination folds into an overflow series: one scrape stays a few
//! MiB per server whatever a server lists or answers.
//!
//! Session ids, tokens, users, arguments and raw paths never become labels;
//! they are in the journal.
//!
//! Off the hot path: recording a call takes no lock shared across requests.
//! Each series is a [`hist::Hist`] of atomic buckets; the series of a server
//! live in lock-free maps (`papaya`, epoch-based: a lookup is a hash and a
//! few loads, an insert a compare-and-swap) held by that server's
//! [`ServerMetrics`], which each session's router is handed when it is
//! built. A series key is `Copy` (a tool is a [`ToolId`] into the server's
//! table, not a shared string), so recording touches no reference count
//! that every core shares, and nothing is kept for the process's life: a
//! reload drops the series of removed servers and of tools a server stopped
//! listing. prometheus-client's `Family` (a `RwLock`) and `Histogram` (a
//! mutex per observation) are used for nothing on that path; the crate is
//! the encoder: a scrape registers a
//! [`prometheus_client::collector::Collector`] that walks these maps.
//!
//! A leaf: what a scrape needs of the hub (each server's state, child pid,
//! cgroup) comes in as [`UpstreamReading`]s the hub builds, which also say
//! which servers the caller may see; nothing here knows the hub, sessions or
//! HTTP.
//!
//! Where things are counted: a request in `session::Session::request` (its
//! `Call` starts there; answers the hub gives itself finish it there) and in
//! `session::router` (every exchange ends in `Router::settle`, whichever way:
//! answered, cancelled, timed out, lost, refused); sessions where they attach
//! and close; restarts in `upstream::link` where a restart follows a crash (a
//! per-client upstream that dies ends its session instead); HTTP requests and
//! auth failures in `http`. Transports name themselves in
//! `SessionInfo::transport` (the OpenAPI facade sets `Transport::Openapi`).
//!
//! Files: `labels` (the vocabularies), `hist` (the atomic histogram),
//! `encode` (one scrape), `system` (upstream state, child resources from the
//! cgroup or /proc, `process_*`).

mod encode;
pub mod hist;
mod labels;
pub mod system;

pub use labels::{
    method_label, Era, ErrorType, RestartReason, ToolId, Transport, UpstreamKind, ERROR_CODES,
    MAX_OP_SERIES, MAX_TOOLS, MAX_TOOL_NAME, METHODS, OTHER, OTHER_TOOL,
};
pub use system::UpstreamReading;

use crate::jsonrpc::Message;
use hist::Hist;
use labels::OpKey;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The series maps' hasher: keys come from fixed vocabularies, configured
/// names and tool ids, so a fast seeded hash is enough (SipHash cost a
/// third of a call's recording).
type Hasher = foldhash::fast::RandomState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

type Ops = papaya::HashMap<OpKey, Hist, Hasher>;

/// A tool name the server listed.
struct Tool {
    id: ToolId,
    /// Named by a `tools/list` answer since the last [`ServerMetrics::prune`].
    listed: AtomicBool,
}

/// Everything counted for one configured server. Outlives reloads that keep
/// or change the server (it keeps counting into the same series); a reload
/// that removes it drops it ([`Metrics::retain_servers`]).
pub struct ServerMetrics {
    name: Arc<str>,
    /// Listed names (at most [`MAX_TOOLS`], each at most [`MAX_TOOL_NAME`]
    /// bytes) and their ids: a series key holds the id, so recording a
    /// call touches no reference count that every core shares, and nothing
    /// outlives the server.
    tools: papaya::HashMap<Box<str>, Tool, Hasher>,
    next_tool: AtomicU64,
    /// `tools/list` answers seen since the last prune.
    listings: AtomicU64,
    server_ops: Ops,
    client_ops: Ops,
    sessions: [AtomicI64; 3],
    session_time: [Hist; 3],
    restarts: [AtomicU64; 5],
}

impl ServerMetrics {
    /// A server's metrics on their own, registered nowhere (a router built
    /// without the process's series, as in tests).
    pub fn new(name: &str) -> ServerMetrics {
        ServerMetrics {
            name: name.into(),
            tools: papaya::HashMap::with_hasher(Hasher::default()),
            next_tool: AtomicU64::new(0),
            listings: AtomicU64::new(0),
            server_ops: papaya::HashMap::with_hasher(Hasher::default()),
            client_ops: papaya::HashMap::with_hasher(Hasher::default()),
            sessions: Default::default(),
            session_time: Default::default(),
            restarts: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label for a tool a client names: the server's own listed name, or `_other`.
    pub fn tool_label(&self, name: &str) -> ToolId {
        if name.len() > MAX_TOOL_NAME {
            return ToolId::OTHER;
        }
        self.tools.pin().get(name).map_or(ToolId::OTHER, |t| t.id)
    }

    /// The name of a tool id, while the server still lists it.
    pub fn tool_name(&self, id: ToolId) -> Option<String> {
        if id == ToolId::OTHER {
            return Some(OTHER_TOOL.into());
        }
        let tools = self.tools.pin();
        let found = tools.iter().find(|(_, t)| t.id == id);
        found.map(|(n, _)| n.to_string())
    }

    /// Remembers the tool names a server listed (a `tools/list` answer):
    /// names past [`MAX_TOOL_NAME`] bytes or past [`MAX_TOOLS`] are not kept
    /// (calls to them count as `_other`).
    pub fn listed_tools(&self, answer: &Message) {
        #[derive(serde::Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            name: Cow<'a, str>,
        }
        #[derive(serde::Deserialize)]
        struct List<'a> {
            #[serde(borrow)]
            tools: Vec<Named<'a>>,
        }
        let Some(raw) = answer.result_raw() else {
            return;
        };
        // Borrowed: a huge name is looked at, never copied.
        let Ok(list) = serde_json::from_str::<List>(raw.get()) else {
            return;
        };
        self.listings.fetch_add(1, Ordering::Relaxed);
        let set = self.tools.pin();
        for t in list.tools {
            let name = &*t.name;
            if let Some(known) = set.get(name) {
                known.listed.store(true, Ordering::Relaxed);
                continue;
            }
            // Several routers of a per-client server may list at once: the
            // cap may be passed by as many names as lists run together.
            if name.len() > MAX_TOOL_NAME || name == OTHER_TOOL || set.len() >= MAX_TOOLS {
                continue;
            }
            let id = ToolId(self.next_tool.fetch_add(1, Ordering::Relaxed));
            set.get_or_insert_with(name.into(), || Tool {
                id,
                listed: AtomicBool::new(true),
            });
        }
    }

    /// At a reload: when the server answered `tools/list` since the last
    /// one, the tools no answer named are forgotten with their series (a
    /// server that was not asked keeps its tools). Series of unknown tool
    /// ids (a call that raced a prune) go too.
    fn prune(&self) {
        if self.listings.swap(0, Ordering::Relaxed) > 0 {
            let tools = self.tools.pin();
            tools.retain(|_, t| t.listed.swap(false, Ordering::Relaxed));
        }
        let live: std::collections::HashSet<ToolId> =
            self.tools.pin().values().map(|t| t.id).collect();
        let keep = |k: &OpKey| {
            k.tool
                .is_none_or(|t| t == ToolId::OTHER || live.contains(&t))
        };
        self.server_ops.pin().retain(|k, _| keep(k));
        self.client_ops.pin().retain(|k, _| keep(k));
    }

    /// A call the hub answered, as server to its client.
    pub fn server_op(&self, call: &Call, error: ErrorType) {
        let key = OpKey {
            method: call.method,
            tool: call.tool,
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
            tool: call.tool,
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

    /// Operation series now, both sides (for tests).
    pub fn op_series(&self) -> usize {
        self.server_ops.pin().len() + self.client_ops.pin().len()
    }

    /// Tool names remembered now.
    pub fn tools_known(&self) -> usize {
        self.tools.pin().len()
    }
}

/// Records into the series `key`, made on its first observation. A lookup
/// first: the series exists on every call but the first. Past
/// [`MAX_OP_SERIES`] a new key folds into its method's overflow series.
fn observe(map: &Ops, key: OpKey, d: Duration) {
    let m = map.pin();
    if let Some(h) = m.get(&key) {
        return h.observe(d);
    }
    let key = if m.len() >= MAX_OP_SERIES {
        OpKey {
            tool: key.tool.map(|_| ToolId::OTHER),
            error: ErrorType::Other,
            ..key
        }
    } else {
        key
    };
    m.get_or_insert_with(key, Hist::default).observe(d)
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
    tool: Option<ToolId>,
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
    /// Looked up when a router is built and at a scrape, never per call; a
    /// plain map, so a removed server is freed at once (a lock-free map
    /// frees what it removed only later, in batches).
    servers: Mutex<HashMap<Arc<str>, Arc<ServerMetrics>>>,
    http: papaya::HashMap<(&'static str, u16), hist::Counter, Hasher>,
    auth: [AtomicU64; 2],
    /// Requests of named clients, by (client, outcome). Bounded: a client
    /// label is a configured name (a reload drops the removed ones).
    clients: papaya::HashMap<(Arc<str>, &'static str), hist::Counter, Hasher>,
}

/// What became of a named client's request, for `mcphub_client_requests_total`.
#[derive(Debug, Clone, Copy)]
pub enum ClientOutcome {
    /// Let through to a server.
    Admitted,
    /// Refused by the client's tool rule.
    Denied,
    /// Over its `rate`.
    RateLimited,
    /// Over its `maxConcurrent`.
    Concurrent,
}

impl ClientOutcome {
    fn as_str(self) -> &'static str {
        match self {
            ClientOutcome::Admitted => "admitted",
            ClientOutcome::Denied => "denied",
            ClientOutcome::RateLimited => "rate_limited",
            ClientOutcome::Concurrent => "concurrent",
        }
    }
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
            servers: Mutex::default(),
            http: papaya::HashMap::with_hasher(Hasher::default()),
            auth: Default::default(),
            clients: papaya::HashMap::with_hasher(Hasher::default()),
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
        let mut m = self.servers();
        if let Some(s) = m.get(name) {
            return s.clone();
        }
        let s = Arc::new(ServerMetrics::new(name));
        m.insert(name.into(), s.clone());
        s
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<ServerMetrics>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At a reload: drops every series of the servers `keep` refuses (they
    /// were removed), and prunes the tools of the others.
    pub fn retain_servers(&self, keep: impl Fn(&str) -> bool) {
        let kept: Vec<Arc<ServerMetrics>> = {
            let mut m = self.servers();
            m.retain(|name, _| keep(name));
            m.values().cloned().collect()
        };
        for s in kept {
            s.prune();
        }
    }

    /// One HTTP request answered: `route` is a template, never a raw path.
    pub fn http(&self, route: &'static str, code: u16) {
        let m = self.http.pin();
        match m.get(&(route, code)) {
            Some(n) => n.inc(),
            None => m
                .get_or_insert_with((route, code), hist::Counter::default)
                .inc(),
        }
    }

    /// A named client's request and what became of it.
    pub fn client(&self, name: &Arc<str>, outcome: ClientOutcome) {
        // Lock-free, as the HTTP counter: every request of a named client counts.
        let m = self.clients.pin();
        let key = (name.clone(), outcome.as_str());
        match m.get(&key) {
            Some(n) => n.inc(),
            None => m.get_or_insert_with(key, hist::Counter::default).inc(),
        }
    }

    /// At a reload: drops the series of clients `keep` refuses.
    pub fn retain_clients(&self, keep: impl Fn(&str) -> bool) {
        self.clients.pin().retain(|(name, _), _| keep(name));
    }

    pub fn auth_failed(&self, why: AuthFailure) {
        self.auth[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition: the series of the servers in
    /// `upstreams` (what the caller may see, as the hub read them now) and
    /// the hub-wide ones. A server's series not in `upstreams` stay out.
    pub fn render(&self, upstreams: Vec<UpstreamReading>) -> String {
        encode::encode(encode::Scrape::new(self, upstreams, system::process()))
    }
}

#[cfg(test)]
mod tests;
