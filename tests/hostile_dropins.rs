//! Hostile entries in `conf.d` (someone who can write the directory): a FIFO
//! and a symlink to `/dev/zero` named like drop-ins, and an oversized file. A
//! SIGHUP must neither wedge nor bloat the hub: the reload is refused naming
//! the file, the running config keeps serving, and SIGTERM still ends the hub
//! within its shutdownTimeout. `mcp-hub check` names the file too.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn hup(hub: &Hub) {
    let pid = nix::unistd::Pid::from_raw(hub.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
}

/// Waits (at most 5 s) for the `nth` log line holding every needle.
fn wait_log(hub: &Hub, needles: &[&str], nth: usize) -> Duration {
    let t0 = Instant::now();
    while hub.log_lines_with(needles).len() < nth {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no log line with {needles:?}; log:\n{}",
            hub.logs.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// `mcp-hub check` on a config: (ok, stderr, how long it took).
fn check(config: &Path) -> (bool, String, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(hub_bin())
        .args(["check", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A check that hangs on the FIFO must fail the test, not hang it.
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("mcp-hub check hung for 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
        t0.elapsed(),
    )
}

async fn still_serves(hub: &Hub) {
    let mut m = Mcp::new(hub, "fx");
    m.initialize().await;
    assert_eq!(m.call_text(1, "echo", json!({"text": "ok"})).await, "ok");
}

#[tokio::test]
async fn a_fifo_or_dev_zero_in_conf_d_is_refused_and_sigterm_still_ends_the_hub() {
    let mut hub = Hub::start(
        json!({"options": {"shutdownTimeout": "2s"}}),
        json!({"fx": fx(json!({}))}),
    );
    still_serves(&hub).await;
    let before = hub.peak_kib();
    let conf_d = hub.config_path.parent().unwrap().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    let zz = conf_d.join("zz.json");
    let zz_s = zz.display().to_string();

    let plant = |what: &str| {
        let _ = std::fs::remove_file(&zz);
        match what {
            "fifo" => {
                nix::unistd::mkfifo(&zz, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap()
            }
            "zero" => std::os::unix::fs::symlink("/dev/zero", &zz).unwrap(),
            _ => std::fs::write(&zz, vec![b' '; 2 << 20]).unwrap(),
        }
    };
    for (n, (what, says)) in [
        ("fifo", "a FIFO, not a regular file"),
        ("zero", "a character device, not a regular file"),
        ("big", "larger than 1024 KiB, the limit for a config file"),
    ]
    .into_iter()
    .enumerate()
    {
        plant(what);
        hup(&hub);
        let took = wait_log(&hub, &["reload failed", &zz_s, says], 1);
        assert_eq!(hub.log_lines_with(&["reload failed"]).len(), n + 1);
        eprintln!("{what}: refused {took:?} after SIGHUP");
        still_serves(&hub).await;
        let (ok, err, took) = check(&hub.config_path);
        assert!(!ok && err.contains(&zz_s) && err.contains(says), "{err}");
        assert!(took < Duration::from_secs(5), "check took {took:?}");
    }
    let grew = hub.peak_kib().saturating_sub(before);
    eprintln!("peak RSS grew by {grew} KiB over the three refused reloads");
    assert!(grew < 32 * 1024, "peak RSS grew by {grew} KiB");

    // The reloader is still there: a good drop-in is picked up.
    std::fs::remove_file(&zz).unwrap();
    std::fs::write(
        conf_d.join("b.json"),
        serde_json::to_vec(&json!({"mcpServers": {"b": fx(json!({}))}})).unwrap(),
    )
    .unwrap();
    hup(&hub);
    wait_log(&hub, &["reloaded", "added"], 1);
    let s = hub.status().await;
    assert!(
        s["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "b"),
        "{s}"
    );

    // A burst of SIGHUPs with a FIFO planted, then SIGTERM: the hub exits
    // within its shutdownTimeout (2 s) plus scheduling slack.
    plant("fifo");
    for _ in 0..50 {
        hup(&hub);
    }
    let t0 = Instant::now();
    let status = hub.terminate();
    let took = t0.elapsed();
    eprintln!("exited {took:?} after SIGTERM, amid 50 SIGHUPs");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    // The burst was coalesced: far fewer reloads than signals.
    let reloads = hub.log_lines_with(&["reload failed", &zz_s]).len();
    assert!(reloads < 50, "{reloads} reloads for 50 SIGHUPs");
}

#[test]
fn check_names_a_dangling_or_directory_dropin() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.json");
    std::fs::write(&cfg, "{}").unwrap();
    let conf_d = d.path().join("conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::create_dir(conf_d.join("dir.json")).unwrap();
    let (ok, err, _) = check(&cfg);
    assert!(
        !ok && err.contains(&format!(
            "{}: cannot read: a directory",
            conf_d.join("dir.json").display()
        )),
        "{err}"
    );
    std::fs::remove_dir(conf_d.join("dir.json")).unwrap();
    // A symlink to a regular file is a drop-in like any other.
    let real = d.path().join("elsewhere.json");
    std::fs::write(
        &real,
        serde_json::to_vec(&json!({"mcpServers": {"l": fx(json!({}))}})).unwrap(),
    )
    .unwrap();
    std::os::unix::fs::symlink(&real, conf_d.join("l.json")).unwrap();
    let (ok, err, _) = check(&cfg);
    assert!(ok, "{err}");
}
