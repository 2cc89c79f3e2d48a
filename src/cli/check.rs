//! `check` and `doctor`: the merged config's servers and routes, what the host
//! can enforce, and whether each granted path is usable by the servers' user.

use super::ctx::{self, Ctx};
use super::out;
use crate::config::{self, Config};
use crate::sandbox::{grant, probe};
use clap::Args;
use serde_json::json;

/// Who the grants are tested as.
#[derive(Debug, Clone, Args)]
pub struct GrantUser {
    /// Test sandbox grants as this user (default: the user the servers run as:
    /// mcp-hub for the packaged service, nobody for a root hub, else this user)
    #[arg(long = "run-as", value_name = "USER")]
    pub run_as: Option<String>,
}

/// The `check` report: one row per server.
pub fn check_report(cfg: &Config) -> String {
    let rows: Vec<Vec<String>> = cfg
        .servers
        .values()
        .map(|s| {
            let kind = if s.disabled {
                format!("{} (disabled)", s.upstream.kind())
            } else {
                s.upstream.kind().to_string()
            };
            let auth = if s.auth_tokens.is_empty() {
                "none".to_string()
            } else {
                format!("{} token(s)", s.auth_tokens.len())
            };
            vec![
                s.name.clone(),
                kind,
                s.session.as_str().into(),
                auth,
                s.routes().join(" "),
            ]
        })
        .collect();
    let mut rows = rows;
    rows.extend(cfg.groups.values().map(|g| {
        let auth = if g.auth_tokens.is_empty() {
            "none".to_string()
        } else {
            format!("{} token(s)", g.auth_tokens.len())
        };
        vec![
            format!("g/{}", g.name),
            format!("group of {}", g.servers.join(",")),
            "-".into(),
            auth,
            g.routes().join(" "),
        ]
    }));
    let mut out = out::table(&["NAME", "KIND", "SESSION", "AUTH", "ROUTES"], &rows);
    for w in &cfg.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let listen = config::parse_listen_addr(&cfg.hub.addr).unwrap_or_default();
    out.push_str(&format!(
        "config OK: {} server(s), listening on {listen} unless socket-activated\n",
        cfg.servers.len()
    ));
    out
}

/// What each package-runner server with `install` options will install
/// with (`Ok`: the interpreter picked and why, the overrides), or why it
/// cannot (`Err`, naming the config path).
fn installs(cfg: &Config) -> Vec<(String, Result<String, String>)> {
    cfg.servers
        .values()
        .filter(|s| !s.disabled)
        .filter_map(|s| match &s.upstream {
            config::Upstream::Stdio(spec) => {
                crate::sandbox::install::check(&s.name, spec).map(|r| (s.name.clone(), r))
            }
            _ => None,
        })
        .collect()
}

fn installs_json(list: &[(String, Result<String, String>)]) -> serde_json::Value {
    json!(list
        .iter()
        .map(|(name, r)| match r {
            Ok(line) => json!({"server": name, "ok": true, "install": line}),
            Err(e) => json!({"server": name, "ok": false, "error": e}),
        })
        .collect::<Vec<_>>())
}

/// Tests the grants; prints each problem. True when every grant is usable.
fn grants(cfg: &Config, u: &GrantUser, only: Option<&str>) -> anyhow::Result<grant::Report> {
    let user = grant::server_user(u.run_as.as_deref()).map_err(anyhow::Error::msg)?;
    Ok(grant::check(cfg, only, &user))
}

fn credential_note(cfg: &Config) -> Option<String> {
    let refs: Vec<&String> = cfg
        .hub
        .auth_tokens
        .iter()
        .chain(cfg.servers.values().flat_map(|s| s.auth_tokens.iter()))
        .filter(|t| ctx::is_unresolved(t))
        .collect();
    refs.first().map(|r| {
        format!("note: {r} is read by the service at start (LoadCredential=); not available to this command")
    })
}

pub fn check(ctx: &Ctx, u: &GrantUser) -> anyhow::Result<bool> {
    let (files, cfg) = ctx.load()?;
    let report = grants(&cfg, u, None)?;
    let installs = installs(&cfg);
    let ok = report.problems.is_empty() && installs.iter().all(|(_, r)| r.is_ok());
    if ctx.json() {
        out::json(&json!({
            "ok": ok,
            "files": std::iter::once(&files.main).chain(files.dropins.keys()).collect::<Vec<_>>(),
            "servers": cfg.servers.values().map(|s| json!({
                "name": s.name, "kind": s.upstream.kind(), "session": s.session.as_str(),
                "disabled": s.disabled, "routes": s.routes(),
                "file": cfg.origins.0.get(&s.name),
            })).collect::<Vec<_>>(),
            "groups": cfg.groups.values().map(|g| json!({
                "name": g.name, "servers": g.servers, "separator": g.separator, "routes": g.routes(),
            })).collect::<Vec<_>>(),
            "warnings": cfg.warnings,
            "grantProblems": report.problems.iter().map(|p| json!({
                "at": p.at, "path": p.path, "user": p.user, "blocker": p.blocker, "fix": p.fix_line(),
            })).collect::<Vec<_>>(),
            "grantsUntested": report.untested,
            "installs": installs_json(&installs),
        }));
    } else {
        print!("{}", check_report(&cfg));
        if !files.dropins.is_empty() {
            println!(
                "drop-ins: {}",
                files
                    .dropins
                    .keys()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(n) = credential_note(&cfg) {
            out::note(n);
        }
        if let Some(n) = &report.untested {
            out::note(format!("note: {n}"));
        }
        for p in &report.problems {
            eprintln!("error: {p}");
        }
        for (name, r) in &installs {
            match r {
                Ok(line) => println!("{name}: install: {line}"),
                Err(e) => eprintln!("error: {e}"),
            }
        }
    }
    Ok(ok)
}

pub fn doctor(ctx: &Ctx, u: &GrantUser) -> anyhow::Result<bool> {
    let cfg = match ctx.load() {
        Ok((_, cfg)) => Some(cfg),
        Err(e) => {
            out::note(format!("note: no servers checked: {}", out::message(&e)));
            None
        }
    };
    let host = probe::Host::probe();
    let (report, mut ok) = probe::report(&host, cfg.as_ref());
    let grant_report = match &cfg {
        Some(c) => grants(c, u, None)?,
        None => grant::Report::default(),
    };
    ok &= grant_report.problems.is_empty();
    let installs = cfg.as_ref().map(installs).unwrap_or_default();
    ok &= installs.iter().all(|(_, r)| r.is_ok());
    if ctx.json() {
        out::json(&json!({
            "ok": ok,
            "report": report,
            "installs": installs_json(&installs),
            "grantProblems": grant_report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "grantsUntested": grant_report.untested,
        }));
        return Ok(ok);
    }
    print!("{report}");
    if let Some(n) = &grant_report.untested {
        println!("{n}");
    }
    for p in &grant_report.problems {
        println!("{}: grant NOT usable: {p}", p.server);
    }
    for (name, r) in &installs {
        match r {
            Ok(line) => println!("{name}: install: {line}"),
            Err(e) => println!("{name}: install NOT possible: {e}"),
        }
    }
    Ok(ok)
}
