//! `mcp-hub client`: named clients (`mcpProxy.options.clients`) for people.
//!
//! `add` and `rotate` make a fresh random token, write only its SHA-256 and
//! print the token once; `revoke` removes a client; `list` shows who may call
//! what, never a token or a hash. Each change goes the way `mcp-hub add` goes
//! (`edit.rs`): under the config lock, the whole merged config validated with
//! the change before anything is written, a backup (`mcp-hub restore`), an
//! atomic write, then a reload of the running hub. `add` writes one drop-in,
//! `conf.d/client-NAME.json`; `revoke` and `rotate` change the file the client
//! is defined in, wherever that is.
//!
//! The token goes to stdout alone (or as `token` in the `--json` document),
//! so `TOKEN=$(mcp-hub client add NAME)` works; everything else goes to stderr.

use super::ctx::Ctx;
use super::edit::{origin_file, pretty, route_code, wait_for};
use super::hubapi::HubApi;
use super::out;
use super::reload::{self, Reloaded};
use crate::config::clients::{self, Client};
use crate::config::dropin::{self, CLIENTS};
use crate::config::{edit, Config};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Add a named client with a fresh token, printed once, and reload the hub
    ///
    /// Writes conf.d/client-NAME.json holding the token's SHA-256 only.
    ///
    ///   TOKEN=$(mcp-hub client add laptop)
    ///   mcp-hub client add ci --servers fetch --rate 60/min --max-concurrent 2
    ///   mcp-hub client add notes --servers fs --tools fs=read_file,list_directory
    ///   mcp-hub client add ro --groups all --tools 'fs=!write_file,move_file'
    ///
    /// The whole merged config is validated with the new client before
    /// anything is written. The token is shown on stdout only this once.
    #[command(verbatim_doc_comment)]
    Add(AddArgs),
    /// List named clients: what each may reach, its limits, and its file
    ///
    /// Servers, groups, tool rules, rate and limits, the file each is defined
    /// in, and its last use when the running hub reports it. Never shows a
    /// token or a hash.
    List,
    /// Remove a named client and reload: the hub ends its sessions
    ///
    /// Deletes its drop-in, or its entry in the file defining it, with a
    /// backup (see `mcp-hub restore`).
    ///
    ///   mcp-hub client revoke laptop
    #[command(verbatim_doc_comment)]
    Revoke(NameArgs),
    /// Give a client a new token, printed once; the old one works for --grace
    ///
    /// The old token's hash moves to `previous` with `until` = now + grace;
    /// after that it gets 401.
    ///
    ///   NEW=$(mcp-hub client rotate laptop)             # old token valid 24h more
    ///   mcp-hub client rotate laptop --grace 0s         # old token ends now
    ///
    /// Retired tokens whose time has passed are dropped from the file.
    #[command(verbatim_doc_comment)]
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The client's name: ^[a-z0-9][a-z0-9_-]{0,31}$ (it shows in logs, audit lines and metrics)
    pub name: String,
    /// Servers whose own routes (/NAME/mcp, /NAME/sse, /NAME/openapi.json) it may
    /// use, comma-separated; "*" for all (default: every server)
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub servers: Option<Vec<String>>,
    /// Groups (/g/NAME/…) it may open, comma-separated; "*" for all (default: none)
    #[arg(long, value_delimiter = ',', value_name = "G,H")]
    pub groups: Option<Vec<String>>,
    /// The only tools it may call on a server: SERVER=TOOL,TOOL (repeatable, one
    /// per server); SERVER=!TOOL,TOOL blocks those instead. Applies on the
    /// server's own routes and inside groups.
    #[arg(long, value_name = "SERVER=TOOLS")]
    pub tools: Vec<String>,
    /// Requests at most, e.g. 120/min or 10/s (default: no limit)
    #[arg(long, value_name = "N/PERIOD")]
    pub rate: Option<String>,
    /// Requests in flight at most (default: no limit)
    #[arg(long = "max-concurrent", value_name = "N")]
    pub max_concurrent: Option<u32>,
    /// Open sessions at most (default: mcpProxy.options.maxSessionsPerToken, 1024)
    #[arg(long = "max-sessions", value_name = "N")]
    pub max_sessions: Option<u32>,
    /// Replace conf.d/client-NAME.json if it exists (the old token stops working;
    /// the old file is backed up)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    pub name: String,
    /// How long the old token keeps working, e.g. 24h, 30m, 0s
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub grace: String,
}

pub fn client(ctx: &Ctx, a: ClientArgs) -> anyhow::Result<bool> {
    match a.command {
        ClientCommand::Add(a) => add(ctx, a),
        ClientCommand::List => list(ctx),
        ClientCommand::Revoke(a) => revoke(ctx, a),
        ClientCommand::Rotate(a) => rotate(ctx, a),
    }
}

/// 32 random bytes, base64url without padding (43 characters).
fn new_token() -> anyhow::Result<String> {
    use base64::Engine;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow!("cannot get random bytes for a token: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if !clients::name_is_valid(name) {
        bail!("client name {name:?}: must match {}", clients::NAME_RULE);
    }
    Ok(())
}

/// The client entry `add` writes, as the config file spells it.
fn entry(a: &AddArgs, sha: &str) -> anyhow::Result<Map<String, Value>> {
    let mut e = Map::new();
    e.insert("tokenSha256".into(), json!(sha));
    let list = |v: &[String], what: &str| -> anyhow::Result<Value> {
        let v: Vec<&str> = v
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if v.is_empty() {
            bail!("--{what}: give at least one name (or \"*\")");
        }
        Ok(json!(v))
    };
    if let Some(s) = &a.servers {
        e.insert("servers".into(), list(s, "servers")?);
    }
    if let Some(g) = &a.groups {
        e.insert("groups".into(), list(g, "groups")?);
    }
    if !a.tools.is_empty() {
        let mut tools = Map::new();
        for t in &a.tools {
            let (server, rest) = t
                .split_once('=')
                .ok_or_else(|| anyhow!("--tools {t:?}: write it as SERVER=TOOL,TOOL"))?;
            let server = server.trim();
            if server.is_empty() {
                bail!("--tools {t:?}: the server name is empty");
            }
            let (mode, rest) = match rest.trim().strip_prefix('!') {
                Some(r) => ("block", r),
                None => ("allow", rest),
            };
            let names: Vec<&str> = rest
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if mode == "block" && names.is_empty() {
                bail!("--tools {t:?}: name the tools to block");
            }
            if tools.contains_key(server) {
                bail!("--tools: {server:?} given twice; list all its tools in one --tools");
            }
            tools.insert(server.into(), json!({"mode": mode, "list": names}));
        }
        e.insert("tools".into(), Value::Object(tools));
    }
    if let Some(r) = &a.rate {
        e.insert("rate".into(), json!(r));
    }
    if let Some(n) = a.max_concurrent {
        e.insert("maxConcurrent".into(), json!(n));
    }
    if let Some(n) = a.max_sessions {
        e.insert("maxSessions".into(), json!(n));
    }
    Ok(e)
}

/// The drop-in `add` writes for one client.
fn render(name: &str, entry: Map<String, Value>) -> String {
    let v = json!({"mcpProxy": {"options": {"clients": {name: entry}}}});
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// The drop-in `add` writes a client as.
fn dropin_path(files: &dropin::Files, name: &str) -> PathBuf {
    dropin::dir(&files.main).join(format!("client-{name}.json"))
}

/// A route of the running hub the client may reach, to see its token work:
/// one of its servers, else one of its groups.
fn probe_route(cfg: &Config, c: &Client) -> Option<String> {
    cfg.servers
        .values()
        .find(|s| !s.disabled && c.reaches_server(&s.name))
        .map(|s| s.name.clone())
        .or_else(|| {
            cfg.groups
                .keys()
                .find(|g| c.reaches_group(g))
                .map(|g| format!("g/{g}"))
        })
}

/// After a reload: waits until `token` is accepted on a route the client may
/// reach (anything but 401). `Ok(None)` when there is no such route to try.
fn verify(ctx: &Ctx, cfg: &Config, name: &str, token: &str) -> anyhow::Result<Option<String>> {
    let Some(c) = cfg.hub.clients.iter().find(|c| &*c.name == name) else {
        return Ok(None);
    };
    let Some(route) = probe_route(cfg, c) else {
        return Ok(None);
    };
    let api = HubApi::new(
        ctx.hub_url(cfg)?,
        Some(token.to_string()),
        Duration::from_secs(10),
    )?;
    wait_for(
        &api,
        &format!("accept the new token on /{route}/mcp"),
        |api| route_code(api, &route).map(|c| c != 401),
    )?;
    Ok(Some(format!("/{route}/mcp")))
}

/// Reload, then (with a token) check that the hub took it. Never fails: what
/// went wrong goes in the result, since the change is already written and
/// the token must still be shown.
fn reload_and_verify(
    ctx: &Ctx,
    cfg: &Config,
    name: &str,
    token: Option<&str>,
    result: &mut Value,
) -> bool {
    let reloaded = match reload::reload(ctx) {
        Ok(r) => r,
        Err(e) => {
            result["ok"] = json!(false);
            result["error"] = json!(out::message(&e));
            return false;
        }
    };
    result["reload"] = json!(reloaded.describe());
    if !ctx.json() {
        out::note(reloaded.describe());
    }
    if let (Reloaded::Signal(_) | Reloaded::Systemd, Some(t)) = (&reloaded, token) {
        match verify(ctx, cfg, name, t) {
            Ok(Some(route)) => {
                result["verified"] = json!(route);
                if !ctx.json() {
                    out::note(format!("verified: the hub accepts the token on {route}"));
                }
            }
            Ok(None) => {}
            Err(e) => {
                result["ok"] = json!(false);
                result["error"] = json!(out::message(&e));
                return false;
            }
        }
    }
    true
}

/// Ends a command that wrote a token: the JSON document (holding the token),
/// or the error line after the token already printed.
fn finish(ctx: &Ctx, result: Value) -> anyhow::Result<bool> {
    let ok = result["ok"] == json!(true);
    if ctx.json() {
        out::json(&result);
    } else if !ok {
        out::note(format!(
            "error: {}",
            result["error"].as_str().unwrap_or("failed")
        ));
    }
    Ok(ok)
}

/// Prints a new token: alone on stdout, with the warning on stderr.
fn show_token(ctx: &Ctx, token: &str) {
    if !ctx.json() {
        println!("{token}");
        out::note("the token above is shown only this once: the config keeps only its SHA-256");
    }
}

fn add(ctx: &Ctx, a: AddArgs) -> anyhow::Result<bool> {
    check_name(&a.name)?;
    let token = new_token()?;
    let entry = entry(&a, &clients::sha256_hex(&token))?;
    let lock = ctx.lock(false)?;
    let (files, cfg) = ctx.load()?;
    let name = a.name.clone();
    let path = dropin_path(&files, &name);
    let old = files.text(&path);
    if let Some(from) = cfg.origins.client(&name) {
        if Path::new(from) != path {
            bail!("a client named {name:?} is already defined in {from}; `mcp-hub client revoke {name}` it first, or `mcp-hub client rotate {name}` for a new token");
        }
        if !a.force {
            bail!("a client named {name:?} already exists in {from}; --force replaces it (its token stops working), `mcp-hub client rotate {name}` gives it a new token");
        }
    } else if old.is_some() && !a.force {
        bail!(
            "{} exists (defining no client {name:?}); --force replaces it (with a backup)",
            path.display()
        );
    }
    let text = render(&name, entry);
    let mut next = files.clone();
    next.set(&path, Some(text.clone()));
    let new_cfg = ctx.validate(&next).with_context(|| {
        format!(
            "not written: {} would make the config invalid",
            path.display()
        )
    })?;
    let backup = edit::apply(
        &ctx.config,
        "client-add",
        &name,
        &[(path.clone(), Some(text))],
    )?;
    drop(lock);
    show_token(ctx, &token);
    if !ctx.json() {
        out::note(format!("wrote {} (backup {backup})", path.display()));
    }
    for w in new_cfg
        .warnings
        .iter()
        .filter(|w| w.starts_with(&format!("{CLIENTS}.{name}.")))
    {
        out::note(format!("warning: {w}"));
    }
    let mut result = json!({"ok": true, "name": name, "token": token,
        "file": path, "backup": backup});
    reload_and_verify(ctx, &new_cfg, &name, Some(&token), &mut result);
    finish(ctx, result)
}

/// The file defining client `name`, its JSON (for rewriting), and the
/// client's entry in it.
fn defining(
    files: &dropin::Files,
    cfg: &Config,
    name: &str,
) -> anyhow::Result<(PathBuf, Map<String, Value>)> {
    let from = cfg
        .origins
        .client(name)
        .ok_or_else(|| anyhow!("no client named {name:?}; `mcp-hub client list` shows them"))?;
    origin_file(files, from)
}

/// `mcpProxy.options.clients` of a file's JSON.
fn clients_mut<'a>(
    root: &'a mut Map<String, Value>,
    path: &Path,
) -> anyhow::Result<&'a mut Map<String, Value>> {
    root.get_mut("mcpProxy")
        .and_then(|p| p.get_mut("options"))
        .and_then(|o| o.get_mut("clients"))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("{}: no {CLIENTS}", path.display()))
}

/// Drops `mcpProxy.options.clients`, `options` and `mcpProxy` when each is empty.
fn prune(root: &mut Map<String, Value>) {
    let Some(Value::Object(p)) = root.get_mut("mcpProxy") else {
        return;
    };
    if let Some(Value::Object(o)) = p.get_mut("options") {
        if o.get("clients")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            o.shift_remove("clients");
        }
        if o.is_empty() {
            p.shift_remove("options");
        }
    }
    if p.is_empty() {
        root.shift_remove("mcpProxy");
    }
}

/// Writes one validated file change with a backup, under the lock.
fn write(
    ctx: &Ctx,
    files: &dropin::Files,
    op: &str,
    name: &str,
    path: PathBuf,
    text: Option<String>,
) -> anyhow::Result<(String, Config)> {
    let mut next = files.clone();
    next.set(&path, text.clone());
    let cfg = ctx
        .validate(&next)
        .context("not changed: the result would be an invalid config")?;
    let backup = edit::apply(&ctx.config, op, name, &[(path, text)])?;
    Ok((backup, cfg))
}

fn revoke(ctx: &Ctx, a: NameArgs) -> anyhow::Result<bool> {
    check_name(&a.name)?;
    let lock = ctx.lock(false)?;
    let (files, cfg) = ctx.load()?;
    let (path, mut root) = defining(&files, &cfg, &a.name)?;
    clients_mut(&mut root, &path)?.shift_remove(&a.name);
    prune(&mut root);
    let new = if path != files.main
        && root
            .values()
            .all(|v| v.as_object().is_some_and(Map::is_empty))
    {
        None
    } else {
        Some(pretty(&root))
    };
    let deleted = new.is_none();
    let (backup, new_cfg) = write(ctx, &files, "client-revoke", &a.name, path.clone(), new)?;
    drop(lock);
    if !ctx.json() {
        out::note(format!(
            "{} {} (backup {backup})",
            if deleted { "deleted" } else { "wrote" },
            path.display()
        ));
    }
    if new_cfg.hub.clients.is_empty() && new_cfg.hub.auth_tokens.is_empty() {
        out::note(
            "warning: no named client and no mcpProxy.options.authTokens remain: routes without their own authTokens need no token now",
        );
    }
    let mut result = json!({"ok": true, "name": a.name, "file": path,
        "deleted": deleted, "backup": backup});
    reload_and_verify(ctx, &new_cfg, &a.name, None, &mut result);
    if !ctx.json() && result["ok"] == json!(true) {
        println!("revoked {}", a.name);
    }
    finish(ctx, result)
}

/// `now + grace`, rounded up to a whole second, as RFC 3339 UTC.
fn until(now: SystemTime, grace: Duration) -> String {
    let t = now + grace;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn rotate(ctx: &Ctx, a: RotateArgs) -> anyhow::Result<bool> {
    check_name(&a.name)?;
    let grace = humantime::parse_duration(a.grace.trim()).with_context(|| {
        format!(
            "--grace {:?} is not a duration (e.g. 24h, 30m, 0s)",
            a.grace
        )
    })?;
    let token = new_token()?;
    let lock = ctx.lock(false)?;
    let (files, cfg) = ctx.load()?;
    let (path, mut root) = defining(&files, &cfg, &a.name)?;
    let at = format!("{}: {CLIENTS}.{}", path.display(), a.name);
    let entry = clients_mut(&mut root, &path)?
        .get_mut(&a.name)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("{at}: not an object"))?;
    let old = match (entry.get("tokenSha256"), entry.get("token")) {
        (Some(Value::String(h)), _) => h.trim().to_ascii_lowercase(),
        (_, Some(Value::String(t))) if t.contains("${") => bail!(
            "{at}.token is {t:?}: its token comes from there, so rotate it there (or replace \"token\" by a \"tokenSha256\" first)"
        ),
        (_, Some(Value::String(t))) => clients::sha256_hex(t),
        _ => bail!("{at}: has no tokenSha256 or token to rotate"),
    };
    let now = SystemTime::now();
    // Keep the retired tokens still valid; drop the ones whose time passed.
    let mut previous: Vec<Value> = entry
        .get("previous")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["until"]
                .as_str()
                .and_then(|u| humantime::parse_rfc3339_weak(u.trim()).ok())
                .is_none_or(|u| u > now)
        })
        .collect();
    if !grace.is_zero() {
        previous.push(json!({"tokenSha256": old, "until": until(now, grace)}));
    }
    entry.shift_remove("token");
    entry.insert("tokenSha256".into(), json!(clients::sha256_hex(&token)));
    if previous.is_empty() {
        entry.shift_remove("previous");
    } else {
        entry.insert("previous".into(), Value::Array(previous));
    }
    let (backup, new_cfg) = write(
        ctx,
        &files,
        "client-rotate",
        &a.name,
        path.clone(),
        Some(pretty(&root)),
    )?;
    drop(lock);
    show_token(ctx, &token);
    let old_until = (!grace.is_zero()).then(|| until(now, grace));
    if !ctx.json() {
        out::note(format!("wrote {} (backup {backup})", path.display()));
        out::note(match &old_until {
            Some(u) => format!("the old token works until {u}"),
            None => "the old token no longer works".into(),
        });
    }
    let mut result = json!({"ok": true, "name": a.name, "token": token,
        "file": path, "backup": backup, "oldTokenUntil": old_until});
    reload_and_verify(ctx, &new_cfg, &a.name, Some(&token), &mut result);
    finish(ctx, result)
}

mod list;
use list::list;

#[cfg(test)]
mod tests;
