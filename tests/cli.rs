//! The command line: `check` on good and bad configs, `--help`.

mod common;
use common::hub_bin;
use std::process::Command;

fn check(config: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(hub_bin());
    cmd.args(["check", "--config", config])
        .env_remove("MCP_PROXY_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_lists_servers_of_the_lan_config() {
    let (ok, out, err) = check(&repo("config/lan.json"), &[("MCP_PROXY_TOKEN", "t")]);
    assert!(ok, "{err}");
    assert!(out.starts_with("NAME"));
    for route in [
        "/postgres/sse",
        "/postgres/mcp",
        "/filesystem/sse",
        "/time/mcp",
    ] {
        assert!(out.contains(route), "{out}");
    }
    assert!(out.contains("config OK: 7 server(s)"));
    let (ok, out, _) = check(&repo("config/demo.json"), &[]);
    assert!(
        ok && out.contains("demo_private") && out.contains("per-client"),
        "{out}"
    );
}

#[test]
fn check_fails_with_the_path_of_the_problem() {
    let (ok, _, err) = check(&repo("config/lan.json"), &[]);
    assert!(!ok);
    assert!(
        err.contains(
            "mcpProxy.options.authTokens[0]: environment variable MCP_PROXY_TOKEN is not set"
        ),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"mcpServers": {"fetch": {"command": "uvx", "timeout": "soon"}}}"#,
    )
    .unwrap();
    let (ok, _, err) = check(bad.to_str().unwrap(), &[]);
    assert!(!ok);
    assert!(
        err.contains("mcpServers.fetch.timeout: \"soon\" is not a duration"),
        "{err}"
    );
    let (ok, _, err) = check("/nonexistent/config.json", &[]);
    assert!(
        !ok && err.contains("/nonexistent/config.json: cannot read"),
        "{err}"
    );
}

#[test]
fn help_describes_commands() {
    let out = Command::new(hub_bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("serve") && text.contains("check") && text.contains("--config"));
    let out = Command::new(hub_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--listen"));
}

#[test]
fn serve_refuses_a_bad_config_and_a_busy_port() {
    let out = Command::new(hub_bin())
        .args(["--config", "/nonexistent.json", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, "{}").unwrap();
    let out = Command::new(hub_bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "serve",
            "--listen",
            &addr,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on {addr}")));
}

#[test]
fn credentials_come_from_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("hub-token"), "from-systemd\n").unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, r#"{"mcpProxy": {"options": {"authTokens": ["${credential:hub-token}"]}}, "mcpServers": {"a": {"command": "x"}}}"#).unwrap();
    let (ok, out, err) = check(
        cfg.to_str().unwrap(),
        &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
    );
    assert!(ok && out.contains("1 token(s)"), "{out}{err}");
    // A credentials directory without the file: the error the hub would hit.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, _, err) = check(
        cfg.to_str().unwrap(),
        &[("CREDENTIALS_DIRECTORY", empty.to_str().unwrap())],
    );
    assert!(
        !ok && err.contains("credential hub-token is not available"),
        "{err}"
    );
    // Outside the service (no CREDENTIALS_DIRECTORY: an operator's shell), the
    // reference is kept and named, so `check` still checks the rest.
    let (ok, out, err) = check(cfg.to_str().unwrap(), &[]);
    assert!(ok && out.contains("1 token(s)"), "{out}{err}");
    assert!(
        err.contains("${credential:hub-token} is read by the service at start"),
        "{err}"
    );
}

/// `doctor` with one config: (exit status ok, stdout).
fn doctor(servers: serde_json::Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let cfg = serde_json::json!({"mcpProxy": {"options": {"stateDir": dir.path().join("state")}},
                                 "mcpServers": servers});
    std::fs::write(&path, cfg.to_string()).unwrap();
    let out = Command::new(hub_bin())
        .args(["--config", path.to_str().unwrap(), "doctor"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

#[test]
fn doctor_exits_non_zero_when_a_profile_cannot_be_enforced() {
    let fx = common::fixture();
    let (ok, out) = doctor(serde_json::json!({"plain": {"command": fx}}));
    assert!(ok, "a default profile is enforceable here: {out}");
    assert!(out.contains("plain: fully enforced"), "{out}");
    assert!(
        out.contains("landlock ABI:") && out.contains("seccomp filters:"),
        "{out}"
    );

    // memoryMax needs a delegated cgroup v2, which these machines lack; where
    // one exists, doctor must say the profile is enforced instead.
    let (ok, out) = doctor(serde_json::json!({
        "capped": {"command": fx, "sandbox": {"memoryMax": "256M"}},
        "open": {"command": fx, "sandbox": false}}));
    assert!(out.contains("open: WARNING: sandbox disabled"), "{out}");
    // Sizes as systemd reads them, shown in bytes.
    assert!(
        out.contains("capped: limits: memoryMax 268435456 bytes (256 MiB), pidsMax 512"),
        "{out}"
    );
    if out.contains("cgroup v2 limits:             limits not enforced") {
        assert!(!ok, "an unenforceable profile must fail doctor: {out}");
        assert!(out.contains("capped: NOT fully enforced"), "{out}");
        assert!(
            out.contains("memoryMax/cpuQuota: limits not enforced"),
            "{out}"
        );
    } else {
        assert!(ok, "{out}");
        assert!(out.contains("capped: fully enforced"), "{out}");
    }
}
