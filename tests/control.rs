//! The operator's control plane against a real running hub: `add`, `list`,
//! `show`, `test`, `tools`, `call`, `disable`/`enable`, `remove`, `restore`,
//! drop-ins, `client-config --write`, grants, and the root URL. Failure paths
//! leave every config file unchanged, byte for byte.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running hub plus the environment the CLI needs to reach and reload it.
struct Op {
    hub: Hub,
    pid_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Op {
    fn start(servers: Value) -> Op {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("hub.pid");
        let hub = Hub::start_env(
            json!({"name": "Test Hub"}),
            servers,
            &[("MCP_HUB_PID_FILE", pid_file.to_str().unwrap())],
        );
        Op {
            hub,
            pid_file,
            _dir: dir,
        }
    }

    fn conf_d(&self) -> PathBuf {
        self.hub.config_path.parent().unwrap().join("conf.d")
    }

    /// Runs `mcp-hub ARGS` against this hub: (exit ok, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_env(args, &[])
    }

    fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = Command::new(hub_bin())
            .args(args)
            .env("MCP_HUB_CONFIG", &self.hub.config_path)
            .env("MCP_HUB_URL", &self.hub.base)
            .env("MCP_HUB_PID_FILE", &self.pid_file)
            .env(
                "STATE_DIRECTORY",
                self.hub.config_path.parent().unwrap().join("state"),
            )
            .env_remove("MCP_HUB_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (ok, out, err) = self.cli(&a);
        assert!(ok, "mcp-hub {args:?} failed: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Every config file's bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut m = BTreeMap::new();
        m.insert(
            self.hub.config_path.clone(),
            std::fs::read(&self.hub.config_path).unwrap(),
        );
        if let Ok(rd) = std::fs::read_dir(self.conf_d()) {
            for e in rd.flatten() {
                m.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
        m
    }

    async fn code(&self, path: &str) -> u16 {
        reqwest::Client::new()
            .get(self.hub.url(path))
            .bearer_auth(TOKEN)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn wait_listed(&self, name: &str, listed: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.hub.status().await;
            let has = s["servers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == name);
            if has == listed {
                return;
            }
            assert!(Instant::now() < deadline, "{name} listed={has}: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const SECRET: &str = "s3cret-env-value-9f1";

#[tokio::test]
async fn add_list_show_test_tools_call_disable_remove_restore() {
    let op = Op::start(json!({}));
    // The hub wrote its pid file.
    let pid: u32 = std::fs::read_to_string(&op.pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, op.hub.child.id());

    let env = format!("SECRET={SECRET}");
    let (ok, out, err) = op.cli(&["add", "fx", "--env", &env, "--", fixture()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("reloaded (SIGHUP to pid"), "{out}");
    assert!(
        out.contains("initialize") && out.ends_with("PASS\n"),
        "{out}"
    );
    let file = op.conf_d().join("fx.json");
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["mcpServers"]["fx"]["command"], fixture());

    // list: live, with both URLs, no secret.
    let (ok, table, _) = op.cli(&["list"]);
    assert!(
        ok && table.starts_with("NAME") && table.contains("ready"),
        "{table}"
    );
    let list = op.cli_json(&["list"]);
    assert_eq!(list["source"], "hub");
    let fx = &list["servers"][0];
    assert_eq!(fx["name"], "fx");
    assert_eq!(fx["state"], "ready");
    assert_eq!(fx["urls"]["mcp"], op.hub.url("/fx/mcp"));
    assert_eq!(fx["urls"]["sse"], op.hub.url("/fx/sse"));
    let text = list.to_string();
    assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
    let (ok, names, _) = op.cli(&["list", "--format", "names"]);
    assert!(ok);
    assert_eq!(names, "fx\n");

    // show: masked secrets, the file, the resolved sandbox.
    let show = op.cli_json(&["show", "fx"]);
    assert_eq!(show["env"]["SECRET"], "****");
    assert_eq!(show["authTokens"], json!(["****"]));
    assert_eq!(show["file"], file.to_str().unwrap());
    assert_eq!(show["sandbox"]["enabled"], true);
    assert_eq!(show["sandbox"]["network"], "host");
    let (ok, human, _) = op.cli(&["show", "fx"]);
    assert!(ok);
    for t in [show.to_string(), human] {
        assert!(!t.contains(SECRET) && !t.contains(TOKEN), "{t}");
    }

    // test: both routes, each step timed.
    let t = op.cli_json(&["test", "fx"]);
    assert_eq!(t["passed"], true);
    let routes = t["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    for r in routes {
        for s in r["steps"].as_array().unwrap() {
            assert_eq!(s["ok"], true, "{s}");
            assert!(s["ms"].as_f64().unwrap() >= 0.0);
        }
    }
    assert_eq!(routes[1]["steps"][2]["step"], "tools/list");
    let t = op.cli_json(&["test", "fx", "--transport", "sse"]);
    assert_eq!(t["routes"].as_array().unwrap().len(), 1);

    // tools and call.
    let tools = op.cli_json(&["tools", "fx"]);
    assert!(tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "echo"));
    let (ok, out, err) = op.cli(&["call", "fx", "echo", r#"{"text": "hello hub"}"#]);
    assert!(ok && out.contains("hello hub"), "{out}{err}");
    let (ok, _, err) = op.cli(&["call", "fx", "echo", "not json"]);
    assert!(!ok && err.contains("not JSON"), "{err}");
    let (ok, _, err) = op.cli(&["call", "nope", "echo"]);
    assert!(!ok && err.contains("no server named \"nope\""), "{err}");

    // disable → 404, enable → routed again.
    let (ok, out, err) = op.cli(&["disable", "fx"]);
    assert!(ok, "{out}{err}");
    assert_eq!(op.code("/fx/mcp").await, 404);
    let (ok, out, err) = op.cli(&["enable", "fx"]);
    assert!(ok, "{out}{err}");
    assert_ne!(op.code("/fx/mcp").await, 404);
    assert_eq!(std::fs::read(&file).unwrap(), {
        // enable undoes disable exactly: no options block is left behind
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert!(v["mcpServers"]["fx"].get("options").is_none(), "{v}");
        std::fs::read(&file).unwrap()
    });

    // remove: --dry-run writes nothing; then gone, with a 404.
    let before = op.snapshot();
    let (ok, out, _) = op.cli(&["remove", "fx", "--dry-run"]);
    assert!(
        ok && out.contains("--- ") && out.contains("dry run"),
        "{out}"
    );
    assert_eq!(op.snapshot(), before);
    let (ok, out, err) = op.cli(&["remove", "fx"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("verified: /fx/mcp answers 404"), "{out}");
    assert!(!file.exists());
    assert_eq!(op.code("/fx/mcp").await, 404);

    // restore: list the backups, restore the one taken before the removal.
    let backups = op.cli_json(&["restore"]);
    let all = backups["backups"].as_array().unwrap();
    let ops: Vec<&str> = all
        .iter()
        .map(|b| b["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["add", "disable", "enable", "remove"]);
    let id = all[3]["id"].as_str().unwrap();
    let (ok, out, err) = op.cli(&["restore", id]);
    assert!(ok, "{out}{err}");
    assert!(file.exists());
    op.wait_listed("fx", true).await;
    assert_ne!(op.code("/fx/mcp").await, 404);
    // Restoring the backup taken before the add undoes the add.
    let id = all[0]["id"].as_str().unwrap();
    let (ok, out, err) = op.cli(&["restore", id]);
    assert!(ok, "{out}{err}");
    assert!(!file.exists());
    op.wait_listed("fx", false).await;
    let (ok, _, err) = op.cli(&["restore", "no-such-backup"]);
    assert!(!ok && err.contains("no backup named"), "{err}");
}

#[tokio::test]
async fn failures_leave_every_config_file_unchanged() {
    let op = Op::start(json!({"main": fx(json!({}))}));
    let (ok, out, err) = op.cli(&["add", "one", "--", fixture()]);
    assert!(ok, "{out}{err}");
    let before = op.snapshot();

    // A name that exists: in the main file, and in a drop-in.
    let (ok, _, err) = op.cli(&["add", "main", "--", fixture()]);
    assert!(!ok && err.contains("already defined in"), "{err}");
    let (ok, _, err) = op.cli(&["add", "one", "--", fixture()]);
    assert!(!ok && err.contains("--force"), "{err}");
    assert_eq!(op.snapshot(), before);

    // A command that is not there.
    let (ok, _, err) = op.cli(&["add", "two", "--", "/nonexistent/server"]);
    assert!(
        !ok && err
            .contains("mcpServers.two.command: \"/nonexistent/server\" is not an executable file"),
        "{err}"
    );
    let (ok, _, err) = op.cli(&["add", "two", "--", "no-such-command-anywhere"]);
    assert!(!ok && err.contains("on PATH"), "{err}");
    // A name outside the rule; a config that would not validate.
    let (ok, _, err) = op.cli(&["add", "Two-Words", "--", fixture()]);
    assert!(!ok && err.contains("1-32 of a-z 0-9 _"), "{err}");
    let (ok, _, err) = op.cli(&["add", "two", "--memory-max", "lots", "--", fixture()]);
    assert!(
        !ok && err.contains("mcpServers.two.sandbox.memoryMax"),
        "{err}"
    );
    let (ok, _, err) = op.cli(&["add", "two", "--url", "ftp://x/sse"]);
    assert!(!ok && err.contains("mcpServers.two.url"), "{err}");
    assert_eq!(op.snapshot(), before);

    // --dry-run prints the file and the diff, writes nothing.
    let (ok, out, _) = op.cli(&["add", "two", "--dry-run", "--", fixture()]);
    assert!(
        ok && out.contains("+++ ") && out.contains("\"two\""),
        "{out}"
    );
    assert_eq!(op.snapshot(), before);
    // The upstream's era, written as given; an unknown one is refused.
    let (ok, out, _) = op.cli(&[
        "add",
        "two",
        "--dry-run",
        "--protocol",
        "legacy",
        "--",
        fixture(),
    ]);
    assert!(ok && out.contains("\"protocol\": \"legacy\""), "{out}");
    let (ok, _, err) = op.cli(&["add", "two", "--protocol", "2024", "--", fixture()]);
    assert!(!ok && err.contains("--protocol"), "{err}");
    assert_eq!(op.snapshot(), before);

    // A broken drop-in: every command refuses, naming it; nothing changes.
    let broken = op.conf_d().join("50-broken.json");
    std::fs::write(&broken, "{\"mcpServers\": {\"x\": ").unwrap();
    let before = op.snapshot();
    let (ok, _, err) = op.cli(&["add", "two", "--", fixture()]);
    assert!(
        !ok && err.contains("50-broken.json: not valid JSON"),
        "{err}"
    );
    let (ok, _, err) = op.cli(&["check"]);
    assert!(!ok && err.contains("50-broken.json"), "{err}");
    let (ok, _, err) = op.cli(&["remove", "one"]);
    assert!(!ok && err.contains("50-broken.json"), "{err}");
    assert_eq!(op.snapshot(), before);
    // A reload with it keeps the running config.
    let (ok, _, _) = op.cli(&["list"]);
    assert!(!ok);
    std::fs::remove_file(&broken).unwrap();

    // A name defined twice across files: the error names both.
    std::fs::write(
        op.conf_d().join("60-dup.json"),
        json!({"mcpServers": {"main": fx(json!({}))}}).to_string(),
    )
    .unwrap();
    let (ok, _, err) = op.cli(&["check"]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!(
            "mcpServers.main: defined twice, in {} and in {}",
            op.hub.config_path.display(),
            op.conf_d().join("60-dup.json").display()
        )),
        "{err}"
    );
    std::fs::remove_file(op.conf_d().join("60-dup.json")).unwrap();

    // A main file with comments cannot be rewritten: remove refuses, unchanged.
    let commented = format!(
        "// hand-written\n{}",
        std::fs::read_to_string(&op.hub.config_path).unwrap()
    );
    std::fs::write(&op.hub.config_path, &commented).unwrap();
    let (ok, _, err) = op.cli(&["remove", "main"]);
    assert!(!ok && err.contains("has comments"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&op.hub.config_path).unwrap(),
        commented
    );
}

#[tokio::test]
async fn check_and_reload_see_the_drop_ins() {
    let op = Op::start(json!({"main": fx(json!({}))}));
    std::fs::create_dir_all(op.conf_d()).unwrap();
    // Loaded in lexical order, after the main file.
    std::fs::write(
        op.conf_d().join("20-b.json"),
        json!({"mcpServers": {"b": fx(json!({}))}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        op.conf_d().join("10-a.json"),
        json!({"mcpServers": {"a": fx(json!({}))}}).to_string(),
    )
    .unwrap();
    // Not drop-ins: hidden and other extensions.
    std::fs::write(op.conf_d().join(".x.json"), "broken").unwrap();
    std::fs::write(op.conf_d().join("notes.txt"), "broken").unwrap();
    let (ok, out, err) = op.cli(&["check"]);
    assert!(ok, "{out}{err}");
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .take(3)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, ["main", "a", "b"]);
    let list = op.cli_json(&["list"]);
    assert_eq!(list["servers"][1]["state"], "not loaded (reload the hub)");
    let pid = nix::unistd::Pid::from_raw(op.hub.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    op.wait_listed("b", true).await;
    let mut m = Mcp::new(&op.hub, "a");
    m.initialize().await;
    assert_eq!(m.call_text(1, "echo", json!({"text": "x"})).await, "x");
}

#[tokio::test]
async fn without_a_running_hub_add_writes_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, r#"{"mcpProxy": {"addr": "127.0.0.1:1"}}"#).unwrap();
    let out = Command::new(hub_bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "add",
            "fx",
            "--",
            fixture(),
        ])
        .env("MCP_HUB_PID_FILE", dir.path().join("none.pid"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("no running hub to reload"), "{text}");
    assert!(dir.path().join("conf.d/fx.json").exists());
    // list falls back to the config, and says so.
    let out = Command::new(hub_bin())
        .args(["--config", cfg.to_str().unwrap(), "list", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], "config");
    assert_eq!(v["servers"][0]["state"], "(config only)");
    // test needs the hub, and fails clearly without it.
    let out = Command::new(hub_bin())
        .args(["--config", cfg.to_str().unwrap(), "test", "fx"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));
}

#[tokio::test]
async fn root_url_answers_without_a_token_and_lists_servers_with_one() {
    let op =
        Op::start(json!({"fx": fx(json!({})), "off": fx(json!({"options": {"disabled": true}}))}));
    let http = reqwest::Client::new();
    let r = http.get(op.hub.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "Test Hub");
    assert_eq!(v["health"], "/healthz");
    assert!(v.get("servers").is_none(), "{v}");
    let r = http
        .get(op.hub.url("/"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap().get("servers").is_none());
    let v: Value = http
        .get(op.hub.url("/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["servers"],
        json!([{"name": "fx", "mcp": op.hub.url("/fx/mcp"), "sse": op.hub.url("/fx/sse"),
                 "openapi": op.hub.url("/fx/openapi.json")}])
    );
    let r = http
        .get(op.hub.url("/"))
        .bearer_auth(TOKEN)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("<h1>Test Hub</h1>") && html.contains(&op.hub.url("/fx/sse")),
        "{html}"
    );
    let r = http.post(op.hub.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

#[tokio::test]
async fn client_config_writes_each_client_file_idempotently() {
    let op = Op::start(json!({"fx": fx(json!({}))}));
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let env = [("HOME", h), ("CODEX_HOME", "")];
    let mcp = op.hub.url("/fx/mcp");
    let sse = op.hub.url("/fx/sse");
    // An existing file with another entry, which must survive.
    std::fs::create_dir_all(home.path().join(".gemini")).unwrap();
    std::fs::write(
        home.path().join(".gemini/settings.json"),
        r#"{"theme": "dark", "mcpServers": {"other": {"command": "x"}}}"#,
    )
    .unwrap();
    let base = ["--url-base", op.hub.base.as_str()];
    for client in ["claude-code", "vscode", "cursor", "gemini", "codex"] {
        let mut args = vec!["client-config", client, "--write", "--scope", "user"];
        args.extend(base);
        // --dry-run first: nothing is written.
        let before: Vec<_> = walk(home.path());
        let mut dry = args.clone();
        dry.push("--dry-run");
        let (ok, out, err) = op.cli_env(&dry, &env);
        assert!(ok && out.contains("+++ "), "{client}: {out}{err}");
        assert_eq!(walk(home.path()), before, "{client}: --dry-run wrote");
        let (ok, out, err) = op.cli_env(&args, &env);
        assert!(ok && out.contains("wrote "), "{client}: {out}{err}");
        // Again: nothing to change, nothing written, no backup.
        let after = walk(home.path());
        let (ok, out, err) = op.cli_env(&args, &env);
        assert!(ok && out.contains("up to date"), "{client}: {out}{err}");
        assert_eq!(walk(home.path()), after);
    }
    let hp = home.path();
    let c = read_json(&hp.join(".claude.json"));
    assert_eq!(
        c["mcpServers"]["fx"],
        json!({"type": "http", "url": mcp, "headers": {"Authorization": "Bearer ${MCP_HUB_TOKEN}"}})
    );
    let v = read_json(&hp.join(".config/Code/User/mcp.json"));
    assert_eq!(
        v["servers"]["fx"]["headers"]["Authorization"],
        "Bearer ${input:mcp-hub-token}"
    );
    assert_eq!(v["inputs"][0]["password"], true);
    let cu = read_json(&hp.join(".cursor/mcp.json"));
    assert_eq!(
        cu["mcpServers"]["fx"]["headers"]["Authorization"],
        "Bearer ${env:MCP_HUB_TOKEN}"
    );
    let g = read_json(&hp.join(".gemini/settings.json"));
    assert_eq!(g["theme"], "dark");
    assert_eq!(g["mcpServers"]["other"], json!({"command": "x"}));
    assert_eq!(g["mcpServers"]["fx"]["httpUrl"], mcp);
    // The existing Gemini file was backed up before the change.
    assert!(std::fs::read_dir(hp.join(".gemini"))
        .unwrap()
        .flatten()
        .any(|e| e
            .file_name()
            .to_string_lossy()
            .starts_with("settings.json.bak-")));
    let codex = std::fs::read_to_string(hp.join(".codex/config.toml")).unwrap();
    assert!(
        codex.contains("[mcp_servers.fx]")
            && codex.contains(&format!("url = \"{mcp}\""))
            && codex.contains("bearer_token_env_var = \"MCP_HUB_TOKEN\""),
        "{codex}"
    );
    // Nowhere a literal token.
    for f in walk(hp) {
        let t = std::fs::read_to_string(&f.0).unwrap();
        assert!(!t.contains(TOKEN), "{}: {t}", f.0.display());
    }
    // Gemini's SSE entry: url plus type sse. VS Code's project file.
    let mut args = vec!["client-config", "gemini", "--transport", "sse"];
    args.extend(base);
    let (ok, out, _) = op.cli_env(&args, &env);
    assert!(ok);
    let snippet: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        snippet["mcpServers"]["fx"],
        json!({"url": sse, "type": "sse", "headers": {"Authorization": "Bearer ${MCP_HUB_TOKEN}"}})
    );
    let project = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(hub_bin());
    cmd.args([
        "client-config",
        "vscode",
        "--write",
        "--url-base",
        &op.hub.base,
    ])
    .env("MCP_HUB_CONFIG", &op.hub.config_path)
    .current_dir(project.path());
    assert!(cmd.output().unwrap().status.success());
    let v = read_json(&project.path().join(".vscode/mcp.json"));
    assert!(v["servers"].is_object(), "{v}");
    // Open WebUI: the import JSON (one server: one object); --write needs a directory.
    let (ok, out, _) = op.cli_env(&["client-config", "open-webui"], &env);
    assert!(ok);
    let o: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(o["type"], "mcp");
    assert_eq!(o["auth_type"], "bearer");
    let (ok, _, err) = op.cli_env(&["client-config", "open-webui", "--write"], &env);
    assert!(!ok && err.contains("Import"), "{err}");
    let (ok, _, err) = op.cli_env(&["client-config", "codex", "--server", "nope"], &env);
    assert!(!ok && err.contains("no server named \"nope\""), "{err}");
}

/// Every file under `dir` with its bytes.
fn walk(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_grant_on_a_closed_directory_is_reported_and_fixed() {
    assert!(
        nix::unistd::Uid::current().is_root(),
        "this test checks grants as nobody and applies ACLs: it must run as root"
    );
    assert!(
        Command::new("setfacl").arg("--version").output().is_ok(),
        "setfacl is missing: scripts/test installs the acl package"
    );
    use std::os::unix::fs::PermissionsExt;
    let op = Op::start(json!({}));
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = top.path().join("administrator");
    let projects = home.join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    std::fs::write(projects.join("readme.txt"), "hello").unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = projects.to_str().unwrap();
    let before = op.snapshot();
    let (ok, _, err) = op.cli(&["add", "files", "--read", p, "--", fixture()]);
    assert!(!ok, "{err}");
    let expect = format!(
        "mcpServers.files.sandbox.read[0]: {p} is not readable by nobody ({} is 0700, owned by root); grant it with: setfacl -m u:nobody:x {} && setfacl -R -m u:nobody:rX,d:u:nobody:rX {p}",
        home.display(),
        home.display()
    );
    assert!(err.contains(&expect), "{err}");
    assert_eq!(op.snapshot(), before);
    // check and doctor report the same for a server written by hand.
    std::fs::create_dir_all(op.conf_d()).unwrap();
    std::fs::write(
        op.conf_d().join("files.json"),
        json!({"mcpServers": {"files": fx(json!({"sandbox": {"read": [p]}}))}}).to_string(),
    )
    .unwrap();
    let (ok, _, err) = op.cli(&["check"]);
    assert!(!ok && err.contains(&expect), "{err}");
    let (ok, out, _) = op.cli(&["doctor"]);
    assert!(!ok && out.contains("grant NOT usable"), "{out}");
    std::fs::remove_file(op.conf_d().join("files.json")).unwrap();
    // add --grant applies the fix, and the grant is usable from then on.
    let (ok, out, err) = op.cli(&["add", "files", "--read", p, "--grant", "--", fixture()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("granted: setfacl"), "{out}");
    let (ok, out, err) = op.cli(&["check"]);
    assert!(ok, "{out}{err}");
}
