//! `client-config open-webui`: Open WebUI's tool server connections for the
//! hub's servers and groups.
//!
//! Open WebUI (0.6 to 0.12) keeps its connections in its database, so there
//! is no file of its own to merge into. What it reads is its connection form's
//! Import (Admin Settings → External Tools → + → Import), which takes one
//! connection: an object, or the first element of an array (its own Export
//! writes a one-element array). So one selected server or group prints one
//! object, and `--write DIR` writes one importable file per server and group.
//! Several entries print as an array, which is the shape of
//! `TOOL_SERVER_CONNECTIONS` (the admin API and the environment variable).
//!
//! An entry is `{"type", "url", "path", "auth_type", "key", "config", "info"}`
//! as Open WebUI's `ToolServerConnection` has it: `type` "mcp" with the
//! streamable `/mcp` URL, or with `--openapi` also "openapi" with the base
//! URL and `path` "openapi.json". The key is empty unless `--with-token`
//! asks for the config's token, since a file holding a secret gets copied
//! around; either way stderr says what to do about it.

use super::ctx::{is_unresolved, Ctx};
use super::out;
use crate::config::Config;
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What the command was asked for, out of `ClientArgs`.
pub struct Request<'a> {
    pub servers: &'a [String],
    pub groups: &'a [String],
    pub base: &'a str,
    pub openapi: bool,
    pub with_token: bool,
    pub dir: Option<&'a Path>,
    /// `--write --open-webui-url`: into a running Open WebUI instead.
    pub live: Option<super::openwebui_api::Live<'a>>,
}

/// One server or group, as Open WebUI will reach it.
struct Target {
    /// The server's name, or the group's.
    name: String,
    group: bool,
    /// Its routes' base: `<base>/<name>` or `<base>/g/<group>`.
    url: String,
    /// `None`: the routes take no token. `Some("")`: they do, and the key is
    /// left for the operator.
    key: Option<String>,
}

impl Target {
    /// `info.id`: Open WebUI refuses ids with `:` or `|`; a route name has
    /// neither. Groups get a `g-` prefix beside servers of the same name.
    fn id(&self) -> String {
        match self.group {
            true => format!("g-{}", self.name),
            false => self.name.clone(),
        }
    }

    fn what(&self) -> String {
        match self.group {
            true => format!("group {}", self.name),
            false => format!("server {}", self.name),
        }
    }

    fn entry(&self, openapi: bool) -> Value {
        let (kind, url, path, id, label) = match openapi {
            false => ("mcp", format!("{}/mcp", self.url), "", self.id(), ""),
            true => (
                "openapi",
                self.url.clone(),
                "openapi.json",
                format!("{}-openapi", self.id()),
                " (OpenAPI)",
            ),
        };
        json!({
            "type": kind,
            "url": url,
            "path": path,
            "auth_type": if self.key.is_some() { "bearer" } else { "none" },
            "key": self.key.clone().unwrap_or_default(),
            "config": {"enable": true},
            "info": {
                "id": id,
                "name": format!("{}{label}", self.name),
                "description": format!("{} via mcp-hub", self.what()),
            },
        })
    }

    /// `--write`'s file for this target: `<name>.json` for a server,
    /// `g/<name>.json` for a group (no server may be named `g` beside
    /// groups), `.openapi.json` for the OpenAPI entry.
    fn file(&self, dir: &Path, openapi: bool) -> PathBuf {
        let stem = match openapi {
            true => format!("{}.openapi.json", self.name),
            false => format!("{}.json", self.name),
        };
        match self.group {
            true => dir.join("g").join(stem),
            false => dir.join(stem),
        }
    }
}

/// The first token of a list that this command can read, for `--with-token`.
fn readable(list: &[String], what: &str) -> anyhow::Result<Option<String>> {
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .find(|t| !is_unresolved(t))
        .cloned()
        .map(Some)
        .ok_or_else(|| {
            anyhow!(
                "{what}'s token is {} and only the service can read that credential: leave out --with-token",
                list[0]
            )
        })
}

fn targets(cfg: &Config, r: &Request<'_>) -> anyhow::Result<Vec<Target>> {
    let all = r.servers.is_empty() && r.groups.is_empty();
    let servers: Vec<&str> = match all {
        true => cfg
            .servers
            .values()
            .filter(|s| !s.disabled)
            .map(|s| s.name.as_str())
            .collect(),
        false => r.servers.iter().map(String::as_str).collect(),
    };
    let groups: Vec<&str> = match all {
        true => cfg.groups.keys().map(String::as_str).collect(),
        false => r.groups.iter().map(String::as_str).collect(),
    };
    if servers.is_empty() && groups.is_empty() {
        bail!("the config has no enabled servers; add one with `mcp-hub add`");
    }
    // With named clients configured, every route wants a token.
    let named = !cfg.hub.clients.is_empty();
    let key = |list: &[String], what: &str| -> anyhow::Result<Option<String>> {
        match (list.is_empty() && !named, r.with_token) {
            (true, _) => Ok(None),
            (false, false) => Ok(Some(String::new())),
            (false, true) => readable(list, what),
        }
    };
    let mut out = Vec::new();
    for n in servers {
        let s = cfg
            .servers
            .get(n)
            .ok_or_else(|| anyhow!("no server named {n:?}; `mcp-hub list` shows them"))?;
        out.push(Target {
            name: n.into(),
            group: false,
            url: format!("{}/{n}", r.base),
            key: key(&s.auth_tokens, &format!("server {n}"))?,
        });
    }
    for n in groups {
        let g = cfg
            .groups
            .get(n)
            .ok_or_else(|| anyhow!("no group named {n:?}; `mcp-hub check` lists the config"))?;
        out.push(Target {
            name: n.into(),
            group: true,
            url: format!("{}/g/{n}", r.base),
            key: key(&g.auth_tokens, &format!("group {n}"))?,
        });
    }
    Ok(out)
}

/// Writes `bytes` to `path` unless it already holds them; 0600 when the file
/// holds a token. Returns whether it wrote.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(true)
}

/// Prints or writes the connections. Stderr gets one line about the key.
pub fn run(ctx: &Ctx, cfg: &Config, r: &Request<'_>) -> anyhow::Result<bool> {
    let targets = targets(cfg, r)?;
    let kinds: &[bool] = if r.openapi { &[false, true] } else { &[false] };
    let mut written = Vec::new();
    let mut entries = Vec::new();
    if let Some(live) = &r.live {
        for t in &targets {
            for &openapi in kinds {
                entries.push(t.entry(openapi));
            }
        }
        let keyless = super::openwebui_api::run(live, &entries, ctx.json())?;
        if keyless || r.with_token {
            key_note(&targets, r, "");
        }
        return Ok(true);
    }
    for t in &targets {
        for &openapi in kinds {
            let e = t.entry(openapi);
            if let Some(dir) = r.dir {
                let path = t.file(dir, openapi);
                let text = format!("{}\n", serde_json::to_string_pretty(&json!([e]))?);
                let secret = t.key.as_deref().is_some_and(|k| !k.is_empty());
                let changed = write_file(&path, text.as_bytes(), secret)?;
                written.push(json!({"file": path, "changed": changed}));
            }
            entries.push(e);
        }
    }
    match r.dir {
        Some(_) if ctx.json() => out::json(&json!({"ok": true, "files": written})),
        Some(_) => {
            for w in &written {
                let verb = if w["changed"] == true {
                    "wrote"
                } else {
                    "up to date"
                };
                println!("{verb} {}", w["file"].as_str().unwrap_or(""));
            }
        }
        None => {
            let doc = match entries.len() {
                1 => entries.pop().unwrap_or_default(),
                _ => Value::Array(entries),
            };
            match ctx.json() {
                true => out::json(&json!({"client": "OpenWebui", "content": doc})),
                false => println!("{}", serde_json::to_string_pretty(&doc)?),
            }
            if doc.is_array() {
                out::note(
                    "note: Open WebUI's Import takes the first connection of a file only: \
                     pick one with --server NAME or --group NAME, or write one file each with --write DIR",
                );
            }
        }
    }
    let place = match r.dir {
        Some(d) => format!("the files in {} hold", d.display()),
        None => "this output holds".to_string(),
    };
    key_note(&targets, r, &place);
    Ok(true)
}

/// Stderr's line about the key: where it went, or where to paste it.
fn key_note(targets: &[Target], r: &Request<'_>, place: &str) {
    let needs_key = targets.iter().any(|t| t.key.is_some());
    if needs_key && r.with_token && r.live.is_some() {
        out::note(
            "note: the connections hold the hub's token as their key (Open WebUI shows it to its admins)",
        );
    } else if needs_key && r.with_token {
        out::note(format!(
            "warning: {place} the hub's token in clear: keep it private and delete it once imported"
        ));
    } else if needs_key && r.live.is_some() {
        out::note(
            "note: where a connection had no key yet, it is empty: paste the hub's token into its Key \
             field (Admin Settings → External Tools → the connection's settings → Auth: Bearer); later \
             runs keep a key that is there, or pass --with-token to put it in",
        );
    } else if needs_key {
        out::note(
            "note: the key is empty: after the import, paste the hub's token into the connection's \
             Key field (Admin Settings → External Tools → the connection's settings → Auth: Bearer), \
             or pass --with-token to put it in",
        );
    }
}
