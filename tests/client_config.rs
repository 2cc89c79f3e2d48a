//! `client-config open-webui`: what Open WebUI's Import takes (one connection
//! per file or per printed object), `--write DIR` one file per server and
//! group, `--openapi` entries beside the MCP ones, and the key: empty with a
//! note on stderr, or the config's token with a warning.

mod common;
use common::{fixture, hub_bin};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "owui-secret-token";
const BASE: &str = "http://hub.lan:9090";

/// A config with two servers (one open, one with a token) and a group.
fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.json");
    let cfg = json!({
        "mcpProxy": {"addr": "127.0.0.1:9", "options": {"authTokens": [TOKEN]}},
        "mcpServers": {
            "alpha": {"command": fixture()},
            "beta": {"command": fixture(), "options": {"authTokens": []}},
        },
        "groups": {"all": {"servers": ["alpha", "beta"]}},
    });
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

fn run(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(hub_bin())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "client-config",
            "open-webui",
        ])
        .args(["--url-base", BASE])
        .args(args)
        .env_remove("MCP_HUB_TOKEN")
        .env_remove("OPEN_WEBUI_API_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn one_server_prints_one_importable_object() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (ok, out, err) = run(&cfg, &["--server", "alpha"]);
    assert!(ok, "{err}");
    let o: Value = serde_json::from_str(&out).unwrap();
    assert!(o.is_object(), "{o}");
    assert_eq!(o["type"], "mcp");
    assert_eq!(o["url"], format!("{BASE}/alpha/mcp"));
    assert_eq!(o["auth_type"], "bearer");
    assert_eq!(o["key"], "");
    assert_eq!(o["info"]["id"], "alpha");
    assert_eq!(o["config"]["enable"], true);
    // The key is empty: stderr says where to paste it, and nothing holds the token.
    assert!(
        err.contains("Key") && err.contains("External Tools"),
        "{err}"
    );
    assert!(!out.contains(TOKEN));

    // A group, by --group.
    let (ok, out, _) = run(&cfg, &["--group", "all"]);
    assert!(ok);
    let g: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(g["url"], format!("{BASE}/g/all/mcp"));
    assert_eq!(g["info"]["id"], "g-all");

    // An open server needs no key and gets no note.
    let (ok, out, err) = run(&cfg, &["--server", "beta"]);
    assert!(ok);
    let b: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(b["auth_type"], "none");
    assert!(!err.contains("Key"), "{err}");

    // Every server and group: an array (TOOL_SERVER_CONNECTIONS' shape), and
    // a note that Import takes its first entry only.
    let (ok, out, err) = run(&cfg, &[]);
    assert!(ok);
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(err.contains("first connection"), "{err}");

    // Unknown names are refused by name.
    let (ok, _, err) = run(&cfg, &["--group", "nope"]);
    assert!(!ok && err.contains("no group named \"nope\""), "{err}");
}

#[test]
fn openapi_entries_and_the_token_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (ok, out, err) = run(&cfg, &["--server", "alpha", "--openapi", "--with-token"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let api = list.iter().find(|e| e["type"] == "openapi").unwrap();
    assert_eq!(api["url"], format!("{BASE}/alpha"));
    assert_eq!(api["path"], "openapi.json");
    assert_eq!(api["key"], TOKEN);
    assert!(list.iter().any(|e| e["type"] == "mcp" && e["key"] == TOKEN));
    assert!(err.contains("warning") && err.contains("token"), "{err}");
}

#[test]
fn write_makes_one_file_per_server_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out_dir = dir.path().join("owui");
    let d = out_dir.to_str().unwrap();
    let (ok, out, err) = run(&cfg, &["--write", d, "--openapi"]);
    assert!(ok, "{err}");
    assert!(err.contains("Key"), "{err}");
    for (file, kind, url) in [
        ("alpha.json", "mcp", format!("{BASE}/alpha/mcp")),
        ("alpha.openapi.json", "openapi", format!("{BASE}/alpha")),
        ("beta.json", "mcp", format!("{BASE}/beta/mcp")),
        ("g/all.json", "mcp", format!("{BASE}/g/all/mcp")),
        ("g/all.openapi.json", "openapi", format!("{BASE}/g/all")),
    ] {
        let p = out_dir.join(file);
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        // Open WebUI's Import reads data[0] of an array, as its Export writes.
        let e = &v.as_array().unwrap()[0];
        assert_eq!(
            (e["type"].as_str(), &e["url"]),
            (Some(kind), &json!(url)),
            "{file}"
        );
        assert!(out.contains(p.to_str().unwrap()), "{out}");
    }
    // Again: nothing changes.
    let (ok, out, _) = run(&cfg, &["--write", d, "--openapi"]);
    assert!(
        ok && !out.contains("wrote") && out.contains("up to date"),
        "{out}"
    );
    // With the token the files are the operator's only.
    let (ok, _, err) = run(&cfg, &["--write", d, "--with-token"]);
    assert!(ok && err.contains("warning"), "{err}");
    let p = out_dir.join("alpha.json");
    assert!(std::fs::read_to_string(&p).unwrap().contains(TOKEN));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // --write without a directory: Open WebUI has no file of its own.
    let (ok, _, err) = run(&cfg, &["--write"]);
    assert!(!ok && err.contains("Import"), "{err}");
}

/// `--client NAME`: only what the named client may reach, under its own
/// token's variable; never its token (the config holds only the hash).
#[test]
fn a_named_client_gets_its_own_servers_and_token_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let cfg = json!({
        "mcpProxy": {"addr": "127.0.0.1:9", "options": {"clients": {
            "lap-top": {"token": "x", "servers": ["beta"], "groups": ["all"]},
            "nobody": {"token": "y", "servers": []},
        }}},
        "mcpServers": {"alpha": {"command": fixture()}, "beta": {"command": fixture()}},
        "groups": {"all": {"servers": ["alpha", "beta"]}},
    });
    std::fs::write(&path, cfg.to_string()).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(hub_bin())
            .args(["--config", path.to_str().unwrap(), "client-config"])
            .args(args)
            .args(["--url-base", BASE])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = cli(&["claude-code", "--client", "lap-top"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let servers = v["mcpServers"].as_object().unwrap();
    assert_eq!(servers.keys().collect::<Vec<_>>(), ["beta"], "{v}");
    assert!(out.contains("${MCP_HUB_TOKEN_LAP_TOP}"), "{out}");
    // Open WebUI: its server and its group, with the key left to paste.
    let (ok, out, err) = cli(&["open-webui", "--client", "lap-top"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let urls: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [format!("{BASE}/beta/mcp"), format!("{BASE}/g/all/mcp")]
    );
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["auth_type"] == "bearer" && e["key"] == ""));
    let (ok, _, err) = cli(&["open-webui", "--client", "lap-top", "--with-token"]);
    assert!(!ok && err.contains("only its hash"), "{err}");
    let (ok, _, err) = cli(&["claude-code", "--client", "nobody"]);
    assert!(!ok && err.contains("may reach no enabled server"), "{err}");
    let (ok, _, err) = cli(&["claude-code", "--client", "ghost"]);
    assert!(!ok && err.contains("no named client \"ghost\""), "{err}");
}

/// `--open-webui-url` goes with a bare `--write`, needs a key, and names the
/// URL when Open WebUI cannot be reached (the rest is in the interop test
/// against a real Open WebUI).
#[test]
fn open_webui_url_wants_write_a_key_and_names_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let url = {
        // A port nothing listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (ok, _, err) = run(&cfg, &["--open-webui-url", &url]);
    assert!(!ok && err.contains("add --write"), "{err}");
    let d = dir.path().join("out");
    let (ok, _, err) = run(
        &cfg,
        &["--write", d.to_str().unwrap(), "--open-webui-url", &url],
    );
    assert!(!ok && err.contains("not into a directory"), "{err}");
    let (ok, _, err) = run(&cfg, &["--write", "--open-webui-url", &url]);
    assert!(!ok && err.contains("OPEN_WEBUI_API_KEY"), "{err}");
    let (ok, _, err) = run(
        &cfg,
        &["--write", "--open-webui-url", &url, "--open-webui-key", "k"],
    );
    assert!(
        !ok && err.contains(&format!("cannot reach Open WebUI at {url}")),
        "{err}"
    );
    let (ok, _, err) = run(
        &cfg,
        &[
            "--write",
            "--open-webui-url",
            "ftp://x",
            "--open-webui-key",
            "k",
        ],
    );
    assert!(!ok && err.contains("http or https"), "{err}");
}
