//! Where the hub listens. Today: bind the configured address. Socket activation
//! (LISTEN_FDS) plugs in here, ahead of the bind.

use std::net::SocketAddr;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listen address {0}")]
    Addr(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Binds `addr` as written in the config or on the command line. `:PORT` binds
/// every address: IPv6 and IPv4 where the host has IPv6, else IPv4 only.
pub async fn bind(addr: &str) -> Result<TcpListener, ListenError> {
    let normalized = crate::config::parse_listen_addr(addr).map_err(ListenError::Addr)?;
    match TcpListener::bind(&normalized).await {
        Ok(l) => Ok(l),
        Err(e) if normalized.starts_with("[::]:") => {
            let v4 = normalized.replacen("[::]", "0.0.0.0", 1);
            tracing::debug!("IPv6 bind failed ({e}); trying {v4}");
            TcpListener::bind(&v4)
                .await
                .map_err(|source| ListenError::Bind { addr: v4, source })
        }
        Err(source) => Err(ListenError::Bind {
            addr: normalized,
            source,
        }),
    }
}

/// Raises the soft open-file limit to the hard one: every SSE client holds a
/// socket, and the default soft limit of 1024 is far below what a hub serves.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            tracing::debug!("raised the open-file limit from {soft} to {hard}");
        }
    }
}

pub fn describe(l: &TcpListener) -> String {
    l.local_addr()
        .map(|a: SocketAddr| a.to_string())
        .unwrap_or_else(|_| "?".into())
}
