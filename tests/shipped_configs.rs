//! The configs the project ships load cleanly: the demo, the packaged default,
//! the LAN example and every full hub config in README.md pass `mcp-hub check`
//! without a single warning, so a first run shows nothing to worry about.

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
