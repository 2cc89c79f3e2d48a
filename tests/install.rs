//! A package runner's `install` options: which Python `check` picks and why,
//! a missing one named with its config path, `add --install-python
//! --override` writing them, overrides checked against the runner. (The
//! installs themselves, against PyPI, are in tests/interop/test_install.py.)
//!
//! The servers' PATH is `/usr/bin:/bin`, so the interpreters seen are the
//! system's: Debian 12 ships python3.11 and no 3.12.

mod common;
use common::hub_bin;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const PATH: &str = "/usr/bin:/bin";

fn write_cfg(dir: &Path, servers: Value) -> std::path::PathBuf {
    let cfg = dir.join("config.json");
    let c =
        json!({"mcpProxy": {"options": {"stateDir": dir.join("state")}}, "mcpServers": servers});
    std::fs::write(&cfg, c.to_string()).unwrap();
    cfg
}

fn run(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(hub_bin())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("MCP_HUB_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn uvx(install: Value) -> Value {
    json!({"command": "uvx", "args": ["mcp-server-time"], "env": {"PATH": PATH}, "install": install})
}

/// The system's python3.x version, as `check` should report it.
fn system_python() -> String {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn check_says_which_python_and_why_or_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let have = system_python();
    let (major, minor) = have.split_once('.').unwrap();
    let next = format!("{major}.{}", minor.parse::<u32>().unwrap() + 1);
    let cfg = write_cfg(
        dir.path(),
        json!({"pg": uvx(json!({"python": format!(">={have}"), "overrides": ["mcp<2"]}))}),
    );
    let (ok, out, err) = run(&cfg, &["check"]);
    assert!(ok, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("pg: install: "))
        .unwrap_or_else(|| panic!("no install line: {out}"));
    assert!(
        line.contains(&format!("python {have}."))
            && line.contains(&format!("/usr/bin/python{have}"))
            && line.contains(&format!("the newest Python on PATH that fits >={have}"))
            && line.contains("overrides mcp<2"),
        "{line}"
    );
    // One more minor version than the machine has: check fails, naming the
    // config path, what it looked for and what it found.
    let cfg = write_cfg(
        dir.path(),
        json!({"pg": uvx(json!({"python": format!(">={next}")}))}),
    );
    let (ok, out, err) = run(&cfg, &["check"]);
    assert!(!ok, "{out}{err}");
    let want = format!("error: mcpServers.pg.install.python: no Python >={next} on this machine (found python{have} {have}.");
    assert!(err.contains(&want), "{err}");
    assert!(
        err.contains(&format!("at /usr/bin/python{have}"))
            && err.contains("install one or set install.python to a path"),
        "{err}"
    );
    let (ok, out, _) = run(&cfg, &["--json", "check"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(!ok && v["installs"][0]["ok"] == false, "{v}");
    // A path that is not there; a spec that is no spec (a config error).
    let cfg = write_cfg(
        dir.path(),
        json!({"pg": uvx(json!({"python": "/nonexistent/python3.12"}))}),
    );
    let (ok, _, err) = run(&cfg, &["check"]);
    assert!(
        !ok && err.contains("mcpServers.pg.install.python: /nonexistent/python3.12 does not exist"),
        "{err}"
    );
    let cfg = write_cfg(dir.path(), json!({"pg": uvx(json!({"python": "newest"}))}));
    let (ok, _, err) = run(&cfg, &["check"]);
    assert!(
        !ok && err
            .contains("mcpServers.pg.install.python: \"newest\" is not a Python version spec"),
        "{err}"
    );
}

#[test]
fn overrides_are_checked_against_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let npx = |overrides: Value, extra: Value| {
        let mut s = json!({"command": "npx", "args": ["-y", "some-server"], "install": {"overrides": overrides}});
        s["install"]
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };
    let cfg = write_cfg(
        dir.path(),
        json!({"n": npx(json!(["minimist@1.2.8", "@scope/x@^2"]), json!({}))}),
    );
    let (ok, out, err) = run(&cfg, &["check"]);
    assert!(
        ok && out.contains("n: install: overrides minimist@1.2.8, @scope/x@^2"),
        "{out}{err}"
    );
    let cfg = write_cfg(
        dir.path(),
        json!({"n": npx(json!(["minimist==1.2.8"]), json!({}))}),
    );
    let (ok, _, err) = run(&cfg, &["check"]);
    assert!(
        !ok && err.contains(
            "mcpServers.n.install.overrides[0]: \"minimist==1.2.8\" is not name@version for npm"
        ),
        "{err}"
    );
    let cfg = write_cfg(
        dir.path(),
        json!({"n": npx(json!([]), json!({"python": ">=3"}))}),
    );
    let (ok, _, err) = run(&cfg, &["check"]);
    assert!(
        !ok && err.contains("mcpServers.n.install.python: only applies to Python runners"),
        "{err}"
    );
    // Not a package runner at all; a remote server.
    let cfg = write_cfg(
        dir.path(),
        json!({"b": {"command": "/bin/true", "install": {"overrides": ["x==1"]}}}),
    );
    let (ok, _, err) = run(&cfg, &["check"]);
    assert!(
        !ok && err.contains("mcpServers.b.install: only applies to a package runner"),
        "{err}"
    );
    let cfg = write_cfg(
        dir.path(),
        json!({"r": {"url": "http://127.0.0.1:9/mcp", "install": {}}}),
    );
    let (ok, _, err) = run(&cfg, &["check"]);
    assert!(
        !ok && err.contains("mcpServers.r.install: only applies to a \"command\" server"),
        "{err}"
    );
}

#[test]
fn add_writes_install_options_and_refuses_a_missing_python() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_cfg(dir.path(), json!({}));
    let have = system_python();
    // `add` wants the runner to exist; a stand-in is enough (nothing is installed here).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("uvx"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("uvx"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("PATH={}:{PATH}", bin.display());
    let (ok, out, err) = run(
        &cfg,
        &[
            "add",
            "pg",
            "--no-test",
            "--env",
            &path,
            "--install-python",
            &format!(">={have}"),
            "--override",
            "pglast==7.2",
            "--override",
            "mcp<2",
            "--",
            "uvx",
            "postgres-mcp",
        ],
    );
    assert!(ok, "{out}{err}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("conf.d/pg.json")).unwrap()).unwrap();
    assert_eq!(
        written["mcpServers"]["pg"]["install"],
        json!({"python": format!(">={have}"), "overrides": ["pglast==7.2", "mcp<2"]})
    );
    let (ok, out, err) = run(&cfg, &["show", "pg", "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["install"]["overrides"],
        json!(["pglast==7.2", "mcp<2"]),
        "{v}"
    );
    // A Python the machine does not have: nothing is written.
    let (ok, _, err) = run(
        &cfg,
        &[
            "add",
            "pg2",
            "--no-test",
            "--env",
            &path,
            "--install-python",
            ">=3.99",
            "--",
            "uvx",
            "postgres-mcp",
        ],
    );
    assert!(
        !ok && err.contains("not written: mcpServers.pg2.install.python: no Python >=3.99"),
        "{err}"
    );
    assert!(!dir.path().join("conf.d/pg2.json").exists());
}
