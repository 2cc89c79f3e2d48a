//! The config file as written: a superset of TBXark/mcp-proxy's v2 schema and of
//! Claude Desktop's `mcpServers` file. Only shape lives here; meaning and checks
//! live in `validate`. Unknown keys are rejected so that typos surface, but every
//! key TBXark accepts is accepted (the ones the hub does not act on are warned about).

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct File {
    pub mcp_proxy: Option<Proxy>,
    #[serde(default)]
    pub mcp_servers: IndexMap<String, Server>,
    /// Groups of servers served as one endpoint (see `config::groups`).
    pub groups: Option<IndexMap<String, RawGroup>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Proxy {
    #[serde(rename = "baseURL")]
    pub base_url: Option<String>,
    pub addr: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    /// TBXark serves one transport; the hub always serves both, so this is only checked.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub options: Option<ProxyOptions>,
}

/// `mcpProxy.options`: TBXark's options (inherited by every server) plus hub-wide settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyOptions {
    #[serde(flatten)]
    pub common: Options,
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub cors: Option<Cors>,
    pub max_body_size: Option<Size>,
    /// Request bodies being read, parsed and handed on at once, over all
    /// clients (default 16 MiB; each body counts twice, see `http::bodies`).
    pub max_bodies_in_flight: Option<Size>,
    pub sse_keep_alive: Option<String>,
    pub session_idle_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
    /// Exit after this long with no session and no request (socket activation restarts us).
    pub exit_on_idle: Option<String>,
    /// Where each stdio server gets its private HOME (`<stateDir>/<name>`).
    pub state_dir: Option<String>,
    /// Open connections at most, over all clients (default 4096).
    pub max_connections: Option<u32>,
    /// Open connections at most from one IP address (default 256).
    pub max_connections_per_ip: Option<u32>,
    /// How long a request body may take to arrive (default 30s).
    pub body_read_timeout: Option<String>,
    /// Open sessions at most per token (default 1024).
    pub max_sessions_per_token: Option<u32>,
    /// Tokens that may read `/status` for every server (default: a token sees
    /// the servers it is valid for).
    pub status_tokens: Option<Vec<String>>,
    /// This hub's name in the MRTR handles it mints, for a load balancer's
    /// affinity (default: random per process).
    pub hub_id: Option<String>,
    /// Groups of servers served as one endpoint (see `config::groups`).
    pub groups: Option<IndexMap<String, RawGroup>>,
    /// Tokens that may read `/metrics` (default: any token the hub accepts).
    pub metrics_tokens: Option<Vec<String>>,
    /// A second address serving only `/metrics`, with no token.
    pub metrics_listen: Option<String>,
    /// Named clients: who may call what, and how much (see `config::clients`).
    pub clients: Option<IndexMap<String, RawClient>>,
    /// Open sessions at most, over all callers (default 16384).
    pub max_sessions: Option<u32>,
    /// Open sessions at most from one address, for callers with no token (default 1024).
    pub max_sessions_per_address: Option<u32>,
    /// Sign-in with the LAN's identity provider (see `config::oidc`).
    pub oidc: Option<RawOidc>,
}

/// Options TBXark knows, valid at both levels.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    pub panic_if_invalid: Option<bool>,
    pub log_enabled: Option<bool>,
    pub auth_tokens: Option<Vec<String>>,
    pub tool_filter: Option<ToolFilter>,
    /// The OpenAPI facade's settings (`super::openapi`).
    pub openapi: Option<RawOpenApi>,
    pub disabled: Option<bool>,
    /// Accepted for TBXark compatibility; not acted on.
    pub metrics: Option<Value>,
    /// Accepted for TBXark compatibility; not acted on.
    pub oauth2: Option<Value>,
}

/// A server's `options` block. A separate type so hub-wide keys are rejected here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    #[serde(flatten)]
    pub common: Options,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFilter {
    pub mode: Option<String>,
    #[serde(default)]
    pub list: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    #[serde(default)]
    pub origins: Vec<String>,
}

/// A size: bytes as an integer, or a string such as "4MiB" or "512 KB".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

/// A duration: "30s"-style text, or an integer of nanoseconds as Go's
/// `time.Duration` writes it (TBXark's `timeout`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum GoDuration {
    Nanos(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Server {
    /// TBXark: "stdio" | "sse" | "streamable-http".
    pub transport_type: Option<String>,
    /// Claude Desktop / Claude Code: "stdio" | "sse" | "http" | "streamable-http".
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A remote server: the largest response body or SSE event taken from it
    /// (default: `mcpProxy.options.maxBodySize`).
    pub max_response_size: Option<Size>,
    pub timeout: Option<GoDuration>,
    pub options: Option<ServerOptions>,
    /// "shared" (default) or "per-client".
    pub session: Option<String>,
    /// "lazy" (default) or "eager".
    pub start: Option<String>,
    /// Stop a shared child after this long without any client session; a
    /// per-client child after this long without a request (default 5m).
    pub idle_timeout: Option<String>,
    /// Per-client servers: live upstreams at most (default 16).
    pub max_clients: Option<u32>,
    /// Which MCP era to speak upstream: "auto" (default), "legacy" or "2026-07-28".
    pub protocol: Option<String>,
    /// How long the child may take to answer `initialize` (first `npx -y` downloads).
    pub init_timeout: Option<String>,
    /// How often to ping the upstream to find out it hung ("0s" turns it off).
    pub ping_interval: Option<String>,
    /// `false`, or a sandbox profile (validated in `sandbox::profile`).
    pub sandbox: Option<serde_json::Value>,
    /// A package runner's install options (see `config::install`).
    pub install: Option<RawInstall>,
}

/// `"install": {"python": ">=3.12" | "/usr/bin/python3.12", "overrides": [...]}`
/// as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstall {
    pub python: Option<String>,
    pub overrides: Option<Vec<String>>,
}

/// One group (`groups.<name>`) as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGroup {
    pub servers: Vec<String>,
    pub separator: Option<String>,
    pub auth_tokens: Option<Vec<String>>,
    pub tool_filter: Option<ToolFilter>,
    /// The group's OpenAPI view (default: `mcpProxy.options.openapi`).
    pub openapi: Option<RawOpenApi>,
}

/// `"openapi": {"operationIds": "exact" | "mcpo", "maxListSize", "maxListPages",
/// "maxDocumentSize", "resources", "prompts"}` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOpenApi {
    pub operation_ids: Option<String>,
    pub max_list_size: Option<Size>,
    pub max_list_pages: Option<u64>,
    pub max_document_size: Option<Size>,
    /// Serve the server's resources as operations too (default false).
    pub resources: Option<bool>,
    /// Serve the server's prompts as operations too (default false).
    pub prompts: Option<bool>,
}

/// One named client (`mcpProxy.options.clients.<name>`) as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawClient {
    /// The SHA-256 of the client's token, in hex: the config holds no secret.
    pub token_sha256: Option<String>,
    /// The token itself (usually `${credential:NAME}`).
    pub token: Option<String>,
    /// Tokens a rotation retired, valid until their time.
    pub previous: Option<Vec<RawPreviousToken>>,
    pub servers: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub tools: Option<IndexMap<String, ToolFilter>>,
    pub rate: Option<String>,
    pub max_concurrent: Option<u32>,
    pub max_sessions: Option<u32>,
}

/// A retired token of a client: `{"tokenSha256": "…", "until": "2026-12-08T03:00:00Z"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPreviousToken {
    pub token_sha256: String,
    pub until: String,
}

/// `mcpProxy.options.oidc` as written: the identity provider whose access
/// tokens the hub accepts, and the rules that turn a token's claims into a
/// named client's policy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOidc {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// The claim naming the caller (default "sub").
    pub client: Option<String>,
    pub rules: Option<Vec<RawOidcRule>>,
}

/// One rule of `oidc.rules`: a claim value, and the policy keys of a named client.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOidcRule {
    pub claim: Option<String>,
    pub value: Option<String>,
    pub servers: Option<RawServers>,
    pub groups: Option<Vec<String>>,
    pub tools: Option<IndexMap<String, ToolFilter>>,
    pub rate: Option<String>,
    pub max_concurrent: Option<u32>,
    pub max_sessions: Option<u32>,
}

/// `"*"` or a list of server names.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawServers {
    All(String),
    List(Vec<String>),
}
