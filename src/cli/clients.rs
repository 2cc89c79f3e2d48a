//! `client-config`: the snippet each MCP client needs for the hub's servers,
//! printed, or merged into the client's own config file with `--write`.
//!
//! Every client here speaks streamable HTTP, so each gets the `/mcp` URL
//! unless `--transport sse` asks for `/sse` (Codex has no SSE support).
//! Tokens are never written as literals, only as the reference each client
//! resolves itself: `${VAR}` (Claude Code, Gemini CLI), `${env:VAR}` (Cursor),
//! `${input:mcp-hub-token}` with a password prompt (VS Code),
//! `bearer_token_env_var` (Codex). Open WebUI gets its connection-import JSON
//! (`openwebui`), with the key left for the operator to paste unless
//! `--with-token`.
//!
//! `--write` merges idempotently: it sets only the entries of the chosen
//! servers (and VS Code's input), leaves every other entry of the file as it
//! is, writes nothing when nothing changes, and otherwise keeps the old file as
//! `<file>.bak-<time>`. `--dry-run` shows the diff instead.

use super::ctx::Ctx;
use super::edit::diff;
use super::inspect::urls;
use super::out;
use crate::config::{edit, Config};
use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    #[value(name = "claude-code")]
    ClaudeCode,
    Vscode,
    Cursor,
    Gemini,
    Codex,
    #[value(name = "open-webui")]
    OpenWebui,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    User,
    Project,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Http,
    Sse,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The client to configure
    #[arg(value_enum)]
    pub client: Client,
    /// Only this server (repeatable; default: every enabled server, and for
    /// open-webui every group too)
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// open-webui: only this group (repeatable)
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// open-webui: also an OpenAPI connection (<url>/<name>, path openapi.json) per server and group
    #[arg(long)]
    pub openapi: bool,
    /// open-webui: put the config's token in as the key (the output then holds a secret)
    #[arg(long = "with-token")]
    pub with_token: bool,
    /// For this named client (`mcp-hub client list`): only what it may reach,
    /// and its own token's variable (MCP_HUB_TOKEN_<NAME> unless --token-env)
    #[arg(long = "client", value_name = "NAME")]
    pub named: Option<String>,
    /// The hub's URL as clients reach it (default: mcpProxy.baseURL, else the listen address)
    #[arg(long = "url-base", value_name = "URL")]
    pub url_base: Option<String>,
    /// The environment variable that holds the token on the client's side
    #[arg(
        long = "token-env",
        value_name = "VAR",
        default_value = "MCP_HUB_TOKEN"
    )]
    pub token_env: String,
    /// Streamable HTTP (/mcp, the default) or legacy SSE (/sse)
    #[arg(long, value_enum, default_value = "http")]
    pub transport: Transport,
    /// Merge the entries into the client's own config file (keeps a backup);
    /// open-webui: write one importable file per server and group into DIR
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub write: Option<Option<PathBuf>>,
    /// With --write: the user's file, or the project's (in the current directory).
    /// Default: project for vscode, user for the others
    #[arg(long, value_enum, requires = "write")]
    pub scope: Option<Scope>,
    /// With --write: print the diff, write nothing
    #[arg(long = "dry-run", requires = "write")]
    pub dry_run: bool,
    /// open-webui, with --write: merge the connections straight into the Open WebUI
    /// at URL through its admin API (by URL; other connections are kept; a backup
    /// of the list goes to ~/.local/state/mcp-hub/open-webui/)
    #[arg(long = "open-webui-url", value_name = "URL")]
    pub open_webui_url: Option<String>,
    /// With --open-webui-url: an Open WebUI admin's API key (Settings → Account → API Keys)
    #[arg(
        long = "open-webui-key",
        value_name = "KEY",
        env = "OPEN_WEBUI_API_KEY",
        hide_env_values = true,
        requires = "open_webui_url"
    )]
    pub open_webui_key: Option<String>,
}

/// The input VS Code prompts for, once, and keeps in its secret storage.
const VSCODE_INPUT: &str = "mcp-hub-token";

struct Server {
    name: String,
    url: String,
    auth: bool,
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("$HOME is not set: cannot find the client's user config"))
}

impl Client {
    fn key(self) -> &'static str {
        match self {
            Client::Vscode => "servers",
            _ => "mcpServers",
        }
    }

    fn file(self, scope: Scope) -> anyhow::Result<PathBuf> {
        let cwd = || std::env::current_dir().context("no current directory");
        Ok(match (self, scope) {
            (Client::ClaudeCode, Scope::User) => home()?.join(".claude.json"),
            (Client::ClaudeCode, Scope::Project) => cwd()?.join(".mcp.json"),
            (Client::Vscode, Scope::User) => home()?.join(".config/Code/User/mcp.json"),
            (Client::Vscode, Scope::Project) => cwd()?.join(".vscode/mcp.json"),
            (Client::Cursor, Scope::User) => home()?.join(".cursor/mcp.json"),
            (Client::Cursor, Scope::Project) => cwd()?.join(".cursor/mcp.json"),
            (Client::Gemini, Scope::User) => home()?.join(".gemini/settings.json"),
            (Client::Gemini, Scope::Project) => cwd()?.join(".gemini/settings.json"),
            (Client::Codex, Scope::User) => match std::env::var_os("CODEX_HOME") {
                Some(h) if !h.is_empty() => PathBuf::from(h).join("config.toml"),
                _ => home()?.join(".codex/config.toml"),
            },
            (Client::Codex, Scope::Project) => {
                bail!("codex reads its servers from ~/.codex/config.toml only: use --scope user")
            }
            (Client::OpenWebui, _) => unreachable!("open-webui is written by openwebui::run"),
        })
    }

    /// One server's entry in a JSON client's file.
    fn entry(self, s: &Server, sse: bool, var: &str) -> Value {
        let bearer = |reference: String| json!({"Authorization": format!("Bearer {reference}")});
        let mut e = Map::new();
        match self {
            Client::ClaudeCode => {
                e.insert("type".into(), json!(if sse { "sse" } else { "http" }));
                e.insert("url".into(), json!(s.url));
                if s.auth {
                    e.insert("headers".into(), bearer(format!("${{{var}}}")));
                }
            }
            Client::Vscode => {
                e.insert("type".into(), json!(if sse { "sse" } else { "http" }));
                e.insert("url".into(), json!(s.url));
                if s.auth {
                    e.insert(
                        "headers".into(),
                        bearer(format!("${{input:{VSCODE_INPUT}}}")),
                    );
                }
            }
            Client::Cursor => {
                e.insert("url".into(), json!(s.url));
                if s.auth {
                    e.insert("headers".into(), bearer(format!("${{env:{var}}}")));
                }
            }
            Client::Gemini => {
                if sse {
                    e.insert("url".into(), json!(s.url));
                    e.insert("type".into(), json!("sse"));
                } else {
                    e.insert("httpUrl".into(), json!(s.url));
                }
                if s.auth {
                    e.insert("headers".into(), bearer(format!("${{{var}}}")));
                }
            }
            Client::Codex | Client::OpenWebui => unreachable!("not a JSON file client"),
        }
        Value::Object(e)
    }
}

fn selected(cfg: &Config, a: &ClientArgs, base: &str) -> anyhow::Result<Vec<Server>> {
    let sse = a.transport == Transport::Sse;
    let names: Vec<String> = if a.servers.is_empty() {
        cfg.servers
            .values()
            .filter(|s| !s.disabled)
            .map(|s| s.name.clone())
            .collect()
    } else {
        a.servers.clone()
    };
    if names.is_empty() {
        bail!("the config has no enabled servers; add one with `mcp-hub add`");
    }
    names
        .into_iter()
        .map(|n| {
            let s = cfg
                .servers
                .get(&n)
                .ok_or_else(|| anyhow!("no server named {n:?}; `mcp-hub list` shows them"))?;
            let (mcp, sse_url) = urls(base, &n);
            Ok(Server {
                name: n,
                url: if sse { sse_url } else { mcp },
                // With named clients configured, every route wants a token.
                auth: !s.auth_tokens.is_empty() || !cfg.hub.clients.is_empty(),
            })
        })
        .collect()
}

/// The snippet as a JSON value (JSON clients) for printing and merging.
fn json_snippet(client: Client, servers: &[Server], sse: bool, var: &str) -> Value {
    let entries: Map<String, Value> = servers
        .iter()
        .map(|s| (s.name.clone(), client.entry(s, sse, var)))
        .collect();
    let mut root = Map::new();
    if client == Client::Vscode && servers.iter().any(|s| s.auth) {
        root.insert("inputs".into(), json!([vscode_input()]));
    }
    root.insert(client.key().into(), Value::Object(entries));
    Value::Object(root)
}

fn vscode_input() -> Value {
    json!({"type": "promptString", "id": VSCODE_INPUT, "description": "mcp-hub token", "password": true})
}

fn codex_snippet(servers: &[Server], var: &str) -> String {
    let mut doc = toml_edit::DocumentMut::new();
    codex_merge(&mut doc, servers, var);
    doc.to_string()
}

fn codex_merge(doc: &mut toml_edit::DocumentMut, servers: &[Server], var: &str) {
    use toml_edit::{value, Item, Table};
    if !doc.contains_key("mcp_servers") {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("mcp_servers", Item::Table(t));
    }
    let all = doc["mcp_servers"]
        .as_table_mut()
        .expect("made a table above");
    for s in servers {
        if !all.contains_key(&s.name) {
            all.insert(&s.name, Item::Table(Table::new()));
        }
        let t = &mut all[&s.name];
        t["url"] = value(&s.url);
        if s.auth {
            t["bearer_token_env_var"] = value(var);
        } else if let Some(t) = t.as_table_mut() {
            t.remove("bearer_token_env_var");
        }
    }
}

/// Merges `snippet` into an existing JSON file's text.
fn json_merge(
    client: Client,
    existing: Option<&str>,
    snippet: &Value,
    path: &std::path::Path,
) -> anyhow::Result<Value> {
    let mut root = match existing {
        None => Map::new(),
        Some(t) if t.trim().is_empty() => Map::new(),
        Some(t) => {
            let mut stripped = String::new();
            std::io::Read::read_to_string(
                &mut json_comments::StripComments::new(t.as_bytes()),
                &mut stripped,
            )?;
            if stripped != t {
                bail!(
                    "{} has comments, which rewriting it would lose: add the entries by hand \
                     (`mcp-hub client-config` without --write prints them)",
                    path.display()
                );
            }
            match serde_json::from_str(t)
                .with_context(|| format!("{}: not valid JSON", path.display()))?
            {
                Value::Object(m) => m,
                _ => bail!("{}: not a JSON object", path.display()),
            }
        }
    };
    let key = client.key();
    let servers = root
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| anyhow!("{}: {key} is not an object", path.display()))?;
    for (name, entry) in snippet[key].as_object().into_iter().flatten() {
        servers.insert(name.clone(), entry.clone());
    }
    if let Some(inputs) = snippet.get("inputs") {
        let list = root
            .entry("inputs")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| anyhow!("{}: inputs is not an array", path.display()))?;
        for i in inputs.as_array().into_iter().flatten() {
            if !list.iter().any(|x| x["id"] == i["id"]) {
                list.push(i.clone());
            }
        }
    }
    Ok(Value::Object(root))
}

/// Narrows `a` to what the named client may reach, and names its token's
/// variable after it.
fn for_named(cfg: &Config, a: &mut ClientArgs, name: &str) -> anyhow::Result<()> {
    let c = cfg
        .hub
        .clients
        .iter()
        .find(|c| &*c.name == name)
        .ok_or_else(|| anyhow!("no named client {name:?}; `mcp-hub client list` shows them"))?;
    if a.with_token {
        bail!("client {name}'s token is not in the config (only its hash is): leave out --with-token and paste the token `mcp-hub client add` printed");
    }
    if a.servers.is_empty() && a.groups.is_empty() {
        a.servers = cfg
            .servers
            .values()
            .filter(|s| !s.disabled && c.reaches_server(&s.name))
            .map(|s| s.name.clone())
            .collect();
        if a.client == Client::OpenWebui {
            a.groups = cfg
                .groups
                .keys()
                .filter(|g| c.reaches_group(g))
                .cloned()
                .collect();
        }
    }
    if a.servers.is_empty() && a.groups.is_empty() {
        bail!(
            "client {name} may reach no enabled server (mcpProxy.options.clients.{name}.servers)"
        );
    }
    if a.token_env == DEFAULT_TOKEN_ENV {
        a.token_env = format!(
            "{DEFAULT_TOKEN_ENV}_{}",
            name.to_ascii_uppercase().replace('-', "_")
        );
    }
    Ok(())
}

const DEFAULT_TOKEN_ENV: &str = "MCP_HUB_TOKEN";

pub fn client_config(ctx: &Ctx, a: ClientArgs) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    let mut a = a;
    if let Some(name) = a.named.clone() {
        for_named(&cfg, &mut a, &name)?;
    }
    let base = ctx.public_base(&cfg, a.url_base.as_deref())?;
    let sse = a.transport == Transport::Sse;
    if sse && a.client == Client::Codex {
        bail!("codex speaks streamable HTTP only: leave out --transport sse");
    }
    if a.client == Client::OpenWebui {
        if sse {
            bail!("Open WebUI's MCP connections speak streamable HTTP only: leave out --transport sse");
        }
        let live = match (&a.open_webui_url, &a.write) {
            (None, _) => None,
            (Some(url), Some(None)) => Some(super::openwebui_api::Live {
                url,
                key: a.open_webui_key.as_deref().unwrap_or(""),
                dry_run: a.dry_run,
            }),
            (Some(_), None) => {
                bail!("--open-webui-url writes into Open WebUI: add --write (no directory)")
            }
            (Some(_), Some(Some(d))) => bail!(
                "--open-webui-url writes into Open WebUI, not into a directory: drop {}",
                d.display()
            ),
        };
        let dir = match &a.write {
            None => None,
            Some(Some(d)) => Some(d.as_path()),
            Some(None) if live.is_some() => None,
            Some(None) => bail!(
                "Open WebUI keeps its connections in its database: give --write a directory for one \
                 file per server and group to Import (Admin Settings → External Tools → + → Import)"
            ),
        };
        let r = super::openwebui::Request {
            servers: &a.servers,
            groups: &a.groups,
            base: &base,
            openapi: a.openapi,
            with_token: a.with_token,
            dir,
            live,
        };
        return super::openwebui::run(ctx, &cfg, &r);
    }
    if !a.groups.is_empty() || a.openapi || a.with_token || a.open_webui_url.is_some() {
        bail!("--group, --openapi, --with-token and --open-webui-url are for open-webui only");
    }
    let write = match &a.write {
        None => false,
        Some(None) => true,
        Some(Some(d)) => bail!(
            "--write takes no directory for {:?} (it merges into the client's own file): drop {}",
            a.client,
            d.display()
        ),
    };
    let servers = selected(&cfg, &a, &base)?;
    let var = &a.token_env;
    if !write {
        let text = match a.client {
            Client::Codex => codex_snippet(&servers, var),
            c => serde_json::to_string_pretty(&json_snippet(c, &servers, sse, var))?,
        };
        if ctx.json() {
            let content = match a.client {
                Client::Codex => json!(text),
                _ => serde_json::from_str(&text)?,
            };
            out::json(&json!({"client": format!("{:?}", a.client), "content": content}));
        } else {
            println!("{}", text.trim_end());
            if servers.iter().any(|s| s.auth) {
                let how = match a.client {
                    Client::Vscode => {
                        "VS Code asks for the token once and keeps it in its secret storage"
                            .to_string()
                    }
                    _ => format!("set {var} to the hub's token in the client's environment"),
                };
                out::note(format!("note: {how}"));
            }
        }
        return Ok(true);
    }
    let scope = a.scope.unwrap_or(if a.client == Client::Vscode {
        Scope::Project
    } else {
        Scope::User
    });
    let path = a.client.file(scope)?;
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!("{}: cannot read: {e}", path.display())),
    };
    let (new, unchanged) = if a.client == Client::Codex {
        let mut doc: toml_edit::DocumentMut = old
            .as_deref()
            .unwrap_or("")
            .parse()
            .with_context(|| format!("{}: not valid TOML", path.display()))?;
        codex_merge(&mut doc, &servers, var);
        let text = doc.to_string();
        let same = old.as_deref() == Some(text.as_str());
        (text, same)
    } else {
        let snippet = json_snippet(a.client, &servers, sse, var);
        let merged = json_merge(a.client, old.as_deref(), &snippet, &path)?;
        let before: Option<Value> = old.as_deref().and_then(|t| serde_json::from_str(t).ok());
        let same = before.as_ref() == Some(&merged);
        (
            format!("{}\n", serde_json::to_string_pretty(&merged)?),
            same,
        )
    };
    let d = diff(&path, old.as_deref(), Some(&new));
    if unchanged {
        if ctx.json() {
            out::json(&json!({"ok": true, "file": path, "changed": false}));
        } else {
            println!("{} is up to date", path.display());
        }
        return Ok(true);
    }
    if a.dry_run {
        if ctx.json() {
            out::json(&json!({"ok": true, "dryRun": true, "file": path, "diff": d}));
        } else {
            print!("{d}");
            println!("(dry run: nothing written)");
        }
        return Ok(true);
    }
    let backup = edit::replace_with_backup(&path, new.as_bytes(), 0o600)?;
    if ctx.json() {
        out::json(&json!({"ok": true, "file": path, "changed": true, "backup": backup}));
    } else {
        println!("wrote {}", path.display());
        if let Some(b) = &backup {
            println!("backup {}", b.display());
        }
        if servers.iter().any(|s| s.auth) && a.client != Client::Vscode {
            out::note(format!(
                "note: set {var} to the hub's token where the client runs"
            ));
        }
    }
    Ok(true)
}
