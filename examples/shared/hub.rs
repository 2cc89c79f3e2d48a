//! Starting a release hub for the benchmarks: writes the config, starts the
//! hub on a free loopback port and returns it with its address.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub fn start(hub: &str, cfg: &serde_json::Value, dir: &Path) -> (Child, String) {
    let path = dir.join("bench.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let mut child = Command::new(hub)
        .args([
            "--config",
            path.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("MCP_HUB_LOG", "warn,mcp_hub=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the hub (build it with cargo build --release)");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("hub output").unwrap();
        if let Some(rest) = l.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}
