//! Starting a release hub for the benchmarks: writes the config, starts the
//! hub on a free loopback port (optionally under `perf stat`, see
//! `probe.rs`) and returns it with its pid and address.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process this program started, stopped however the program ends: SIGTERM
/// to `pid` (the process itself, under its `perf stat` wrapper if any), then
/// SIGKILL to both if it has not ended within 3 s.
#[allow(dead_code)]
pub struct Reap {
    pub child: Child,
    pub pid: u32,
}

impl Drop for Reap {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(dead_code)]
/// Reads `child`'s stderr up to "listening on ADDR", then drains the rest.
pub fn listening(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("listening output").unwrap();
        if let Some(rest) = l.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    addr
}

/// Writes the config and starts the hub (the caller stops it).
#[allow(dead_code)] // not every example that shares this file uses each part
pub fn start(hub: &str, cfg: &serde_json::Value, dir: &Path) -> (Child, String) {
    let (child, _, addr) = start_under(hub, cfg, dir, None);
    (child, addr)
}

/// Like `start`; with `perf`, the hub runs under these `perf stat` arguments.
/// Returns the hub's own pid either way.
#[allow(dead_code)]
pub fn start_under(
    hub: &str,
    cfg: &serde_json::Value,
    dir: &Path,
    perf: Option<Vec<String>>,
) -> (Child, u32, String) {
    let path = dir.join("bench.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let hub_args = [
        hub,
        "--config",
        path.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ];
    let mut cmd = match &perf {
        Some(p) => {
            let mut c = Command::new("perf");
            c.args(p).args(hub_args);
            c
        }
        None => {
            let mut c = Command::new(hub);
            c.args(&hub_args[1..]);
            c
        }
    };
    let mut child = cmd
        .env("MCP_HUB_LOG", "warn,mcp_hub=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the hub (build it with cargo build --release)");
    let pid = match perf {
        Some(_) => child_of(child.id()),
        None => child.id(),
    };
    let addr = listening(&mut child);
    (child, pid, addr)
}

/// The first child of `pid` (a `perf stat` wrapper's command), waiting for it.
#[allow(dead_code)]
pub fn child_of(pid: u32) -> u32 {
    for _ in 0..200 {
        let kids =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next().and_then(|k| k.parse().ok()) {
            return k;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no child of {pid}");
}
