//! Configuration: read the file as written (`raw`), expand `${VAR}` (`expand`),
//! and validate into the typed [`Config`] the rest of the hub uses.
//!
//! Every error names the JSON path it is about, e.g.
//! `mcpServers.fetch.timeout: "30q" is not a duration`. Options inherit from
//! `mcpProxy.options` into each server exactly as TBXark/mcp-proxy does: a server
//! that sets `authTokens` replaces the global list, one that does not inherits it.

mod checks;
pub mod clients;
pub mod dropin;
pub mod edit;
mod expand;
pub mod groups;
pub mod install;
mod metrics;
pub mod oidc;
pub mod openapi;
mod raw;
mod server;
mod validate;

use indexmap::IndexMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

pub mod sandbox;
pub mod size;
pub use sandbox::Profile;

pub(crate) use checks::is_route_name;
pub use checks::{check_header, parse_listen_addr};
pub use expand::ExpandError;
pub use groups::GroupConfig;
pub use metrics::MetricsSettings;

pub const DEFAULT_ADDR: &str = ":9090";
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// The default `maxBodiesInFlight`: with each body counted twice, 8 MiB of
/// bodies at once (large ones are parsed one at a time anyway), which kept a
/// debug hub under 64 MiB with 16 clients sending 3 MB each.
pub const DEFAULT_MAX_BODIES_IN_FLIGHT: usize = 16 * 1024 * 1024;
pub const DEFAULT_MAX_CLIENTS: usize = 16;
pub const DEFAULT_PER_CLIENT_IDLE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON (comments are allowed): {source}")]
    Json {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: {0}", file = .1)]
    Expand(ExpandError, String),
    #[error("{file}: {path}: {msg}")]
    Shape {
        file: String,
        path: String,
        msg: String,
    },
    #[error("{file}: {0}", file = .1)]
    Invalid(Invalid, String),
    #[error(transparent)]
    Dropin(#[from] dropin::DropinError),
}

/// A validation error with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct Invalid {
    pub path: String,
    pub msg: String,
}

fn invalid(path: impl Into<String>, msg: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        msg: msg.into(),
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub hub: HubSettings,
    pub servers: IndexMap<String, ServerConfig>,
    /// Groups of servers served as one endpoint (`/g/<group>/…`).
    pub groups: IndexMap<String, GroupConfig>,
    /// Things that load but that an operator should hear about.
    pub warnings: Vec<String>,
    /// The file each server is defined in (the main file or a drop-in).
    pub origins: dropin::Origins,
}

#[derive(Debug, Clone)]
pub struct HubSettings {
    pub name: String,
    pub version: String,
    pub base_url: Option<Url>,
    /// Where to listen when not socket-activated, as written (":9090" means all addresses).
    pub addr: String,
    pub auth_tokens: Vec<String>,
    pub allowed_origins: Vec<String>,
    /// `None`: the Host header is not checked (no baseURL and no list configured).
    pub allowed_hosts: Option<Vec<String>>,
    pub cors_origins: Vec<String>,
    pub max_body: usize,
    /// `maxBodiesInFlight`: the hub-wide budget of request bodies in flight.
    pub max_bodies_in_flight: usize,
    pub sse_keep_alive: Duration,
    pub session_idle_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub exit_on_idle: Option<Duration>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub body_read_timeout: Duration,
    pub max_sessions_per_token: usize,
    /// Open sessions at most, over all callers.
    pub max_sessions: usize,
    /// Open sessions at most from one address, for callers with no token.
    pub max_sessions_per_address: usize,
    /// Named clients (`mcpProxy.options.clients`), in the order written.
    pub clients: Vec<std::sync::Arc<clients::Client>>,
    /// `None`: a token sees the servers it is valid for.
    pub status_tokens: Option<Vec<String>>,
    /// The prefix of the `requestState` handles this hub mints, so a load
    /// balancer can send an MRTR retry back to the hub holding the call.
    /// `None`: a random one per process.
    pub hub_id: Option<String>,
    /// Who may read `/metrics`, and where else it is served.
    pub metrics: MetricsSettings,
    /// The identity provider whose access tokens the hub accepts (`None`:
    /// none, and `/.well-known/` answers 404).
    pub oidc: Option<std::sync::Arc<oidc::OidcConfig>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    Stdio(StdioSpec),
    Sse {
        url: Url,
        headers: BTreeMap<String, String>,
        /// The largest message (a response body or one SSE event) taken from it.
        max_response: usize,
    },
    Streamable {
        url: Url,
        headers: BTreeMap<String, String>,
        /// The largest message (a response body or one SSE event) taken from it.
        max_response: usize,
    },
}

impl Upstream {
    pub fn kind(&self) -> &'static str {
        match self {
            Upstream::Stdio(_) => "stdio",
            Upstream::Sse { .. } => "sse",
            Upstream::Streamable { .. } => "streamable-http",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StdioSpec {
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// `None`: the operator opted out with `"sandbox": false`.
    pub sandbox: Option<Profile>,
    /// The server's private HOME inside its sandbox: `<stateDir>/<name>`.
    pub home: PathBuf,
    /// A package runner's install options (`install`), boxed: most servers
    /// have none, and `Upstream`'s variants stay of a size.
    pub install: Box<install::InstallOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    Shared,
    PerClient,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Shared => "shared",
            SessionMode::PerClient => "per-client",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFilter {
    Allow(Vec<String>),
    Block(Vec<String>),
}

impl ToolFilter {
    /// A `toolFilter` as written, at `path`.
    fn from_raw(f: raw::ToolFilter, path: &str) -> Result<ToolFilter, Invalid> {
        match f.mode.as_deref() {
            Some("allow") => Ok(ToolFilter::Allow(f.list)),
            None | Some("block") => Ok(ToolFilter::Block(f.list)),
            Some(m) => Err(invalid(
                format!("{path}.mode"),
                format!("{m:?} is not \"allow\" or \"block\""),
            )),
        }
    }

    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolFilter::Allow(list) => list.iter().any(|t| t == tool),
            ToolFilter::Block(list) => !list.iter().any(|t| t == tool),
        }
    }
}

/// Which MCP era the hub speaks to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Probe with `server/discover`; fall back to `initialize`.
    Auto,
    /// The 2024-11-05 … 2025-11-25 handshake only.
    Legacy,
    /// 2026-07-28 only.
    Modern,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    pub upstream: Upstream,
    pub session: SessionMode,
    pub eager: bool,
    pub idle_timeout: Option<Duration>,
    /// Per-client servers: how many upstreams may run at once.
    pub max_clients: usize,
    /// The era to speak upstream.
    pub protocol: Protocol,
    pub request_timeout: Duration,
    pub init_timeout: Duration,
    /// `None`: no liveness pings. Default: 30 s for remote servers, off for stdio.
    pub ping_interval: Option<Duration>,
    pub auth_tokens: Vec<String>,
    /// The config path of `auth_tokens`, to name a token in logs without its value.
    pub token_source: String,
    pub tool_filter: Option<ToolFilter>,
    /// How the OpenAPI facade names operations.
    pub openapi: openapi::OpenApi,
    pub log_enabled: bool,
    pub panic_if_invalid: bool,
    pub disabled: bool,
}

impl ServerConfig {
    pub fn routes(&self) -> [String; 2] {
        [format!("/{}/sse", self.name), format!("/{}/mcp", self.name)]
    }
}

/// A limit that must be at least 1, or its default.
fn count(v: Option<u32>, path: &str, default: usize) -> Result<usize, Invalid> {
    match v {
        None => Ok(default),
        Some(0) => Err(invalid(path, "must be at least 1")),
        Some(n) => Ok(n as usize),
    }
}

/// Reads and validates a config file and its `conf.d/*.json` drop-ins, with
/// variables from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_files(&dropin::Files::read(path)?, &lookup_env)
}

/// Validates a main file and its drop-ins as given (the CLI checks a change
/// this way before writing it).
pub fn load_files(
    files: &dropin::Files,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_merged(
        &files.main_text,
        &files.main.display().to_string(),
        &files.dropins,
        lookup,
    )
}

/// Variables from the environment; `credential:NAME` from `$CREDENTIALS_DIRECTORY/NAME`
/// (one trailing newline dropped, as `echo` writes it).
pub fn lookup_env(key: &str) -> Option<String> {
    match key.strip_prefix("credential:") {
        Some(name) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
            let text = std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()?;
            Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
        }
        None => std::env::var(key).ok(),
    }
}

/// Parses config text. `file` only names the source in errors.
pub fn parse(
    text: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_merged(text, file, &Default::default(), lookup)
}

fn parse_merged(
    text: &str,
    file: &str,
    dropins: &BTreeMap<PathBuf, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut value = dropin::to_value(text, file).map_err(|source| ConfigError::Json {
        file: file.into(),
        source,
    })?;
    expand::expand_tree(&mut value, "", lookup).map_err(|e| ConfigError::Expand(e, file.into()))?;
    let origins = dropin::merge(&mut value, file, dropins, lookup)?;
    let raw: raw::File = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = path_text(e.path());
        ConfigError::Shape {
            file: origins.file_for(&path, file).into(),
            path,
            msg: e.into_inner().to_string(),
        }
    })?;
    let mut cfg = validate::validate(raw, default_state_dir(lookup)).map_err(|e| {
        let at = origins.file_for(&e.path, file).to_string();
        ConfigError::Invalid(e, at)
    })?;
    for name in cfg.servers.keys() {
        if !dropin::name_is_portable(name) {
            cfg.warnings.push(format!(
                "mcpServers.{name}: loads, but `mcp-hub add` would refuse this name: use {}",
                dropin::NAME_RULE
            ));
        }
    }
    cfg.origins = origins;
    Ok(cfg)
}

/// A path for an error message: `mcpServers.a.args[0]`; a key that is empty
/// shows as `""`, and the file itself as `(top level)`, so that an error
/// always names where it is.
fn path_text(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if key.is_empty() { "\"\"" } else { key });
            }
            Segment::Unknown => out.push_str(if out.is_empty() { "?" } else { ".?" }),
        }
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

/// systemd's StateDirectory= when set, else /var/lib/mcp-hub for root, else the
/// user's XDG state directory.
fn default_state_dir(lookup: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = lookup("STATE_DIRECTORY").and_then(|d| d.split(':').next().map(PathBuf::from))
    {
        return d;
    }
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/mcp-hub");
    }
    match (lookup("XDG_STATE_HOME"), lookup("HOME")) {
        (Some(x), _) if x.starts_with('/') => Path::new(&x).join("mcp-hub"),
        (_, Some(h)) => Path::new(&h).join(".local/state/mcp-hub"),
        _ => PathBuf::from("/var/lib/mcp-hub"),
    }
}

fn duration(text: &str, path: &str) -> Result<Duration, Invalid> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            path,
            format!("{text:?} is not a duration ({e}); write e.g. \"30s\" or \"5m\""),
        )
    })
}

/// A size of at least 1 KiB: bytes, or text such as "4MiB".
fn size(z: &raw::Size, path: &str) -> Result<usize, Invalid> {
    let n = match z {
        raw::Size::Bytes(n) => *n,
        raw::Size::Text(t) => t
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| {
                invalid(
                    path,
                    format!("{t:?} is not a size ({e}); write e.g. \"4MiB\""),
                )
            })?
            .as_u64(),
    };
    if n < 1024 {
        return Err(invalid(path, "must be at least 1KiB"));
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// A size if one is given, else `default`.
fn opt_size(z: &Option<raw::Size>, path: &str, default: usize) -> Result<usize, Invalid> {
    z.as_ref().map_or(Ok(default), |z| size(z, path))
}

fn opt_duration(text: &Option<String>, path: &str, default: Duration) -> Result<Duration, Invalid> {
    text.as_deref().map_or(Ok(default), |t| duration(t, path))
}

fn warn_unsupported(o: &raw::Options, path: &str, warnings: &mut Vec<String>) {
    if o.metrics.is_some() {
        warnings.push(format!(
            "{path}.metrics: accepted for compatibility but not used; see /status"
        ));
    }
    if o.oauth2.is_some() {
        warnings.push(format!(
            "{path}.oauth2: accepted for compatibility but not supported; use authTokens"
        ));
    }
}

fn tokens(list: Vec<String>, path: &str) -> Result<Vec<String>, Invalid> {
    for (i, t) in list.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(invalid(
                format!("{path}[{i}]"),
                "a token must not be empty (is its variable set?)",
            ));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
