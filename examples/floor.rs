//! The benchmark's floor: the least any HTTP→stdio MCP proxy must do. A hyper 1
//! HTTP/1 server that writes each POST body as one line to a single child's
//! stdin and answers the POST with the child's line that carries the same id.
//! No auth, no sessions, no id rewriting, no copies beyond reading the id:
//! `loadgen` compares the hub against this, so the ratio is the hub's own cost
//! on this machine. Ids must therefore be unique across all connections.
//!
//!     floor --fixture target/release/mcp-fixture [--listen 127.0.0.1:0] [--fixture-perf FILE]
//!
//! `--fixture-perf FILE` starts the child under `perf stat -I 100 -x, -e
//! raw_syscalls:sys_enter -o FILE`, so that `loadgen` can tell the floor's own
//! system calls from the child's (it runs the floor itself under another).
//!
//! Prints `listening on ADDR` on stderr once it accepts connections.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Requests waiting for their answer, by the id's JSON text.
type Waiters = Arc<Mutex<HashMap<Box<str>, oneshot::Sender<Bytes>>>>;

/// Only the id is read; serde skips the rest of the message.
#[derive(Deserialize)]
struct Envelope {
    id: Option<serde_json::Value>,
}

fn id_of(line: &[u8]) -> Option<Box<str>> {
    let e: Envelope = serde_json::from_slice(line).ok()?;
    e.id.map(|id| id.to_string().into())
}

struct Floor {
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    waiters: Waiters,
    _child: tokio::process::Child,
}

impl Floor {
    /// Starts the child, its stdin writer and its stdout reader.
    fn start(fixture: &str, perf: Option<&str>) -> Floor {
        let mut cmd = match perf {
            Some(file) => {
                let mut c = tokio::process::Command::new("perf");
                c.args(["stat", "-I", "100", "-x,", "-o", file]).args([
                    "-e",
                    "raw_syscalls:sys_enter",
                    "--",
                    fixture,
                ]);
                c
            }
            None => tokio::process::Command::new(fixture),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {fixture}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).split(b'\n');
            while let Ok(Some(line)) = lines.next_segment().await {
                let Some(id) = id_of(&line) else { continue };
                if let Some(tx) = w.lock().unwrap().remove(&id) {
                    let _ = tx.send(Bytes::from(line));
                }
            }
        });
        Floor {
            stdin: tokio::sync::Mutex::new(stdin),
            waiters,
            _child: child,
        }
    }

    async fn forward(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let Ok(body) = req.into_body().collect().await else {
            return status(StatusCode::BAD_REQUEST);
        };
        let body = body.to_bytes();
        let id = id_of(&body);
        let rx = id.map(|id| {
            let (tx, rx) = oneshot::channel();
            self.waiters.lock().unwrap().insert(id, tx);
            rx
        });
        let mut line = Vec::with_capacity(body.len() + 1);
        line.extend_from_slice(&body);
        line.push(b'\n');
        // One write per message; the lock keeps concurrent lines whole.
        if self.stdin.lock().await.write_all(&line).await.is_err() {
            return status(StatusCode::BAD_GATEWAY);
        }
        let Some(rx) = rx else {
            return status(StatusCode::ACCEPTED);
        };
        match rx.await {
            Ok(answer) => {
                let mut r = Response::new(Full::new(answer));
                r.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                r
            }
            Err(_) => status(StatusCode::BAD_GATEWAY),
        }
    }
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = s;
    r
}

#[tokio::main]
async fn main() {
    let mut fixture = "target/release/mcp-fixture".to_string();
    let mut listen = "127.0.0.1:0".to_string();
    let mut perf = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.chunks(2) {
        match (w[0].as_str(), w.get(1)) {
            ("--fixture", Some(v)) => fixture = v.clone(),
            ("--listen", Some(v)) => listen = v.clone(),
            ("--fixture-perf", Some(v)) => perf = Some(v.clone()),
            _ => panic!("usage: floor [--fixture PATH] [--listen ADDR] [--fixture-perf FILE]"),
        }
    }
    let floor = Arc::new(Floor::start(&fixture, perf.as_deref()));
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
    eprintln!("floor listening on {}", listener.local_addr().unwrap());
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let floor = floor.clone();
        let svc = hyper::service::service_fn(move |req| {
            let floor = floor.clone();
            async move { Ok::<_, Infallible>(floor.forward(req).await) }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc),
        );
    }
}
