//! The commands that change the config: `add`, `remove`, `enable` and
//! `disable` (`restore` is in its own file and shares `commit`). Each builds the new file set in memory, validates the whole
//! merged config exactly as the hub will load it, and only then writes
//! (atomically, with a backup: `config::edit`), reloads the running hub, and
//! checks the effect through the hub's front door.
//!
//! `add` writes one drop-in, `conf.d/NAME.json`. `remove`, `enable` and
//! `disable` change the file the server is defined in; a file with comments
//! (which a rewrite would lose) is refused with what to do instead.

use super::ctx::{block_on, Ctx};
use super::hubapi::HubApi;
use super::lock::ConfigLock;
use super::reload::{self, Reloaded};
use super::{inspect, out, Which};
use crate::config::{dropin, edit, Config, Upstream};
use crate::sandbox::{grant, profile};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The server's name: 1-32 of a-z 0-9 _ (it becomes /NAME/mcp and /NAME/sse)
    pub name: String,
    /// Environment variable for the server (repeatable); ${VAR} references are kept
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory of the server
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// One server process for all clients, or one per client session
    #[arg(long, value_parser = ["shared", "per-client"])]
    pub session: Option<String>,
    /// The MCP era spoken upstream (default auto: probed with server/discover
    /// at each start; legacy skips the probe for servers that log it as an error)
    #[arg(long, value_parser = ["auto", "legacy", "2026-07-28"])]
    pub protocol: Option<String>,
    /// Sandbox: a path the server may read (repeatable)
    #[arg(long = "read", value_name = "PATH")]
    pub read: Vec<String>,
    /// Sandbox: a path the server may write (repeatable)
    #[arg(long = "write", value_name = "PATH")]
    pub write: Vec<String>,
    /// Sandbox: a path the server may read and execute (repeatable)
    #[arg(long = "exec", value_name = "PATH")]
    pub exec: Vec<String>,
    /// Sandbox: the host's network, or only loopback
    #[arg(long, value_parser = ["host", "none"])]
    pub network: Option<String>,
    /// Sandbox: memory limit (cgroup v2), e.g. 256M
    #[arg(long = "memory-max", value_name = "SIZE")]
    pub memory_max: Option<String>,
    /// Sandbox: the browser profile (sandbox.browser), for a server that runs
    /// Chromium (e.g. @playwright/mcp): its /etc files, fonts and a private /dev/shm
    #[arg(long)]
    pub browser: bool,
    /// A remote server's URL (instead of a command)
    #[arg(long, conflicts_with_all = ["env", "cwd", "read", "write", "exec", "network", "memory_max", "browser", "install_python", "overrides"])]
    pub url: Option<String>,
    /// A remote server's transport (default: sse for a URL ending in /sse, else streamable-http)
    #[arg(long, requires = "url", value_parser = ["sse", "streamable-http"])]
    pub transport: Option<String>,
    /// A header sent to a remote server (repeatable), e.g. 'Authorization: Bearer ${PG_TOKEN}'
    #[arg(long = "header", value_name = "'K: V'", requires = "url")]
    pub headers: Vec<String>,
    /// Package runners: the Python to install with, a version spec (">=3.12") or a path
    #[arg(long = "install-python", value_name = "SPEC")]
    pub install_python: Option<String>,
    /// Package runners: a requirement that wins over the package's own (repeatable),
    /// e.g. 'mcp<2' (uvx, pipx run) or 'minimist@1.2.8' (npx)
    #[arg(long = "override", value_name = "REQ")]
    pub overrides: Vec<String>,
    /// Replace conf.d/NAME.json if it exists (the old file is backed up)
    #[arg(long)]
    pub force: bool,
    /// Print the file that would be written and the diff; change nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Do not run `mcp-hub test NAME` after reloading
    #[arg(long = "no-test")]
    pub no_test: bool,
    /// Apply the setfacl fixes for sandbox paths the servers' user cannot use (needs root)
    #[arg(long)]
    pub grant: bool,
    #[command(flatten)]
    pub user: super::check::GrantUser,
    /// The stdio server's command and arguments, after --
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    pub name: String,
    /// Print the change; write nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ToggleArgs {
    pub name: String,
    /// Print the change; write nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// A unified diff of one file, for --dry-run.
pub fn diff(path: &Path, old: Option<&str>, new: Option<&str>) -> String {
    let name = path.display().to_string();
    similar::TextDiff::from_lines(old.unwrap_or(""), new.unwrap_or(""))
        .unified_diff()
        .header(
            &if old.is_some() {
                name.clone()
            } else {
                "/dev/null".into()
            },
            &if new.is_some() {
                name
            } else {
                "/dev/null".into()
            },
        )
        .to_string()
}

fn split_kv<'a>(s: &'a str, sep: char, what: &str) -> anyhow::Result<(&'a str, &'a str)> {
    let (k, v) = s
        .split_once(sep)
        .ok_or_else(|| anyhow!("{what} {s:?}: write it as KEY{sep}VALUE"))?;
    let k = k.trim();
    if k.is_empty() {
        bail!("{what} {s:?}: the name is empty");
    }
    Ok((k, v))
}

/// The server entry `add` writes, as the config file spells it.
fn entry(a: &AddArgs) -> anyhow::Result<Value> {
    let mut e = Map::new();
    if let Some(url) = &a.url {
        if !a.command.is_empty() {
            bail!("give either --url or a command after --, not both");
        }
        let u = url::Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
        e.insert("url".into(), json!(url));
        let transport = match a.transport.as_deref() {
            Some(t) => t,
            None if u.path().trim_end_matches('/').ends_with("/sse") => "sse",
            None => "streamable-http",
        };
        e.insert("transportType".into(), json!(transport));
        if !a.headers.is_empty() {
            let mut h = Map::new();
            for s in &a.headers {
                let (k, v) = split_kv(s, ':', "--header")?;
                let v = v.trim();
                crate::config::check_header(k, v).map_err(|m| anyhow!("--header {s:?}: {m}"))?;
                h.insert(k.into(), json!(v));
            }
            e.insert("headers".into(), Value::Object(h));
        }
    } else {
        let Some((cmd, args)) = a.command.split_first() else {
            bail!("give the server's command after -- (mcp-hub add NAME -- COMMAND ARGS…), or --url URL");
        };
        e.insert("command".into(), json!(cmd));
        if !args.is_empty() {
            e.insert("args".into(), json!(args));
        }
        if !a.env.is_empty() {
            let mut env = Map::new();
            for s in &a.env {
                let (k, v) = split_kv(s, '=', "--env")?;
                env.insert(k.into(), json!(v));
            }
            e.insert("env".into(), Value::Object(env));
        }
        if let Some(c) = &a.cwd {
            e.insert("cwd".into(), json!(c));
        }
        let mut sb = Map::new();
        for (key, list) in [("read", &a.read), ("write", &a.write), ("exec", &a.exec)] {
            if !list.is_empty() {
                sb.insert(key.into(), json!(list));
            }
        }
        if let Some(n) = &a.network {
            sb.insert("network".into(), json!(n));
        }
        if let Some(m) = &a.memory_max {
            sb.insert("memoryMax".into(), json!(m));
        }
        if a.browser {
            sb.insert("browser".into(), json!(true));
        }
        if !sb.is_empty() {
            e.insert("sandbox".into(), Value::Object(sb));
        }
        let mut install = Map::new();
        if let Some(p) = &a.install_python {
            install.insert("python".into(), json!(p));
        }
        if !a.overrides.is_empty() {
            install.insert("overrides".into(), json!(a.overrides));
        }
        if !install.is_empty() {
            e.insert("install".into(), Value::Object(install));
        }
    }
    if let Some(s) = &a.session {
        e.insert("session".into(), json!(s));
    }
    if let Some(p) = &a.protocol {
        e.insert("protocol".into(), json!(p));
    }
    Ok(Value::Object(e))
}

fn render(servers: Map<String, Value>) -> String {
    let v = json!({ "mcpServers": servers });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// The command must be there: an absolute or relative path to an executable,
/// or a name on the server's PATH.
fn check_command(cfg: &Config, name: &str) -> anyhow::Result<()> {
    let Some(Upstream::Stdio(spec)) = cfg.servers.get(name).map(|s| &s.upstream) else {
        return Ok(());
    };
    let path = spec
        .env
        .get("PATH")
        .cloned()
        .unwrap_or_else(profile::inherited_path);
    if profile::resolve(&spec.command, &path, spec.cwd.as_deref()).is_none() {
        bail!(
            "mcpServers.{name}.command: {:?} is not an executable file{}",
            spec.command,
            if spec.command.contains('/') {
                String::new()
            } else {
                format!(" on PATH ({path})")
            }
        );
    }
    Ok(())
}

/// Waits (up to 15 s) until `done` holds for the hub's answers.
pub(super) fn wait_for<F>(api: &HubApi, what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut(&HubApi) -> Option<bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if done(api) == Some(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the hub did not {what} within 15s of the reload (see `mcp-hub logs` or its log)"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn api(ctx: &Ctx, cfg: &Config, server: Option<&str>) -> anyhow::Result<HubApi> {
    HubApi::new(
        ctx.hub_url(cfg)?,
        ctx.token(cfg, server)?,
        Duration::from_secs(10),
    )
}

/// True when the hub's /status lists `name`.
fn listed(api: &HubApi, name: &str) -> Option<bool> {
    let s = block_on(api.status()).ok()?.ok()?;
    Some(
        s["servers"]
            .as_array()?
            .iter()
            .any(|x| x["name"] == json!(name)),
    )
}

pub(super) fn route_code(api: &HubApi, name: &str) -> Option<u16> {
    block_on(api.route_code(name)).ok()?.ok()
}

pub fn add(ctx: &Ctx, a: AddArgs) -> anyhow::Result<bool> {
    let name = a.name.clone();
    if !dropin::name_is_portable(&name) {
        bail!("server name {name:?}: use {}", dropin::NAME_RULE);
    }
    let entry = entry(&a)?;
    let lock = ctx.lock(a.dry_run)?;
    let (files, cfg) = ctx.load()?;
    let path = files.dropin_path(&name);
    let old = files.text(&path).map(String::from);
    if let Some(from) = cfg.origins.0.get(&name) {
        if Path::new(from) != path {
            bail!("a server named {name:?} is already defined in {from}; `mcp-hub remove {name}` it first");
        }
        if !a.force {
            bail!("a server named {name:?} already exists in {from}; --force replaces it (with a backup)");
        }
    } else if old.is_some() && !a.force {
        bail!(
            "{} exists (defining other servers); --force replaces it (with a backup)",
            path.display()
        );
    }
    let text = render(Map::from_iter([(name.clone(), entry)]));
    let mut next = files.clone();
    next.set(&path, Some(text.clone()));
    let new_cfg = ctx.validate(&next).with_context(|| {
        format!(
            "not written: {} would make the config invalid",
            path.display()
        )
    })?;
    check_command(&new_cfg, &name).context("not written")?;
    if let Some(crate::config::Upstream::Stdio(spec)) =
        new_cfg.servers.get(&name).map(|s| &s.upstream)
    {
        if let Some(Err(e)) = crate::sandbox::install::check(&name, spec) {
            bail!("not written: {e}");
        }
    }

    // Grants: usable by the servers' user, or fixed with --grant.
    let user = grant::server_user(a.user.run_as.as_deref()).map_err(anyhow::Error::msg)?;
    let mut report = grant::check(&new_cfg, Some(&name), &user);
    let mut granted = vec![];
    if !report.problems.is_empty() && a.grant && !a.dry_run {
        for p in &report.problems {
            grant::apply(p).map_err(|e| anyhow!("{}: --grant: {e}", p.at))?;
            granted.push(p.fix_line());
        }
        report = grant::check(&new_cfg, Some(&name), &user);
    }
    if !report.problems.is_empty() && !a.dry_run {
        let list: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        bail!(
            "not written: {}{}",
            list.join("; "),
            if a.grant {
                ""
            } else {
                " (or run `mcp-hub add` with --grant, as root)"
            }
        );
    }

    if a.dry_run {
        if ctx.json() {
            out::json(
                &json!({"ok": true, "dryRun": true, "file": path, "content": text,
                "diff": diff(&path, old.as_deref(), Some(&text)),
                "grantProblems": report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()}),
            );
        } else {
            println!("would write {}:\n{text}", path.display());
            print!("{}", diff(&path, old.as_deref(), Some(&text)));
            for p in &report.problems {
                println!("would need a grant: {p}");
            }
            println!("(dry run: nothing written)");
        }
        return Ok(true);
    }

    let backup = edit::apply(&ctx.config, "add", &name, &[(path.clone(), Some(text))])?;
    drop(lock);
    let reloaded = reload::reload(ctx)?;
    let mut result = json!({"ok": true, "file": path, "backup": backup,
        "reload": reloaded.describe(), "granted": granted});
    if !ctx.json() {
        println!("wrote {} (backup {backup})", path.display());
        for g in &granted {
            println!("granted: {g}");
        }
        println!("{}", reloaded.describe());
    }
    let mut ok = true;
    if reloaded.running() {
        let api = api(ctx, &new_cfg, Some(&name))?;
        wait_for(&api, &format!("list {name}"), |api| listed(api, &name))?;
        if !a.no_test {
            let (passed, report, text) =
                inspect::run_test(ctx, &new_cfg, &name, Which::Both, Duration::from_secs(60))?;
            result["test"] = report;
            if !ctx.json() {
                print!("{text}");
            }
            if !passed {
                ok = false;
                result["ok"] = json!(false);
                out::note(format!(
                    "error: {name} was added but its test failed; the file stays ({}): fix it, or `mcp-hub remove {name}`",
                    path.display()
                ));
            }
        }
    }
    if ctx.json() {
        out::json(&result);
    }
    Ok(ok)
}

/// A file's JSON for rewriting, refusing one whose comments a rewrite would lose.
pub(super) fn rewritable(path: &Path, text: &str) -> anyhow::Result<Map<String, Value>> {
    let mut stripped = String::new();
    std::io::Read::read_to_string(
        &mut json_comments::StripComments::new(text.as_bytes()),
        &mut stripped,
    )?;
    if stripped != text {
        bail!(
            "{} has comments, which rewriting it would lose: edit it by hand (then `systemctl reload mcp-hub`)",
            path.display()
        );
    }
    match serde_json::from_str(text)? {
        Value::Object(m) => Ok(m),
        _ => bail!("{}: not a JSON object", path.display()),
    }
}

pub(super) fn pretty(v: &Map<String, Value>) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

/// The file defining `name`, and its server map (for rewriting).
fn defining(
    files: &dropin::Files,
    cfg: &Config,
    name: &str,
) -> anyhow::Result<(PathBuf, Map<String, Value>)> {
    let from = cfg
        .origins
        .0
        .get(name)
        .ok_or_else(|| anyhow!("no server named {name:?}; `mcp-hub list` shows them"))?;
    origin_file(files, from)
}

/// The config file named by an origin (where something is defined) and its
/// JSON, for rewriting.
pub(super) fn origin_file(
    files: &dropin::Files,
    from: &str,
) -> anyhow::Result<(PathBuf, Map<String, Value>)> {
    let path = PathBuf::from(from);
    let text = files
        .text(&path)
        .ok_or_else(|| anyhow!("{from}: not among the config files"))?;
    let root = rewritable(&path, text)?;
    Ok((path, root))
}

/// Writes (or prints, with --dry-run) one file change, validates first,
/// releases the config lock once written, reloads, and returns (backup,
/// reload) when it was written.
pub(super) fn commit(
    ctx: &Ctx,
    lock: Option<ConfigLock>,
    files: &dropin::Files,
    op: &str,
    name: &str,
    changes: Vec<(PathBuf, Option<String>)>,
    dry_run: bool,
) -> anyhow::Result<Option<(String, Reloaded, Config)>> {
    let mut next = files.clone();
    for (p, t) in &changes {
        next.set(p, t.clone());
    }
    let cfg = ctx
        .validate(&next)
        .context("not changed: the result would be an invalid config")?;
    if dry_run {
        let diffs: Vec<String> = changes
            .iter()
            .map(|(p, t)| diff(p, files.text(p), t.as_deref()))
            .collect();
        if ctx.json() {
            out::json(&json!({"ok": true, "dryRun": true, "diff": diffs.concat()}));
        } else {
            print!("{}", diffs.concat());
            println!("(dry run: nothing written)");
        }
        return Ok(None);
    }
    let backup = edit::apply(&ctx.config, op, name, &changes)?;
    drop(lock);
    let reloaded = reload::reload(ctx)?;
    if !ctx.json() {
        for (p, t) in &changes {
            println!(
                "{} {}",
                if t.is_some() { "wrote" } else { "deleted" },
                p.display()
            );
        }
        println!("backup {backup}");
        println!("{}", reloaded.describe());
    }
    Ok(Some((backup, reloaded, cfg)))
}

pub fn remove(ctx: &Ctx, a: RemoveArgs) -> anyhow::Result<bool> {
    let lock = ctx.lock(a.dry_run)?;
    let (files, cfg) = ctx.load()?;
    let (path, mut root) = defining(&files, &cfg, &a.name)?;
    let servers = root
        .get_mut("mcpServers")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("{}: no mcpServers", path.display()))?;
    servers.shift_remove(&a.name);
    let is_dropin = path != files.main;
    let new = if is_dropin && servers.is_empty() && root.len() == 1 {
        None
    } else {
        Some(pretty(&root))
    };
    // The token to check the 404 with: the one that reached it before.
    let api = api(ctx, &cfg, Some(&a.name))?;
    let Some((backup, reloaded, _)) = commit(
        ctx,
        lock,
        &files,
        "remove",
        &a.name,
        vec![(path, new)],
        a.dry_run,
    )?
    else {
        return Ok(true);
    };
    let mut verified = false;
    if reloaded.running() {
        wait_for(&api, &format!("drop /{}/mcp (404)", a.name), |api| {
            route_code(api, &a.name).map(|c| c == 404)
        })?;
        verified = true;
        if !ctx.json() {
            println!("verified: /{}/mcp answers 404", a.name);
        }
    }
    if ctx.json() {
        out::json(
            &json!({"ok": true, "backup": backup, "reload": reloaded.describe(), "verified404": verified}),
        );
    }
    Ok(true)
}

pub fn toggle(ctx: &Ctx, a: ToggleArgs, disable: bool) -> anyhow::Result<bool> {
    let lock = ctx.lock(a.dry_run)?;
    let (files, cfg) = ctx.load()?;
    let (path, mut root) = defining(&files, &cfg, &a.name)?;
    let server = root
        .get_mut("mcpServers")
        .and_then(|s| s.get_mut(&a.name))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("{}: mcpServers.{} is not an object", path.display(), a.name))?;
    let opts = server
        .entry("options")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| {
            anyhow!(
                "{}: mcpServers.{}.options is not an object",
                path.display(),
                a.name
            )
        })?;
    if disable {
        opts.insert("disabled".into(), json!(true));
    } else {
        opts.shift_remove("disabled");
        if opts.is_empty() {
            server.shift_remove("options");
        }
    }
    let op = if disable { "disable" } else { "enable" };
    let Some((backup, reloaded, new_cfg)) = commit(
        ctx,
        lock,
        &files,
        op,
        &a.name,
        vec![(path, Some(pretty(&root)))],
        a.dry_run,
    )?
    else {
        return Ok(true);
    };
    if reloaded.running() {
        let api = api(ctx, &new_cfg, Some(&a.name))?;
        wait_for(&api, &format!("{op} {}", a.name), |api| {
            route_code(api, &a.name).map(|c| (c == 404) == disable)
        })?;
    }
    if ctx.json() {
        out::json(&json!({"ok": true, "backup": backup, "reload": reloaded.describe()}));
    } else {
        println!(
            "{} {}",
            a.name,
            if disable { "disabled" } else { "enabled" }
        );
    }
    Ok(true)
}
