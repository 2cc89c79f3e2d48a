//! `client-config open-webui --write --open-webui-url URL`: the connections
//! written straight into a running Open WebUI, through the admin API its
//! settings page uses (Admin Settings → External Tools).
//!
//! That page reads `GET /api/v1/configs/tool_servers` and saves the whole list
//! back with `POST /api/v1/configs/tool_servers`; there is no call for one
//! entry. So this reads the list, merges the hub's entries into it by URL and
//! writes the list back, leaving every other entry as it was. Open WebUI
//! (0.12) returns stored keys in clear on that GET (nothing is masked), so a
//! key read back is the real one; still, where the hub's entry has no key
//! (the operator pastes it in Open WebUI rather than let it into a file or a
//! command line), the key already stored is kept, as are the fields the hub
//! does not set (access grants, function filter, headers). Nothing changes:
//! nothing is written. Before a write the whole list read is saved, 0600,
//! in the form the POST takes, so one request restores it.

use super::out;
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The tool-server config Open WebUI answers, read back: past this the read
/// fails rather than holding an unbounded body (an entry with an inline
/// OpenAPI spec is the large case).
pub const MAX_CONFIG_SIZE: usize = 16 << 20;
/// One request to Open WebUI.
const TIMEOUT: Duration = Duration::from_secs(30);
const ROUTE: &str = "/api/v1/configs/tool_servers";
const LIST: &str = "TOOL_SERVER_CONNECTIONS";

/// Where and how to write.
pub struct Live<'a> {
    pub url: &'a str,
    pub key: &'a str,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Added,
    Replaced,
    Unchanged,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Added => "added",
            Action::Replaced => "replaced",
            Action::Unchanged => "unchanged",
        }
    }
}

/// What a merge did to one of the hub's entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub url: String,
    pub id: String,
    pub action: Action,
    /// The entries with this URL that were there before (more than one when
    /// the list held duplicates; all of them give way to the hub's entry).
    pub replaced: Vec<Value>,
}

/// URLs compare without a trailing slash: Open WebUI strips it from OpenAPI
/// URLs when the form saves, and keeps it on MCP ones.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn url_of(e: &Value) -> &str {
    e.get("url").and_then(Value::as_str).unwrap_or("")
}

/// The hub's entry laid over the one stored for its URL: the hub's fields
/// win, except an empty key over a stored one; `config` and `info` merge
/// key by key, so what the admin set there in Open WebUI stays.
fn overlay(old: &Value, new: &Value) -> Value {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return new.clone();
    };
    let mut out: Map<String, Value> = o.clone();
    for (k, v) in n {
        let merged = match (k.as_str(), o.get(k)) {
            ("key", Some(Value::String(stored)))
                if v.as_str() == Some("") && !stored.is_empty() =>
            {
                Value::String(stored.clone())
            }
            ("config" | "info", Some(Value::Object(stored))) if v.is_object() => {
                let mut m = stored.clone();
                for (kk, vv) in v.as_object().into_iter().flatten() {
                    m.insert(kk.clone(), vv.clone());
                }
                Value::Object(m)
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Value::Object(out)
}

/// Merges the hub's `entries` into Open WebUI's `current` list by URL: an
/// entry with the same URL is replaced in place (later duplicates of it are
/// dropped), a new URL is appended, every other entry is kept as it is.
pub fn merge(current: &[Value], entries: &[Value]) -> (Vec<Value>, Vec<Change>) {
    let mut list: Vec<Value> = current.to_vec();
    let mut changes = Vec::new();
    for e in entries {
        let url = url_of(e).to_string();
        let id = e["info"]["id"].as_str().unwrap_or("").to_string();
        let hits: Vec<usize> = (0..list.len())
            .filter(|&i| same_url(url_of(&list[i]), &url))
            .collect();
        let Some(&first) = hits.first() else {
            list.push(e.clone());
            changes.push(Change {
                url,
                id,
                action: Action::Added,
                replaced: vec![],
            });
            continue;
        };
        let replaced: Vec<Value> = hits.iter().map(|&i| list[i].clone()).collect();
        let merged = overlay(&list[first], e);
        let action = match hits.len() == 1 && merged == list[first] {
            true => Action::Unchanged,
            false => Action::Replaced,
        };
        list[first] = merged;
        for &i in hits[1..].iter().rev() {
            list.remove(i);
        }
        changes.push(Change {
            url,
            id,
            action,
            replaced: match action {
                Action::Unchanged => vec![],
                _ => replaced,
            },
        });
    }
    (list, changes)
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(url: &str, key: &str) -> anyhow::Result<Api> {
        let parsed = url::Url::parse(url)
            .with_context(|| format!("--open-webui-url {url:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--open-webui-url {url:?}: http or https only");
        }
        if key.is_empty() {
            bail!(
                "writing into Open WebUI at {url} needs an admin's API key: --open-webui-key KEY or \
                 OPEN_WEBUI_API_KEY (Open WebUI: Settings → Account → API Keys)"
            );
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(TIMEOUT)
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Api {
            http,
            base: url.trim_end_matches('/').to_string(),
            key: key.to_string(),
        })
    }

    fn url(&self) -> String {
        format!("{}{ROUTE}", self.base)
    }

    /// One request; the answer's JSON, or an error naming the URL and what
    /// Open WebUI said.
    async fn call(&self, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = self.url();
        let req = match body {
            None => self.http.get(&url),
            Some(b) => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(b)?),
        };
        let mut resp = req
            .bearer_auth(&self.key)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Open WebUI at {url}: {}", reqwest_cause(&e)))?;
        let code = resp.status();
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| anyhow!("{url}: the answer broke off: {}", reqwest_cause(&e)))?
        {
            if buf.len() + chunk.len() > MAX_CONFIG_SIZE {
                bail!(
                    "{url}: the answer is over {} MiB, the most this reads",
                    MAX_CONFIG_SIZE >> 20
                );
            }
            buf.extend_from_slice(&chunk);
        }
        let parsed: Option<Value> = serde_json::from_slice(&buf).ok();
        if !code.is_success() {
            let detail = parsed
                .as_ref()
                .and_then(|v| v.get("detail"))
                .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&buf).chars().take(300).collect());
            let hint = match code.as_u16() {
                401 | 403 if detail.contains("permission") => {
                    ": the key is not an admin's; tool servers are an admin setting"
                }
                401 | 403 => {
                    ": pass an admin's API key (Settings → Account → API Keys) with \
                     --open-webui-key or OPEN_WEBUI_API_KEY"
                }
                404 | 405 => ": is this Open WebUI (0.6 or later)?",
                _ => "",
            };
            bail!("Open WebUI at {url} answered {code}: {detail}{hint}");
        }
        parsed.ok_or_else(|| anyhow!("{url}: the answer is not JSON: is this Open WebUI?"))
    }

    async fn read(&self) -> anyhow::Result<Vec<Value>> {
        let v = self.call(None).await?;
        match v.get(LIST) {
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(Value::Null) => Ok(vec![]),
            _ => bail!(
                "{}: the answer has no {LIST} list: is this Open WebUI (0.6 or later)?",
                self.url()
            ),
        }
    }

    async fn write(&self, list: &[Value]) -> anyhow::Result<()> {
        let v = self.call(Some(&json!({ LIST: list }))).await?;
        let n = v.get(LIST).and_then(Value::as_array).map(Vec::len);
        if n != Some(list.len()) {
            bail!(
                "{}: Open WebUI saved {} connections of the {} sent",
                self.url(),
                n.map_or("no".to_string(), |n| n.to_string()),
                list.len()
            );
        }
        Ok(())
    }
}

/// The innermost cause of a request error: "connection refused" beats
/// "error sending request".
fn reqwest_cause(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

/// `$XDG_STATE_HOME/mcp-hub/open-webui/` (else `~/.local/state/…`): the
/// backups hold every connection's key, so the directory is 0700 and each
/// file 0600.
fn backup_dir() -> anyhow::Result<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .ok_or_else(|| {
            anyhow!("neither XDG_STATE_HOME nor HOME is set: nowhere to keep the backup")
        })?;
    Ok(state.join("mcp-hub").join("open-webui"))
}

fn save_backup(dir: &Path, base: &str, list: &[Value]) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    let host: String = url::Url::parse(base)
        .ok()
        .map(|u| {
            format!(
                "{}-{}",
                u.host_str().unwrap_or("host"),
                u.port_or_known_default().unwrap_or(0)
            )
        })
        .unwrap_or_else(|| "open-webui".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let path = dir.join(format!("tool-servers-{host}-{stamp}.json"));
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&json!({ LIST: list }))?
    );
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("{}: cannot write the backup", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write the backup", path.display()))?;
    Ok(path)
}

/// Reads, merges, backs up and writes; prints what changed. `as_json`: one
/// document on stdout. Returns whether one of the hub's connections is left
/// with an empty bearer key (for the note on what to paste).
pub fn run(live: &Live<'_>, entries: &[Value], as_json: bool) -> anyhow::Result<bool> {
    let api = Api::new(live.url, live.key)?;
    let current = super::ctx::block_on(api.read())??;
    let (merged, changes) = merge(&current, entries);
    let changed = changes.iter().any(|c| c.action != Action::Unchanged);
    let keyless = merged.iter().any(|e| {
        entries.iter().any(|h| same_url(url_of(h), url_of(e)))
            && e["auth_type"] == "bearer"
            && e["key"].as_str().is_none_or(str::is_empty)
    });
    let mut backup = None;
    if changed && !live.dry_run {
        backup = Some(save_backup(&backup_dir()?, &api.base, &current)?);
        super::ctx::block_on(api.write(&merged))??;
    }
    if as_json {
        out::json(&json!({
            "ok": true,
            "url": api.base,
            "changed": changed,
            "dryRun": live.dry_run,
            "backup": backup,
            "connections": changes.iter().map(|c| json!({
                "id": c.id, "url": c.url, "action": c.action.word(),
            })).collect::<Vec<_>>(),
        }));
        return Ok(keyless);
    }
    let verb = |a: Action| match (live.dry_run, a) {
        (true, Action::Added) => "would add",
        (true, Action::Replaced) => "would replace",
        _ => a.word(),
    };
    for c in &changes {
        println!("{:<13} {} ({})", verb(c.action), c.id, c.url);
    }
    match (changed, live.dry_run) {
        (false, _) => println!("Open WebUI at {} is up to date: nothing written", api.base),
        (true, true) => println!("(dry run: nothing written)"),
        (true, false) => {
            println!(
                "wrote {} connections to Open WebUI at {} ({} of them the hub's)",
                merged.len(),
                api.base,
                entries.len()
            );
            if let Some(b) = &backup {
                println!("backup {}", b.display());
            }
        }
    }
    Ok(keyless)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(url: &str, key: &str) -> Value {
        json!({"type": "mcp", "url": url, "path": "", "auth_type": "bearer", "key": key,
               "config": {"enable": true}, "info": {"id": "a", "name": "a", "description": "d"}})
    }

    #[test]
    fn new_urls_are_appended_and_others_kept() {
        let foreign = json!({"type": "openapi", "url": "http://x/tools", "path": "openapi.json",
                             "auth_type": "bearer", "key": "theirs", "config": {"enable": true}});
        let (list, ch) = merge(
            std::slice::from_ref(&foreign),
            &[hub("http://hub/a/mcp", "")],
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], foreign);
        assert_eq!(list[1], hub("http://hub/a/mcp", ""));
        assert_eq!(ch[0].action, Action::Added);
    }

    #[test]
    fn a_second_merge_changes_nothing() {
        // Open WebUI adds its defaults to what it stores; they stay.
        let mut stored = hub("http://hub/a/mcp", "tok");
        stored["forward_cookies"] = json!(false);
        stored["headers"] = Value::Null;
        let (list, ch) = merge(
            std::slice::from_ref(&stored),
            &[hub("http://hub/a/mcp", "tok")],
        );
        assert_eq!(list, vec![stored]);
        assert_eq!(ch[0].action, Action::Unchanged);
        assert!(ch[0].replaced.is_empty());
    }

    #[test]
    fn an_empty_key_keeps_the_stored_one_and_admin_fields_stay() {
        let mut stored = hub("http://hub/a/mcp/", "pasted");
        stored["config"]["access_grants"] = json!([{"group": "g1"}]);
        stored["config"]["function_name_filter_list"] = json!("echo");
        stored["info"]["name"] = json!("renamed");
        let (list, ch) = merge(
            std::slice::from_ref(&stored),
            &[hub("http://hub/a/mcp", "")],
        );
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["key"], "pasted");
        assert_eq!(list[0]["config"]["access_grants"], json!([{"group": "g1"}]));
        assert_eq!(list[0]["config"]["function_name_filter_list"], "echo");
        // The hub's own fields win: its name, its URL.
        assert_eq!(list[0]["info"]["name"], "a");
        assert_eq!(list[0]["url"], "http://hub/a/mcp");
        assert_eq!(ch[0].action, Action::Replaced);
        assert_eq!(ch[0].replaced, vec![stored]);
    }

    #[test]
    fn a_new_key_replaces_the_stored_one() {
        let (list, ch) = merge(
            &[hub("http://hub/a/mcp", "old")],
            &[hub("http://hub/a/mcp", "new")],
        );
        assert_eq!(list[0]["key"], "new");
        assert_eq!(ch[0].action, Action::Replaced);
    }

    #[test]
    fn duplicates_of_a_url_collapse_into_the_first_place() {
        let other = json!({"url": "http://other/mcp", "type": "mcp"});
        let current = [
            hub("http://hub/a/mcp", "k1"),
            other.clone(),
            hub("http://hub/a/mcp", "k2"),
        ];
        let (list, ch) = merge(&current, &[hub("http://hub/a/mcp", "")]);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["key"], "k1");
        assert_eq!(list[1], other);
        assert_eq!(ch[0].action, Action::Replaced);
        assert_eq!(ch[0].replaced.len(), 2);
    }

    #[test]
    fn an_mcp_and_an_openapi_entry_of_one_server_are_two_urls() {
        let mcp = hub("http://hub/a/mcp", "");
        let mut api = hub("http://hub/a", "");
        api["type"] = json!("openapi");
        let (list, ch) = merge(&[], &[mcp, api]);
        assert_eq!(list.len(), 2);
        assert!(ch.iter().all(|c| c.action == Action::Added));
    }
}
