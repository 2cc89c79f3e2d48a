//! Hostile input through the real binary, each test first making the attack
//! and then checking the hub held: a child writing a 10 MB or binary stderr
//! line, a client forging audit lines with a tool name, and remote servers
//! answering with 100 MB bodies and 64 MB SSE lines (served by small HTTP
//! servers in this file that misbehave on purpose).

mod common;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Waits until some log line contains `needle`.
async fn wait_for_log(hub: &Hub, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !hub.log_contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}; log:\n{}",
            tail(hub)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log, with long lines shortened, for failure messages.
fn tail(hub: &Hub) -> String {
    let logs = hub.logs.lock().unwrap();
    let shown = logs
        .iter()
        .rev()
        .take(60)
        .rev()
        .map(|l| l.chars().take(300).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n");
    format!("({} lines)\n{shown}", logs.len())
}

fn assert_no_raw_controls(hub: &Hub) {
    for line in hub.logs.lock().unwrap().iter() {
        let bad = line.chars().find(|c| c.is_control() && *c != '\t');
        assert!(
            bad.is_none(),
            "a raw {bad:?} reached the log: {:?}",
            line.chars().take(300).collect::<String>()
        );
    }
}

#[tokio::test]
async fn a_child_writing_a_huge_or_binary_stderr_line_keeps_serving() {
    let hub = Hub::start(json!({}), json!({"fx": fx(json!({"sandbox": false}))}));
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    let pid = c.call_text(1, "pid", json!({})).await;

    // One 10 MB line: cut at 64 KiB in the log, the rest counted and dropped.
    let r = c.call_text(2, "stderr", json!({"size": 10_000_000})).await;
    assert_eq!(r, "written");
    // Invalid UTF-8 (a stopped reader closed the pipe, and the child died on
    // its next write), a carriage return and ANSI colours.
    let bytes = b"bad \xff byte\r\x1b[31mFORGED\x1b[0m".to_vec();
    assert_eq!(
        c.call_text(3, "stderr", json!({"bytes": bytes})).await,
        "written"
    );
    let after = b"still read after the binary line".to_vec();
    assert_eq!(
        c.call_text(4, "stderr", json!({"bytes": after})).await,
        "written"
    );
    // A reader that stopped closes the pipe a moment later: write once more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = b"and read again".to_vec();
    let r = c.post(&call(5, "stderr", json!({"bytes": again}))).await;
    assert_eq!(
        r.last()["result"]["content"][0]["text"],
        "written",
        "the child died writing to its stderr: {}",
        r.last()
    );
    assert_eq!(
        c.call_text(6, "pid", json!({})).await,
        pid,
        "the child was restarted"
    );
    let st = hub.server_status("fx").await;
    assert_eq!(st["restarts"], 0, "{st}");
    assert_eq!(st["pid"].to_string(), pid, "{st}");

    wait_for_log(&hub, "and read again").await;
    assert!(hub.log_contains("still read after the binary line"));
    let cut = STDERR_LINE_CUT;
    let dropped = 10_000_000 - cut;
    {
        let logs = hub.logs.lock().unwrap();
        let longest = logs.iter().map(|l| l.len()).max().unwrap();
        assert!(longest < cut + 1024, "a log line of {longest} bytes");
        let line = logs
            .iter()
            .find(|l| l.contains(&"x".repeat(1000)))
            .expect("the long line, cut");
        assert!(line.contains(&"x".repeat(cut)), "cut at {cut} bytes");
        assert!(!line.contains(&"x".repeat(cut + 1)));
        assert!(
            line.contains(&format!("{dropped} more bytes dropped")),
            "the drop is noted: {:?}",
            &line[line.len() - 200..]
        );
        assert!(
            logs.iter()
                .any(|l| l.contains("bad \u{fffd} byte\\r\\u{1b}[31mFORGED\\u{1b}[0m")),
            "the binary line, decoded lossily and escaped:\n{}",
            tail(&hub)
        );
    }
    assert_no_raw_controls(&hub);
}

/// How much of a stderr line the hub logs (64 KiB).
const STDERR_LINE_CUT: usize = 64 * 1024;

#[tokio::test]
async fn a_tool_name_with_a_newline_cannot_forge_audit_lines() {
    let hub = Hub::start(
        json!({"options": {"logEnabled": true}}),
        json!({"fx": fx(json!({}))}),
    );
    let mut c = Mcp::new(&hub, "fx");
    c.initialize().await;
    // A whole audit line in the stderr format after a newline, then a carriage
    // return and an erase-line escape to hide the real line on a terminal.
    let forged = "2031-01-01T00:00:00.000000Z  INFO mcp_hub::audit: tools/call rm_rf: ok in 1 ms (token mcpProxy.options.authTokens[0])";
    let name = format!("echo\n{forged}\r\x1b[2K");
    let r = c.post(&call(1, &name, json!({}))).await;
    assert_eq!(r.last()["id"], 1);
    wait_for_log(&hub, "rm_rf").await;
    let logs = hub.logs.lock().unwrap().clone();
    let with_name: Vec<&String> = logs.iter().filter(|l| l.contains("rm_rf")).collect();
    for line in &with_name {
        assert!(!line.starts_with("2031-"), "a forged line: {line}");
    }
    let audit = with_name
        .iter()
        .find(|l| l.contains("mcp_hub::audit"))
        .unwrap_or_else(|| panic!("no audit line: {with_name:?}"));
    assert!(
        audit.contains("tools/call \"echo\\n2031-01-01T00:00:00.000000Z  INFO mcp_hub::audit: tools/call rm_rf"),
        "the tool name is quoted and escaped: {audit}"
    );
    assert!(audit.contains("mcp_tool=echo\\n2031-"), "{audit}");
    drop(logs);
    assert_no_raw_controls(&hub);
}

// ---------------------------------------------------------------------------
// Remote servers that answer too much.

/// One HTTP/1.1 request as a test server reads it.
struct Request {
    method: String,
    path: String,
    body: Value,
}

async fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).await.ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Request { method, path, body })
}

fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// What a well-behaved server answers, or `None` for a message that needs none.
fn ordinary(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str()? {
        "initialize" => json!({"protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "hostile", "version": "1"}}),
        "tools/call" => {
            json!({"content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}]})
        }
        _ => json!({}),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// A JSON-RPC response to `id` whose text is `size` bytes of `x`, as the
/// pieces to write (so the server never holds two copies).
fn huge_answer(id: &Value, size: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let head =
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":""#);
    (head.into_bytes(), vec![b'x'; size], br#""}]}}"#.to_vec())
}

const MB: usize = 1_000_000;

/// A streamable-HTTP server whose `tools/call` of `big_json` answers 100 MB
/// with a declared length, `big_stream` 100 MB without one (read to the
/// close), and `big_sse` a 64 MB SSE line; anything else it answers normally.
async fn oversized_streamable_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                while let Some(req) = read_request(&mut r).await {
                    let w = r.get_mut();
                    if req.method != "POST" {
                        let status = if req.method == "GET" {
                            "405 Method Not Allowed"
                        } else {
                            "200 OK"
                        };
                        let _ = w.write_all(&answer(status, "", b"")).await;
                        continue;
                    }
                    let tool = req.body["params"]["name"].as_str().unwrap_or("");
                    let id = &req.body["id"];
                    let (head, filler, tail) = match tool {
                        "big_json" | "big_stream" => huge_answer(id, 100 * MB),
                        "big_sse" => huge_answer(id, 64 * MB),
                        _ => {
                            let out = match ordinary(&req.body) {
                                Some(v) => answer(
                                    "200 OK",
                                    "content-type: application/json\r\nmcp-session-id: s1\r\n",
                                    &serde_json::to_vec(&v).unwrap(),
                                ),
                                None => answer("202 Accepted", "", b""),
                            };
                            let _ = w.write_all(&out).await;
                            continue;
                        }
                    };
                    let total = head.len() + filler.len() + tail.len();
                    let headers = match tool {
                        "big_json" => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n"
                        ),
                        "big_stream" => "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".into(),
                        _ => "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: ".into(),
                    };
                    let _ = w.write_all(headers.as_bytes()).await;
                    let _ = w.write_all(&head).await;
                    for piece in filler.chunks(MB) {
                        if w.write_all(piece).await.is_err() {
                            break;
                        }
                    }
                    let _ = w.write_all(&tail).await;
                    let _ = w.write_all(b"\n\n").await;
                    return;
                }
            });
        }
    });
    format!("http://{addr}/mcp")
}

/// The peak resident memory of a process, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn error_message(r: &Reply) -> String {
    r.last()["error"]["message"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "an error, not {}",
                r.last().to_string().chars().take(300).collect::<String>()
            )
        })
        .to_string()
}

#[tokio::test]
async fn a_100mb_remote_response_is_refused_in_bounded_memory() {
    let url = oversized_streamable_server().await;
    let hub = Hub::start(
        json!({}),
        json!({"big": {"url": url, "type": "http", "timeout": "60s"}}),
    );
    let mut c = Mcp::new(&hub, "big");
    c.initialize().await;
    for (id, tool) in [(1u64, "big_json"), (2, "big_stream"), (3, "big_sse")] {
        let r = c.post(&call(id, tool, json!({}))).await;
        assert_eq!(r.last()["id"], id, "{tool}");
        let msg = error_message(&r);
        assert!(
            msg.contains("maxResponseSize (4.0 MiB)")
                && msg.contains("mcpServers.big.maxResponseSize"),
            "{tool}: {msg}"
        );
        // The connection is not broken: the next call is answered.
        assert_eq!(
            c.call_text(10 + id, "echo", json!({"text": tool})).await,
            tool
        );
    }
    let peak = peak_rss(hub.child.id());
    eprintln!(
        "hub peak RSS after 100 MB + 100 MB + 64 MB answers: {} MiB",
        peak >> 20
    );
    assert!(peak < 48 << 20, "the hub's peak RSS was {} MiB", peak >> 20);
    let st = hub.server_status("big").await;
    assert_eq!(st["restarts"], 0, "{st}");
    assert!(hub.log_contains("larger than its maxResponseSize"));
}

/// A legacy SSE server: one stream, answers posted to it; `big_sse` is
/// answered with a 64 MB SSE line. Counts the streams opened.
async fn oversized_sse_server(streams: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stream: Arc<Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>> = Arc::default();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let (stream, streams) = (stream.clone(), streams.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                while let Some(req) = read_request(&mut r).await {
                    let w = r.get_mut();
                    if req.method == "GET" && req.path == "/sse" {
                        streams.fetch_add(1, Ordering::SeqCst);
                        let (tx, mut rx) = mpsc::unbounded_channel();
                        *stream.lock().unwrap() = Some(tx);
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nevent: endpoint\ndata: /message\n\n";
                        let _ = w.write_all(head.as_bytes()).await;
                        while let Some(bytes) = rx.recv().await {
                            if w.write_all(&bytes).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    let _ = w.write_all(&answer("202 Accepted", "", b"")).await;
                    let Some(tx) = stream.lock().unwrap().clone() else {
                        continue;
                    };
                    if req.body["params"]["name"] == "big_sse" {
                        let (head, filler, tail) = huge_answer(&req.body["id"], 64 * MB);
                        let _ = tx.send([b"data: ", &head[..]].concat());
                        for piece in filler.chunks(MB) {
                            let _ = tx.send(piece.to_vec());
                        }
                        let _ = tx.send([&tail[..], b"\n\n"].concat());
                    } else if let Some(v) = ordinary(&req.body) {
                        let _ = tx.send(format!("event: message\ndata: {v}\n\n").into_bytes());
                    }
                }
            });
        }
    });
    format!("http://{addr}/sse")
}

/// The CPU time a process has used (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[tokio::test]
async fn a_64mb_sse_line_is_refused_in_linear_time_and_the_stream_kept() {
    let streams = Arc::new(AtomicUsize::new(0));
    let url = oversized_sse_server(streams.clone()).await;
    let hub = Hub::start(
        json!({}),
        json!({"legacy": {"url": url, "timeout": "120s"}}),
    );
    let mut c = Mcp::new(&hub, "legacy");
    c.initialize().await;
    assert_eq!(
        c.call_text(1, "echo", json!({"text": "before"})).await,
        "before"
    );
    let (cpu, started) = (cpu_time(hub.child.id()), Instant::now());
    let r = c.post(&call(2, "big_sse", json!({}))).await;
    assert_eq!(r.last()["id"], 2);
    let msg = error_message(&r);
    assert!(msg.contains("maxResponseSize (4.0 MiB)"), "{msg}");
    // The rest of the line was skipped, not the stream: the same stream
    // carries the next answer, once the hub has read past the 64 MB.
    assert_eq!(
        c.call_text(3, "echo", json!({"text": "after"})).await,
        "after"
    );
    let (cpu, took) = (cpu_time(hub.child.id()) - cpu, started.elapsed());
    eprintln!("a 64 MB SSE line: refused and skipped in {took:?}, {cpu:?} of the hub's CPU");
    // Rescanning the buffer for every chunk took 13 s of CPU for 64 MB in a
    // release build; a linear skip takes about a second in a debug build.
    assert!(
        cpu < Duration::from_secs(10),
        "{cpu:?} of CPU for one 64 MB line"
    );
    assert_eq!(
        streams.load(Ordering::SeqCst),
        1,
        "the SSE stream was reopened"
    );
    let st = hub.server_status("legacy").await;
    assert_eq!(st["restarts"], 0, "{st}");
    let peak = peak_rss(hub.child.id());
    assert!(peak < 48 << 20, "the hub's peak RSS was {} MiB", peak >> 20);
}
