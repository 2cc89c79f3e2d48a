//! `mcp-hub client list`: who may call what, from the merged config, with
//! each client's last use as the running hub reports it; never a token or a
//! hash.

use super::super::ctx::{block_on, Ctx};
use super::super::hubapi::HubApi;
use super::super::out;
use crate::config::clients;
use crate::config::dropin::CLIENTS;
use crate::config::{Config, ToolFilter};
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

/// A rate as the config spells it.
fn rate_text(r: &clients::Rate) -> String {
    let unit = match r.per.as_secs() {
        1 => "s".to_string(),
        60 => "min".into(),
        3600 => "h".into(),
        86400 => "d".into(),
        s => format!("{s}s"),
    };
    format!("{}/{unit}", r.count)
}

fn filter_json(f: &ToolFilter) -> Value {
    match f {
        ToolFilter::Allow(l) => json!({"mode": "allow", "list": l}),
        ToolFilter::Block(l) => json!({"mode": "block", "list": l}),
    }
}

fn filter_text(server: &str, f: &ToolFilter) -> String {
    match f {
        ToolFilter::Allow(l) => format!("{server}={}", l.join(",")),
        ToolFilter::Block(l) => format!("{server}=!{}", l.join(",")),
    }
}

/// Per-client data the running hub reports in `/status` (`clients`: a list
/// of `{name, lastUsed}` or an object by name), if it reports any.
fn live(ctx: &Ctx, cfg: &Config) -> Option<Value> {
    let token = ctx.token(cfg, None).ok()?;
    let api = HubApi::new(ctx.hub_url(cfg).ok()?, token, Duration::from_secs(5)).ok()?;
    let s = block_on(api.status()).ok()?.ok()?;
    match s.get("clients")? {
        Value::Array(list) => Some(Value::Object(
            list.iter()
                .filter_map(|c| Some((c["name"].as_str()?.to_string(), c.clone())))
                .collect(),
        )),
        v @ Value::Object(_) => Some(v.clone()),
        _ => None,
    }
}

pub(super) fn list(ctx: &Ctx) -> anyhow::Result<bool> {
    let (_, cfg) = ctx.load()?;
    let live = live(ctx, &cfg);
    let now = SystemTime::now();
    let mut rows = vec![];
    let mut docs = vec![];
    for c in &cfg.hub.clients {
        let file = cfg.origins.client(&c.name).unwrap_or("?");
        let last = live
            .as_ref()
            .and_then(|l| l.get(&*c.name))
            .and_then(|x| x.get("lastUsed").or_else(|| x.get("lastUse")))
            .filter(|v| !v.is_null())
            .cloned();
        let retired: Vec<String> = c
            .previous
            .iter()
            .filter(|(_, u)| *u > now)
            .map(|(_, u)| humantime::format_rfc3339_seconds(*u).to_string())
            .collect();
        docs.push(json!({
            "name": &*c.name,
            "servers": c.servers.clone().unwrap_or_else(|| vec!["*".into()]),
            "groups": c.groups,
            "tools": c.tools.iter().map(|(s, f)| (s.clone(), filter_json(f))).collect::<Map<_, _>>(),
            "rate": c.rate.as_ref().map(rate_text),
            "maxConcurrent": c.max_concurrent,
            "maxSessions": c.max_sessions,
            "retiredTokensUntil": retired,
            "file": file,
            "lastUsed": last,
        }));
        let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
        rows.push(vec![
            c.name.to_string(),
            match &c.servers {
                None => "*".into(),
                Some(l) => dash(l.join(",")),
            },
            dash(c.groups.join(",")),
            dash(
                c.tools
                    .iter()
                    .map(|(s, f)| filter_text(s, f))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            c.rate.as_ref().map_or("-".into(), rate_text),
            c.max_concurrent.map_or("-".into(), |n| n.to_string()),
            c.max_sessions.to_string(),
            match retired.last() {
                Some(u) => format!("old token until {u}"),
                None => "-".into(),
            },
            file.to_string(),
            match &last {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "-".into(),
            },
        ]);
    }
    if ctx.json() {
        out::json(&json!({"clients": docs}));
    } else if rows.is_empty() {
        println!("no named clients ({CLIENTS}); `mcp-hub client add NAME` adds one");
    } else {
        print!(
            "{}",
            out::table(
                &[
                    "NAME",
                    "SERVERS",
                    "GROUPS",
                    "TOOLS",
                    "RATE",
                    "CONCURRENT",
                    "SESSIONS",
                    "ROTATION",
                    "FILE",
                    "LAST USED",
                ],
                &rows
            )
        );
    }
    Ok(true)
}
