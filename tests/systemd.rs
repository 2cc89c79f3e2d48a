//! systemd integration on the host: socket activation through
//! `systemd-socket-activate` (one socket; a TCP and a Unix socket), and the
//! sd_notify protocol read off a datagram NOTIFY_SOCKET.

mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Activator(Child);

impl Drop for Activator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn activate(
    listen: &[String],
    names: &str,
    config: &std::path::Path,
    log: &std::path::Path,
) -> Activator {
    let mut cmd = Command::new("systemd-socket-activate");
    for l in listen {
        cmd.args(["-l", l]);
    }
    cmd.arg(format!("--fdname={names}"))
        .args([
            "-E",
            "MCP_HUB_LOG=info",
            hub_bin(),
            "--config",
            config.to_str().unwrap(),
            "serve",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    let child = cmd
        .spawn()
        .expect("systemd-socket-activate (package systemd) is installed");
    Activator(child)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config.json");
    let cfg = json!({"mcpProxy": {"addr": "127.0.0.1:1", "options": {"authTokens": [TOKEN]}}, "mcpServers": {"fx": fx(json!({}))}});
    std::fs::write(&path, cfg.to_string()).unwrap();
    path
}

#[tokio::test]
async fn socket_activation_with_one_socket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let log = dir.path().join("hub.log");
    let port = free_port();
    let _a = activate(&[format!("127.0.0.1:{port}")], "http", &cfg, &log);
    wait_for("the activator to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // The first connection starts the hub, which takes the socket over; the
    // configured addr (port 1) is never bound.
    let mut c = Mcp::at(&format!("http://127.0.0.1:{port}"), "fx");
    c.initialize().await;
    assert_eq!(
        c.call_text(1, "echo", json!({"text": "activated"})).await,
        "activated"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!(
            "listening on 127.0.0.1:{port} (socket-activated: http)"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn socket_activation_with_tcp_and_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let log = dir.path().join("hub.log");
    let port = free_port();
    let sock = dir.path().join("hub.sock");
    let _a = activate(
        &[sock.display().to_string(), format!("127.0.0.1:{port}")],
        "unix:tcp",
        &cfg,
        &log,
    );
    wait_for("the activator to listen", || {
        UnixStream::connect(&sock).is_ok()
    });
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("\"status\":\"ok\""),
        "{out}"
    );
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("unix:{} (socket-activated: unix)", sock.display())),
        "{text}"
    );
    assert!(text.contains("(socket-activated: tcp)"), "{text}");
}

fn collect(sock: &UnixDatagram, until: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = msg.lines().any(|l| l == until);
            got.push(msg);
            if done {
                break;
            }
        }
    }
    got
}

#[tokio::test]
async fn notify_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut hub = Hub::start_env(
        json!({}),
        json!({"fx": fx(json!({"start": "eager"}))}),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let got = collect(&sock, "READY=1", Duration::from_secs(10));
    let ready = got
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .expect("READY=1");
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=1 server(s)")),
        "{ready}"
    );
    // Watchdog pings at half the interval, with a fresh STATUS= line.
    let got = collect(&sock, "WATCHDOG=1", Duration::from_secs(3));
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "WATCHDOG=1")),
        "{got:?}"
    );
    let got = collect(&sock, "WATCHDOG=1", Duration::from_secs(3));
    let last = got.last().unwrap();
    assert!(
        last.contains("STATUS=1 server(s): 1 ready; 0 session(s)"),
        "{last}"
    );
    hub.terminate();
    let got = collect(&sock, "STOPPING=1", Duration::from_secs(5));
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{got:?}"
    );
}

#[tokio::test]
async fn no_watchdog_pings_for_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let _hub = Hub::start_env(
        json!({}),
        json!({}),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let got = collect(&sock, "READY=1", Duration::from_secs(10));
    assert!(got.iter().any(|m| m.contains("READY=1")));
    let got = collect(&sock, "WATCHDOG=1", Duration::from_secs(1));
    assert!(
        !got.iter().any(|m| m.contains("WATCHDOG=1")),
        "WATCHDOG_PID names another process: {got:?}"
    );
}
