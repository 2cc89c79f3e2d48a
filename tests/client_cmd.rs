//! `mcp-hub client add|list|revoke|rotate` against a real running hub: the
//! token printed once works (and only on the routes the client may reach),
//! the config holds only its hash, `list` shows no secret, a revoke ends the
//! client's open sessions at the reload and its token then gets 401, and a
//! rotation keeps the old token for its grace only.

mod common;
use common::*;
use mcp_hub::config::clients::sha256_hex;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running hub plus what the CLI needs to reach and reload it. The hub
/// keeps `authTokens: [TOKEN]`, so removing every client does not open it.
struct Op {
    hub: Hub,
    pid_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Op {
    fn start(proxy_options: Value) -> Op {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("hub.pid");
        let hub = Hub::start_env(
            json!({"options": proxy_options}),
            json!({"fx": fx(json!({})), "other": fx(json!({}))}),
            &[("MCP_HUB_PID_FILE", pid_file.to_str().unwrap())],
        );
        Op {
            hub,
            pid_file,
            _dir: dir,
        }
    }

    fn dropin(&self, name: &str) -> PathBuf {
        self.hub
            .config_path
            .parent()
            .unwrap()
            .join("conf.d")
            .join(format!("client-{name}.json"))
    }

    /// Runs `mcp-hub ARGS` against this hub: (exit ok, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(hub_bin())
            .args(args)
            .env("MCP_HUB_CONFIG", &self.hub.config_path)
            .env("MCP_HUB_URL", &self.hub.base)
            .env("MCP_HUB_PID_FILE", &self.pid_file)
            .env_remove("MCP_HUB_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Runs a command that prints a new token, and returns the token.
    fn token_from(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(args);
        assert!(ok, "mcp-hub {args:?}: {out}{err}");
        // The token alone on stdout; everything else on stderr.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "stdout: {out:?}");
        assert_eq!(lines[0].len(), 43, "{out:?}");
        assert!(
            err.contains("shown only this once") && err.contains("reloaded (SIGHUP to pid"),
            "{err}"
        );
        assert!(err.contains("verified: the hub accepts the token"), "{err}");
        lines[0].to_string()
    }

    /// `GET path` with `token`: the HTTP status.
    async fn code(&self, path: &str, token: &str) -> u16 {
        reqwest::Client::new()
            .get(self.hub.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits (at most `secs`) until `GET path` with `token` answers `want`.
    async fn wait_code(&self, path: &str, token: &str, want: u16, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let c = self.code(path, token).await;
            if c == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} answered {c}, not {want}, for {secs}s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn mcp(op: &Op, server: &str, token: &str) -> Mcp {
    let mut m = Mcp::new(&op.hub, server);
    m.token = token.into();
    m
}

#[tokio::test]
async fn add_prints_a_working_token_once_and_list_shows_no_secret() {
    let op = Op::start(json!({}));
    let token = op.token_from(&[
        "client",
        "add",
        "lap",
        "--servers",
        "fx",
        "--tools",
        "fx=echo,add",
        "--rate",
        "120/min",
        "--max-concurrent",
        "4",
    ]);
    let hash = sha256_hex(&token);
    let file = std::fs::read_to_string(op.dropin("lap")).unwrap();
    assert!(file.contains(&hash) && !file.contains(&token), "{file}");

    // The token works on the client's server, and only there.
    assert_eq!(op.code("/fx/openapi.json", &token).await, 200);
    assert_eq!(op.code("/fx/openapi.json", "not-the-token").await, 401);
    assert_eq!(op.code("/other/openapi.json", &token).await, 404);
    assert_eq!(op.code("/other/openapi.json", TOKEN).await, 200);
    let mut s = mcp(&op, "fx", &token);
    s.initialize().await;
    let r = s.post(&req(json!(1), "tools/list", json!({}))).await;
    let names: Vec<&str> = r.last()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "add"], "the client's tool rule");
    assert_eq!(s.call_text(2, "echo", json!({"text": "hi"})).await, "hi");
    let r = s
        .post(&call(3, "structured_add", json!({"a": 1, "b": 2})))
        .await;
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("mcpProxy.options.clients.lap.tools.fx"),
        "{}",
        r.last()
    );

    // list: the policy, the file, no token and no hash.
    let (ok, out, err) = op.cli(&["client", "list"]);
    assert!(ok, "{err}");
    for want in [
        "lap",
        "fx=echo,add",
        "120/min",
        "client-lap.json",
        "LAST USED",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let (ok, json_out, err) = op.cli(&["client", "list", "--json"]);
    assert!(ok, "{err}");
    for text in [&out, &err, &json_out] {
        assert!(!text.contains(&token) && !text.contains(&hash), "{text}");
    }
    let v: Value = serde_json::from_str(&json_out).unwrap();
    let c = &v["clients"][0];
    assert_eq!(c["name"], "lap");
    assert_eq!(c["servers"], json!(["fx"]));
    assert_eq!(
        c["tools"]["fx"],
        json!({"mode": "allow", "list": ["echo", "add"]})
    );
    assert_eq!(c["rate"], "120/min");
    assert_eq!(c["maxConcurrent"], 4);
    assert_eq!(c["maxSessions"], 1024);
    assert!(c["file"]
        .as_str()
        .unwrap()
        .ends_with("conf.d/client-lap.json"));

    // The name is taken: refused, nothing changed.
    let before = std::fs::read(op.dropin("lap")).unwrap();
    let (ok, out, err) = op.cli(&["client", "add", "lap"]);
    assert!(
        !ok && out.is_empty() && err.contains("already exists"),
        "{out}{err}"
    );
    assert_eq!(std::fs::read(op.dropin("lap")).unwrap(), before);
    // An invalid client is not written, and no token is shown.
    let (ok, out, err) = op.cli(&["client", "add", "bad", "--rate", "lots"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains("not written") && err.contains("mcpProxy.options.clients.bad.rate"),
        "{err}"
    );
    assert!(!op.dropin("bad").exists());
    let (ok, _, err) = op.cli(&["client", "add", "Bad"]);
    assert!(!ok && err.contains("must match"), "{err}");

    // --force replaces it: the old token stops working, the new one works.
    let new = op.token_from(&["client", "add", "lap", "--force"]);
    assert_ne!(new, token);
    op.wait_code("/fx/openapi.json", &token, 401, 10).await;
    assert_eq!(op.code("/fx/openapi.json", &new).await, 200);
    // No --servers: every server.
    assert_eq!(op.code("/other/openapi.json", &new).await, 200);
}

#[tokio::test]
async fn revoke_ends_the_clients_sessions_and_its_token_then_gets_401() {
    // One client in the main file, one added as a drop-in.
    let op = Op::start(json!({"clients": {"desk": {"tokenSha256": sha256_hex("desk-token")}}}));
    assert_eq!(op.code("/fx/openapi.json", "desk-token").await, 200);
    let token = op.token_from(&["client", "add", "lap"]);
    let (ok, out, _) = op.cli(&["client", "list"]);
    assert!(
        ok && out.contains("desk") && out.contains("config.json"),
        "{out}"
    );

    let mut s = mcp(&op, "fx", &token);
    s.initialize().await;
    let mut stream = RawEvents::new(s.get_stream().await);
    let mut desk = mcp(&op, "fx", "desk-token");
    desk.initialize().await;
    let mut desk_stream = RawEvents::new(desk.get_stream().await);

    let (ok, out, err) = op.cli(&["client", "revoke", "lap"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "revoked lap\n");
    assert!(err.contains("deleted") && err.contains("backup"), "{err}");
    assert!(!op.dropin("lap").exists());
    assert!(
        stream.ends_within(10).await,
        "the revoked client's session stream stays open"
    );
    // The log line is read from the hub's stderr by another thread.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !op.hub.log_contains("whose token a reload revoked") {
        assert!(
            Instant::now() < deadline,
            "no log line about the revoked session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    op.wait_code("/fx/openapi.json", &token, 401, 10).await;
    let r = s.post(&req(json!(9), "tools/list", json!({}))).await;
    assert_eq!(r.status, 401);
    // The other client's session lives on.
    assert!(!desk_stream.ends_within(1).await, "desk's session ended");
    assert_eq!(
        desk.call_text(1, "echo", json!({"text": "still"})).await,
        "still"
    );

    // A client in the main file: its entry goes, the rest of the file stays.
    let (ok, out, err) = op.cli(&["client", "revoke", "desk"]);
    assert!(ok, "{out}{err}");
    assert!(
        desk_stream.ends_within(10).await,
        "desk's session stays open"
    );
    op.wait_code("/fx/openapi.json", "desk-token", 401, 10)
        .await;
    let main = std::fs::read(&op.hub.config_path).unwrap();
    let main: Value = serde_json::from_slice(&main).unwrap();
    assert_eq!(main["mcpProxy"]["options"]["authTokens"], json!([TOKEN]));
    assert!(
        main["mcpProxy"]["options"].get("clients").is_none(),
        "{main}"
    );
    assert_eq!(op.code("/fx/openapi.json", TOKEN).await, 200);

    let (ok, _, err) = op.cli(&["client", "revoke", "lap"]);
    assert!(!ok && err.contains("no client named \"lap\""), "{err}");
    let (ok, out, _) = op.cli(&["client", "list"]);
    assert!(ok && out.starts_with("no named clients"), "{out}");
}

#[tokio::test]
async fn rotate_keeps_the_old_token_for_its_grace_only() {
    let op = Op::start(json!({}));
    let old = op.token_from(&["client", "add", "lap", "--servers", "fx"]);
    let new = op.token_from(&["client", "rotate", "lap", "--grace", "2s"]);
    let t0 = Instant::now();
    assert_ne!(old, new);
    // Right after: both work.
    assert_eq!(op.code("/fx/openapi.json", &old).await, 200);
    assert_eq!(op.code("/fx/openapi.json", &new).await, 200);
    let file: Value = serde_json::from_slice(&std::fs::read(op.dropin("lap")).unwrap()).unwrap();
    let c = &file["mcpProxy"]["options"]["clients"]["lap"];
    assert_eq!(c["tokenSha256"], sha256_hex(&new));
    assert_eq!(c["previous"][0]["tokenSha256"], sha256_hex(&old));
    let until = c["previous"][0]["until"].as_str().unwrap();
    assert!(until.ends_with('Z'), "{until}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "too slow to see the grace"
    );
    // After the grace, with no reload: the old one gets 401.
    op.wait_code("/fx/openapi.json", &old, 401, 5).await;
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "ended before its grace"
    );
    assert_eq!(op.code("/fx/openapi.json", &new).await, 200);
    let (ok, out, _) = op.cli(&["client", "list", "--json"]);
    assert!(ok && !out.contains(&sha256_hex(&old)), "{out}");

    // No grace: the expired entry is dropped and the current token ends now.
    let third = op.token_from(&["client", "rotate", "lap", "--grace", "0s"]);
    op.wait_code("/fx/openapi.json", &new, 401, 10).await;
    assert_eq!(op.code("/fx/openapi.json", &third).await, 200);
    let file: Value = serde_json::from_slice(&std::fs::read(op.dropin("lap")).unwrap()).unwrap();
    assert!(
        file["mcpProxy"]["options"]["clients"]["lap"]
            .get("previous")
            .is_none(),
        "{file}"
    );

    let (ok, out, err) = op.cli(&["client", "rotate", "lap", "--grace", "soon"]);
    assert!(!ok && out.is_empty() && err.contains("--grace"), "{err}");
    let (ok, _, err) = op.cli(&["client", "rotate", "nobody"]);
    assert!(!ok && err.contains("no client named"), "{err}");
}

#[test]
fn client_help_has_examples() {
    let out = Command::new(hub_bin())
        .args(["client", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "add",
        "list",
        "revoke",
        "rotate",
        "TOKEN=$(mcp-hub client add",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let out = Command::new(hub_bin())
        .args(["client", "rotate", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--grace") && text.contains("24h"), "{text}");
}
