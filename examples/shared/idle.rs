//! loadgen's idle sessions: N legacy SSE streams, or N streamable sessions
//! each holding its GET stream open, to weigh what an idle session costs.

use super::client::Conn;
use super::TOKEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a raw GET and returns the connection once the response head arrived.
async fn hold_get(
    addr: &str,
    path: &str,
    session: Option<&str>,
    until: &str,
) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n{session}\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(until) {
        let k = tcp.read(&mut buf).await.unwrap();
        assert!(k > 0, "GET {path}: stream closed");
        got.extend_from_slice(&buf[..k]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&got)
    );
    tcp
}

pub async fn idle_sse(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(hold_get(addr, "/bench/sse", None, "event: endpoint").await);
    }
    held
}

pub async fn idlestreamable(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    let mut c = Conn::open(addr, "/bench/mcp").await;
    for _ in 0..n {
        c.session = None;
        c.initialize().await;
        held.push(hold_get(addr, "/bench/mcp", c.session.as_deref(), "\r\n\r\n").await);
    }
    held
}
