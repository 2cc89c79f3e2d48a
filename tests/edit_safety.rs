//! The changing commands against hostile timing and hostile backups, with no
//! hub running (they write and say so): two `add`s of one name at once, and
//! `restore` of planted manifests that point outside the config, read copies
//! from elsewhere, or go through symlinks. Also `--header` and `headers`
//! values HTTP does not allow.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Setup {
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etc/config.json");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        // Port 1: nothing answers there, and no pid file: no hub to reload.
        std::fs::write(&cfg, r#"{"mcpProxy": {"addr": "127.0.0.1:1"}}"#).unwrap();
        Setup { dir, cfg }
    }

    fn etc(&self) -> PathBuf {
        self.cfg.parent().unwrap().into()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(hub_bin());
        c.arg("--config")
            .arg(&self.cfg)
            .args(args)
            .env("MCP_HUB_PID_FILE", self.dir.path().join("none.pid"))
            .env_remove("MCP_HUB_URL");
        c
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let o = self.cmd(args).output().unwrap();
        (o.status.success(), text(&o))
    }

    /// Every file under the temp dir (the config dir and "outside" it), but
    /// the lock file.
    fn tree(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut m = BTreeMap::new();
        walk(self.dir.path(), &mut m);
        m.retain(|p, _| !p.ends_with(".mcp-hub.lock"));
        m
    }

    fn plant(&self, id: &str, files: Value, copies: &[(&str, &str)]) -> PathBuf {
        let d = self.etc().join("backup").join(id);
        std::fs::create_dir_all(&d).unwrap();
        let m = json!({"operation": "add", "server": "x", "created": "2026-01-01T00:00:00Z", "files": files});
        std::fs::write(d.join("manifest.json"), m.to_string()).unwrap();
        for (n, t) in copies {
            std::fs::write(d.join(n), t).unwrap();
        }
        d
    }
}

/// A planted backup: its id, the manifest's `files`, the copies it holds, and
/// what the refusal must say.
type Planted<'a> = (&'a str, Value, Vec<(&'a str, &'a str)>, String);

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn walk(dir: &Path, m: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let t = std::fs::symlink_metadata(&p).unwrap().file_type();
        if t.is_dir() {
            walk(&p, m);
        } else if t.is_symlink() {
            m.insert(
                p.clone(),
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            );
        } else {
            m.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
}

#[test]
fn two_adds_of_one_name_at_once_one_wins_the_other_is_refused() {
    let s = Setup::new();
    for round in 0..20 {
        let name = format!("race{round}");
        let spawn = |tag: &str| {
            s.cmd(&["add", &name, "--no-test", "--", fixture(), tag])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("first"), spawn("second"));
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let ok: Vec<bool> = [&a, &b].iter().map(|o| o.status.success()).collect();
        assert_eq!(
            ok.iter().filter(|x| **x).count(),
            1,
            "round {round}: {}\n---\n{}",
            text(&a),
            text(&b)
        );
        let (winner, loser, tag) = if ok[0] {
            (&a, &b, "first")
        } else {
            (&b, &a, "second")
        };
        assert!(
            text(loser).contains(&format!("a server named \"{name}\" already exists")),
            "{}",
            text(loser)
        );
        let file = s.etc().join(format!("conf.d/{name}.json"));
        let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            written["mcpServers"][&name]["args"],
            json!([tag]),
            "{}",
            text(winner)
        );
        // One backup for the name, recording the file as absent: the loser
        // wrote nothing, so no backup claims a state that was not there.
        let backups: Vec<PathBuf> = std::fs::read_dir(s.etc().join("backup"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(&format!("-add-{name}")))
            .collect();
        assert_eq!(backups.len(), 1, "{backups:?}");
        let m: Value =
            serde_json::from_slice(&std::fs::read(backups[0].join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["files"], json!([{"path": file, "copy": null}]));
    }
}

#[test]
fn restore_refuses_planted_manifests_and_changes_nothing() {
    let s = Setup::new();
    // A real backup first (and the positive control: restoring it works).
    let (ok, out) = s.run(&["add", "fx", "--no-test", "--", fixture()]);
    assert!(ok, "{out}");
    let outside = s.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("victim.json"), "precious").unwrap();
    std::fs::write(outside.join("secret"), "{\"mcpServers\": {}}").unwrap();
    let conf_d = s.etc().join("conf.d");
    let victim = outside.join("victim.json");
    let cases: Vec<Planted> = vec![
        // Deleting a file outside the config.
        (
            "del-outside",
            json!([{"path": victim, "copy": null}]),
            vec![],
            format!(
                "it names {}, which is not the main config file",
                victim.display()
            ),
        ),
        // Writing a file outside the config.
        (
            "write-outside",
            json!([{"path": outside.join("new.json"), "copy": "0-new.json"}]),
            vec![("0-new.json", "{}")],
            "which is not the main config file".into(),
        ),
        // Escaping conf.d with "..".
        (
            "dotdot",
            json!([{"path": format!("{}/../../outside/victim.json", conf_d.display()), "copy": null}]),
            vec![],
            "which is not the main config file".into(),
        ),
        // A subdirectory of conf.d.
        (
            "subdir",
            json!([{"path": conf_d.join("sub/x.json"), "copy": null}]),
            vec![],
            "a *.json directly in".into(),
        ),
        // A hidden file in conf.d.
        (
            "hidden",
            json!([{"path": conf_d.join(".x.json"), "copy": "0-x"}]),
            vec![("0-x", "{}")],
            "which is not the main config file".into(),
        ),
        // Reading the copy from elsewhere.
        (
            "copy-path",
            json!([{"path": conf_d.join("a.json"), "copy": "../../../outside/secret"}]),
            vec![],
            "the copy \"../../../outside/secret\" is not a plain file name".into(),
        ),
        (
            "copy-abs",
            json!([{"path": conf_d.join("a.json"), "copy": outside.join("secret")}]),
            vec![],
            "is not a plain file name".into(),
        ),
    ];
    for (id, files, copies, _) in &cases {
        s.plant(id, files.clone(), copies);
    }
    // A copy that is a symlink to a file outside.
    let d = s.plant(
        "copy-link",
        json!([{"path": conf_d.join("a.json"), "copy": "0-a.json"}]),
        &[],
    );
    std::os::unix::fs::symlink(outside.join("secret"), d.join("0-a.json")).unwrap();
    // A manifest that is a symlink.
    let d = s.etc().join("backup/manifest-link");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(outside.join("m.json"), json!({"operation": "add", "server": "x", "created": "", "files": [{"path": conf_d.join("a.json"), "copy": null}]}).to_string()).unwrap();
    std::os::unix::fs::symlink(outside.join("m.json"), d.join("manifest.json")).unwrap();
    // A backup directory that is a symlink to one elsewhere.
    let elsewhere = outside.join("bk");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("manifest.json"), json!({"operation": "add", "server": "x", "created": "", "files": [{"path": conf_d.join("fx.json"), "copy": null}]}).to_string()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, s.etc().join("backup/dir-link")).unwrap();

    let mut all: Vec<(String, String)> = cases
        .iter()
        .map(|(id, _, _, says)| (id.to_string(), says.clone()))
        .collect();
    all.push((
        "copy-link".into(),
        "a symlink, which is not followed here".into(),
    ));
    all.push((
        "manifest-link".into(),
        "a symlink, which is not followed here".into(),
    ));
    all.push((
        "dir-link".into(),
        "a symlink; backups are not followed".into(),
    ));
    let before = s.tree();
    for (id, says) in &all {
        let (ok, out) = s.run(&["restore", id]);
        assert!(!ok, "{id}: {out}");
        assert!(
            out.contains("error:") && out.contains(says.as_str()),
            "{id}: {out}"
        );
        assert_eq!(s.tree(), before, "{id} changed files");
    }
    // The real backup still restores (undoing the add).
    let real = std::fs::read_dir(s.etc().join("backup"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with("-add-fx"))
        .unwrap();
    let (ok, out) = s.run(&["restore", &real]);
    assert!(ok, "{out}");
    assert!(!conf_d.join("fx.json").exists());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn headers_http_forbids_are_refused_by_add_and_by_check() {
    let s = Setup::new();
    let url = "http://127.0.0.1:1/sse";
    for (h, says) in [
        (
            "Host: evil.example",
            "--header \"Host: evil.example\": \"Host\" may not be set",
        ),
        ("X-A: v\r\nHost: evil", "no CR, LF"),
        ("X-A: v\nX-B: w", "no CR, LF"),
        ("X A: v", "is not a header name"),
        ("Transfer-Encoding: chunked", "may not be set"),
        ("Content-Length: 0", "may not be set"),
        ("Connection: close", "may not be set"),
    ] {
        let (ok, out) = s.run(&["add", "pg", "--no-test", "--url", url, "--header", h]);
        assert!(!ok && out.contains(says), "{h:?}: {out}");
        assert!(
            !s.etc().join("conf.d/pg.json").exists(),
            "{h:?} was written"
        );
    }
    let (ok, out) = s.run(&[
        "add",
        "pg",
        "--no-test",
        "--url",
        url,
        "--header",
        "Authorization: Bearer x",
    ]);
    assert!(ok, "{out}");

    // Written by hand: check names the file and the header's path.
    let dropin = s.etc().join("conf.d/pg.json");
    for (headers, env, says) in [
        (
            json!({"Host": "evil"}),
            None,
            "mcpServers.pg.headers[\"Host\"]: \"Host\" may not be set",
        ),
        (
            json!({"X-A": "a\r\nHost: b"}),
            None,
            "mcpServers.pg.headers[\"X-A\"]: the value of X-A is not a header value",
        ),
        (
            json!({"Keep-Alive": "1"}),
            None,
            "mcpServers.pg.headers[\"Keep-Alive\"]:",
        ),
        // A variable that expands to a line break.
        (
            json!({"X-A": "${EVIL}"}),
            Some("a\r\nHost: b"),
            "mcpServers.pg.headers[\"X-A\"]:",
        ),
    ] {
        std::fs::write(
            &dropin,
            json!({"mcpServers": {"pg": {"url": url, "headers": headers}}}).to_string(),
        )
        .unwrap();
        let mut c = s.cmd(&["check"]);
        if let Some(v) = env {
            c.env("EVIL", v);
        }
        let o = c.output().unwrap();
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(
            out.contains(&format!("{}: {says}", dropin.display())),
            "{out}"
        );
    }
}

#[test]
fn a_command_waits_for_the_config_lock_then_gives_up_naming_it() {
    use nix::fcntl::{Flock, FlockArg};
    let s = Setup::new();
    let lock_path = s.etc().join(".mcp-hub.lock");
    let hold = || {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&lock_path)
            .unwrap();
        Flock::lock(f, FlockArg::LockExclusive).unwrap()
    };
    // Released after 1.5 s: the command waits, then does its work.
    let held = hold();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
    });
    let t0 = Instant::now();
    let (ok, out) = s.run(&["add", "a", "--no-test", "--", fixture()]);
    let waited = t0.elapsed();
    release.join().unwrap();
    assert!(ok, "{out}");
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    // Never released: it gives up after 10 s, naming the lock, writing nothing.
    let _held = hold();
    let t0 = Instant::now();
    let (ok, out) = s.run(&["add", "b", "--no-test", "--", fixture()]);
    let waited = t0.elapsed();
    eprintln!("gave up after {waited:?}");
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "another mcp-hub command is changing the config (it holds {}); gave up after waiting 10s",
            lock_path.display()
        )),
        "{out}"
    );
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(12),
        "{waited:?}"
    );
    assert!(!s.etc().join("conf.d/b.json").exists());
}
