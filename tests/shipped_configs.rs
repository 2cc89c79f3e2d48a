//! The configs the project ships load cleanly: the demo, the packaged default,
//! the LAN example and every full hub config in README.md pass `mcp-hub check`
//! without a single warning, so a first run shows nothing to worry about; and
//! the demo, started as the README starts it, answers and logs no warning.

mod common;
use common::hub_bin;
use std::process::Command;

/// Variables the examples reference, so that they expand.
const ENV: &[(&str, &str)] = &[
    ("MCP_PROXY_TOKEN", "t"),
    ("OPS_TOKEN", "t"),
    ("SCRAPE_TOKEN", "t"),
    ("REMOTE_TOKEN", "t"),
    ("GROUP_TOKEN", "t"),
];

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// `check`'s output (stdout and stderr) for a config file; panics when the
/// config does not load.
fn check_output(config: &str) -> String {
    let mut cmd = Command::new(hub_bin());
    cmd.args(["check", "--config", config])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{config}: {text}");
    text
}

/// The ```json / ```jsonc blocks of README.md that are whole hub configs
/// (an object with `mcpProxy`), not fragments or other programs' files.
fn readme_configs() -> Vec<String> {
    let text = std::fs::read_to_string(repo("README.md")).unwrap();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match &mut block {
            None if line == "```json" || line == "```jsonc" => block = Some(String::new()),
            None => {}
            Some(_) if line == "```" => {
                let b = block.take().unwrap();
                if b.trim_start().starts_with('{') && b.contains("\"mcpProxy\"") {
                    out.push(b);
                }
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    out
}

#[test]
fn shipped_configs_load_without_warnings() {
    for file in [
        "config/demo.json",
        "config/lan.json",
        "packaging/config.json",
    ] {
        let err = check_output(&repo(file));
        assert!(!err.contains("warning"), "{file}: {err}");
    }
}

#[test]
fn readme_configs_load_without_warnings() {
    let blocks = readme_configs();
    assert!(!blocks.is_empty(), "README.md has no full config example");
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in blocks.iter().enumerate() {
        let path = dir.path().join(format!("readme{i}.json"));
        std::fs::write(&path, b).unwrap();
        let err = check_output(path.to_str().unwrap());
        assert!(!err.contains("warning"), "README config #{i}: {err}\n{b}");
    }
}

/// The README's first command: the demo config starts, answers the README's
/// `initialize` with its token, and logs no warning on the way.
#[tokio::test]
async fn the_demo_config_starts_and_answers_with_no_warning() {
    use std::io::BufRead;
    let mut child = Command::new(hub_bin())
        .args([
            "--config",
            "config/demo.json",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MCP_HUB_DEMO_SERVER", common::fixture())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no `listening on` line: {lines:#?}"));
        lines.push(line.clone());
        if let Some(at) = line.find("listening on ") {
            break line[at + 13..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/demo/mcp"))
        .bearer_auth("demo-token")
        .header("accept", "application/json, text/event-stream")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "curl", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["result"]["serverInfo"]["name"], "mcp-fixture",
        "{body}"
    );
    // What the start and the first session logged.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    lines.extend(rx.try_iter());
    assert!(
        lines.iter().any(|l| l.contains("session opened")),
        "{lines:#?}"
    );
    let warned: Vec<_> = lines
        .iter()
        .filter(|l| {
            l.contains(" WARN ") || l.contains("ERROR") || l.to_lowercase().contains("warning")
        })
        .collect();
    assert!(warned.is_empty(), "{warned:#?}");
}
