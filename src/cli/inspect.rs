//! The commands that look without changing anything: `list`, `show`, `test`,
//! `tools` and `call`. Live facts come from the running hub (its `/status`,
//! or an MCP session through its routes); the config is the fallback, and
//! output says which one it shows.

use super::ctx::{block_on, Ctx};
use super::hubapi::HubApi;
use super::{out, Which};
use crate::config::{Config, ServerConfig, Upstream};
use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Names,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// table, or names: one server name per line
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct NameArg {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    pub name: String,
    /// Which of the server's routes to test
    #[arg(long, value_enum, default_value = "both")]
    pub transport: Which,
    /// How long each step may take (the first start of an npx/uvx server downloads it)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    pub name: String,
    pub tool: String,
    /// The tool's arguments as a JSON object
    #[arg(default_value = "{}")]
    pub arguments: String,
    /// How long the call may take
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The two client URLs of a server.
pub fn urls(base: &str, name: &str) -> (String, String) {
    (format!("{base}/{name}/mcp"), format!("{base}/{name}/sse"))
}

fn server<'a>(cfg: &'a Config, name: &str) -> anyhow::Result<&'a ServerConfig> {
    cfg.servers
        .get(name)
        .ok_or_else(|| anyhow!("no server named {name:?}; `mcp-hub list` shows them"))
}

pub fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    if a.format == Format::Names && !ctx.json() {
        for n in cfg.servers.keys() {
            println!("{n}");
        }
        return Ok(true);
    }
    let base = ctx.public_base(&cfg, None)?;
    let live = ctx
        .token(&cfg, None)
        .and_then(|t| HubApi::new(ctx.hub_url(&cfg)?, t, Duration::from_secs(5)))
        .and_then(|api| block_on(api.status())?);
    let (source, status) = match &live {
        Ok(s) => ("hub", Some(s)),
        Err(_) => ("config", None),
    };
    let live_of = |name: &str| -> Option<&Value> {
        status?["servers"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == json!(name))
    };
    let mut rows = vec![];
    let mut items = vec![];
    for s in cfg.servers.values() {
        let (mcp, sse) = urls(&base, &s.name);
        let l = live_of(&s.name);
        let state = match l {
            Some(l) => l["state"].as_str().unwrap_or("?").to_string(),
            None if s.disabled => "disabled".into(),
            None if status.is_some() => "not loaded (reload the hub)".into(),
            None => "(config only)".into(),
        };
        let field = |k: &str| l.map(|l| l[k].clone()).unwrap_or(Value::Null);
        let cell = |v: Value| match v {
            Value::Null => "-".to_string(),
            Value::String(s) => s,
            v => v.to_string(),
        };
        rows.push(vec![
            s.name.clone(),
            s.upstream.kind().into(),
            s.session.as_str().into(),
            state.clone(),
            cell(field("pid")),
            cell(field("restarts")),
            cell(field("sessions")),
            cell(field("tools")),
            mcp.clone(),
            sse.clone(),
        ]);
        items.push(json!({
            "name": s.name, "kind": s.upstream.kind(), "session": s.session.as_str(),
            "disabled": s.disabled, "state": state, "pid": field("pid"),
            "restarts": field("restarts"), "sessions": field("sessions"),
            "tools": field("tools"), "lastError": field("lastError"),
            "urls": {"mcp": mcp, "sse": sse},
            "file": cfg.origins.0.get(&s.name),
        }));
    }
    if ctx.json() {
        out::json(&json!({"source": source, "servers": items}));
        return Ok(true);
    }
    print!(
        "{}",
        out::table(
            &[
                "NAME", "KIND", "SESSION", "STATE", "PID", "RESTARTS", "SESSIONS", "TOOLS",
                "MCP URL", "SSE URL"
            ],
            &rows
        )
    );
    if let Err(e) = live {
        println!(
            "(config only: no live data from the hub: {})",
            out::message(&e)
        );
    }
    Ok(true)
}

/// A value with secrets hidden: a `${VAR}` reference shows, a literal does not.
fn mask(v: &str) -> String {
    let t = v.trim();
    if t.starts_with("${") && t.ends_with('}') && t.matches("${").count() == 1 {
        v.to_string()
    } else if let Some((scheme, rest)) = t.split_once(' ') {
        // "Bearer abc" → "Bearer ****", "Bearer ${T}" stays.
        format!("{scheme} {}", mask(rest))
    } else {
        "****".into()
    }
}

pub fn show(ctx: &Ctx, a: NameArg) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    let s = server(&cfg, &a.name)?;
    let base = ctx.public_base(&cfg, None)?;
    let (mcp, sse) = urls(&base, &s.name);
    let tokens: Vec<String> = s.auth_tokens.iter().map(|t| mask(t)).collect();
    let mut v = json!({
        "name": s.name,
        "file": cfg.origins.0.get(&s.name),
        "kind": s.upstream.kind(),
        "disabled": s.disabled,
        "session": s.session.as_str(),
        "start": if s.eager { "eager" } else { "lazy" },
        "urls": {"mcp": mcp, "sse": sse},
        "authTokens": tokens,
        "authTokensFrom": s.token_source,
        "timeout": humantime::format_duration(s.request_timeout).to_string(),
        "initTimeout": humantime::format_duration(s.init_timeout).to_string(),
        "idleTimeout": s.idle_timeout.map(|d| humantime::format_duration(d).to_string()),
        "pingInterval": s.ping_interval.map(|d| humantime::format_duration(d).to_string()),
        "toolFilter": s.tool_filter.as_ref().map(|f| format!("{f:?}")),
    });
    match &s.upstream {
        Upstream::Stdio(spec) => {
            v["command"] = json!(spec.command);
            v["args"] = json!(spec.args);
            v["env"] = json!(spec
                .env
                .iter()
                .map(|(k, val)| (k.clone(), json!(mask(val))))
                .collect::<serde_json::Map<_, _>>());
            v["cwd"] = json!(spec.cwd);
            v["home"] = json!(spec.home);
            if !spec.install.is_default() {
                v["install"] = json!({
                    "python": spec.install.python.as_ref().map(|p| p.to_string()),
                    "overrides": spec.install.overrides,
                });
            }
            // The install as recorded: version, interpreter and every pinned package.
            if let Some(p) = crate::sandbox::install::describe(spec) {
                v["package"] = p;
            }
            v["sandbox"] = match &spec.sandbox {
                None => json!({"enabled": false}),
                Some(p) => json!({
                    "enabled": true,
                    "read": p.read, "write": p.write, "exec": p.exec, "tmpfs": p.tmpfs,
                    "network": format!("{:?}", p.network).to_lowercase(),
                    "connect": p.connect, "bind": p.bind,
                    "memoryMax": p.limits.memory_max, "pidsMax": p.limits.pids_max,
                    "cpuQuotaPercent": p.limits.cpu_quota, "limitsRequired": p.limits.required,
                }),
            };
        }
        Upstream::Sse { url, headers, .. } | Upstream::Streamable { url, headers, .. } => {
            v["url"] = json!(url.as_str());
            v["headers"] = json!(headers
                .iter()
                .map(|(k, val)| (k.clone(), json!(mask(val))))
                .collect::<serde_json::Map<_, _>>());
        }
    }
    if ctx.json() {
        out::json(&v);
        return Ok(true);
    }
    let obj = v.as_object().expect("built as an object");
    let width = obj.keys().map(String::len).max().unwrap_or(0);
    for (k, val) in obj {
        let text = match val {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        println!("{k:<width$}  {text}");
    }
    Ok(true)
}

/// `test`: through the running hub, initialize and tools/list on each chosen
/// route, timed. Returns (passed, JSON report, human text).
pub fn run_test(
    ctx: &Ctx,
    cfg: &Config,
    name: &str,
    which: Which,
    timeout: Duration,
) -> anyhow::Result<(bool, Value, String)> {
    let s = server(cfg, name)?;
    if s.disabled {
        bail!("{name} is disabled (`mcp-hub enable {name}`)");
    }
    let api = HubApi::new(ctx.hub_url(cfg)?, ctx.token(cfg, Some(name))?, timeout)?;
    let routes: &[bool] = match which {
        Which::Http => &[false],
        Which::Sse => &[true],
        Which::Both => &[false, true],
    };
    let mut text = String::new();
    let mut all_ok = true;
    let mut reports = vec![];
    for &sse in routes {
        let url = api.url(&format!("/{name}/{}", if sse { "sse" } else { "mcp" }));
        text.push_str(&format!(
            "{name} via {url} ({})\n",
            if sse { "legacy SSE" } else { "streamable HTTP" }
        ));
        let steps = block_on(async {
            let mut steps: Vec<(String, Result<String, String>, Duration)> = vec![];
            let t = Instant::now();
            let mut session = match api.open(name, sse).await {
                Ok(s) => {
                    if sse {
                        steps.push((
                            "connect".into(),
                            Ok("endpoint received".into()),
                            t.elapsed(),
                        ));
                    }
                    s
                }
                Err(e) => {
                    steps.push(("connect".into(), Err(out::message(&e)), t.elapsed()));
                    return steps;
                }
            };
            let t = Instant::now();
            match session.initialize().await {
                Ok(r) => steps.push((
                    "initialize".into(),
                    Ok(format!(
                        "{} {}, protocol {}",
                        r["serverInfo"]["name"].as_str().unwrap_or("?"),
                        r["serverInfo"]["version"].as_str().unwrap_or("?"),
                        r["protocolVersion"].as_str().unwrap_or("?")
                    )),
                    t.elapsed(),
                )),
                Err(e) => {
                    steps.push(("initialize".into(), Err(out::message(&e)), t.elapsed()));
                    session.close().await;
                    return steps;
                }
            }
            let t = Instant::now();
            let r = session.tools().await;
            steps.push((
                "tools/list".into(),
                r.map(|t| format!("{} tool(s)", t.len()))
                    .map_err(|e| out::message(&e)),
                t.elapsed(),
            ));
            session.close().await;
            steps
        })?;
        let mut js = vec![];
        for (step, r, d) in &steps {
            let (ok, detail) = match r {
                Ok(d) => (true, d.clone()),
                Err(e) => (false, e.clone()),
            };
            all_ok &= ok;
            text.push_str(&format!(
                "  {step:<11} {:<4} {:>8.1} ms  {detail}\n",
                if ok { "ok" } else { "FAIL" },
                out::ms(*d)
            ));
            js.push(json!({"step": step, "ok": ok, "ms": out::ms(*d), "detail": detail}));
        }
        reports.push(json!({"transport": if sse { "sse" } else { "streamable-http" }, "url": url, "steps": js}));
    }
    let mut report = json!({"server": name, "passed": all_ok, "routes": reports});
    if !all_ok {
        // What the hub knows: lastError says how it ended, lastStderr what
        // the child said last (kept out of lastError, which clients see).
        if let Ok(Ok(st)) = block_on(api.status()) {
            if let Some(s) = st["servers"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == json!(name)))
            {
                text.push_str(&format!(
                    "  state {}, lastError: {}\n",
                    s["state"].as_str().unwrap_or("?"),
                    s["lastError"].as_str().unwrap_or("-")
                ));
                if let Some(line) = s["lastStderr"].as_array().and_then(|l| l.last()) {
                    text.push_str(&format!("  last stderr: {}\n", line.as_str().unwrap_or("")));
                }
                report["state"] = s["state"].clone();
                report["lastError"] = s["lastError"].clone();
            }
        }
        text.push_str(&format!("  more: mcp-hub logs {name} -n 50\n"));
    }
    text.push_str(if all_ok { "PASS\n" } else { "FAIL\n" });
    Ok((all_ok, report, text))
}

pub fn test(ctx: &Ctx, a: TestArgs) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    let (ok, report, text) = run_test(ctx, &cfg, &a.name, a.transport, a.timeout)?;
    if ctx.json() {
        out::json(&report);
    } else {
        print!("{text}");
    }
    Ok(ok)
}

pub fn tools(ctx: &Ctx, a: NameArg) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    server(&cfg, &a.name)?;
    let api = HubApi::new(
        ctx.hub_url(&cfg)?,
        ctx.token(&cfg, Some(&a.name))?,
        Duration::from_secs(60),
    )?;
    let tools = block_on(async {
        let mut s = api.open(&a.name, false).await?;
        s.initialize().await?;
        let t = s.tools().await;
        s.close().await;
        t
    })?
    .with_context(|| format!("{} through {}", a.name, api.base))?;
    if ctx.json() {
        out::json(&json!({"server": a.name, "tools": tools}));
        return Ok(true);
    }
    let rows: Vec<Vec<String>> = tools
        .iter()
        .map(|t| {
            let desc = t["description"].as_str().unwrap_or("");
            let first = desc.lines().next().unwrap_or("");
            let short: String = first.chars().take(80).collect();
            vec![t["name"].as_str().unwrap_or("?").to_string(), short]
        })
        .collect();
    print!("{}", out::table(&["TOOL", "DESCRIPTION"], &rows));
    Ok(true)
}

pub fn call(ctx: &Ctx, a: CallArgs) -> anyhow::Result<bool> {
    let args: Value = serde_json::from_str(&a.arguments)
        .with_context(|| format!("arguments {:?} are not JSON", a.arguments))?;
    if !args.is_object() {
        bail!("arguments must be a JSON object, like '{{\"url\": \"https://example.com\"}}'");
    }
    let (_, cfg) = ctx.load()?;
    server(&cfg, &a.name)?;
    let api = HubApi::new(
        ctx.hub_url(&cfg)?,
        ctx.token(&cfg, Some(&a.name))?,
        a.timeout,
    )?;
    let result = block_on(async {
        let mut s = api.open(&a.name, false).await?;
        s.initialize().await?;
        let r = s
            .request("tools/call", json!({"name": a.tool, "arguments": args}))
            .await;
        s.close().await;
        r
    })?
    .with_context(|| format!("{} {} through {}", a.name, a.tool, api.base))?;
    let is_error = result["isError"].as_bool().unwrap_or(false);
    if ctx.json() {
        out::json(&result);
    } else {
        for c in result["content"].as_array().into_iter().flatten() {
            match c["type"].as_str() {
                Some("text") => println!("{}", c["text"].as_str().unwrap_or("")),
                _ => println!("{c}"),
            }
        }
        if let Some(sc) = result.get("structuredContent") {
            println!("{sc}");
        }
        if is_error {
            eprintln!("error: the tool reported an error (isError: true)");
        }
    }
    Ok(!is_error)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mask_hides_literals_and_keeps_references() {
        assert_eq!(super::mask("s3cret"), "****");
        assert_eq!(super::mask("${TOKEN}"), "${TOKEN}");
        assert_eq!(super::mask("Bearer s3cret"), "Bearer ****");
        assert_eq!(super::mask("Bearer ${T}"), "Bearer ${T}");
        assert_eq!(super::mask("x${A}y"), "****");
    }
}
