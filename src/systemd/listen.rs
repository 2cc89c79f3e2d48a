//! Where the hub listens: the sockets systemd passed (socket activation:
//! LISTEN_FDS, LISTEN_FDNAMES; TCP or Unix, any number), or else the configured
//! address. Activated sockets are taken in `main`, before the runtime starts,
//! because taking them clears LISTEN_* from the environment.

use std::net::SocketAddr;
use tokio::net::{TcpListener, UnixListener};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listen address {0}")]
    Addr(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("socket activation: fd {index} ({name}): {source}")]
    Activated {
        index: usize,
        name: String,
        source: std::io::Error,
    },
}

/// A listening socket of either kind.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a: SocketAddr| a.to_string())
                .unwrap_or_else(|_| "?".into()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix:?".into()),
        }
    }
}

/// The sockets systemd passed, as std listeners (the runtime does not exist yet),
/// with their LISTEN_FDNAMES names. Empty when the hub was not socket-activated.
pub struct Activated(Vec<(String, ActivatedSocket)>);

enum ActivatedSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Takes the activated sockets. Call once, in `main`, before any thread starts.
pub fn take_activated() -> Result<Activated, ListenError> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(String::from).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for index in 0..fds.len() {
        let name = names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("fd{}", index + 3));
        let err = |source| ListenError::Activated {
            index,
            name: name.clone(),
            source,
        };
        let socket = match fds.take_tcp_listener(index) {
            Ok(Some(l)) => ActivatedSocket::Tcp(l),
            Ok(None) => continue,
            Err(_) => match fds.take_unix_listener(index).map_err(err)? {
                Some(l) => ActivatedSocket::Unix(l),
                None => continue,
            },
        };
        out.push((name, socket));
    }
    Ok(Activated(out))
}

impl Activated {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands the sockets to tokio. Must run inside the runtime.
    pub fn into_listeners(self) -> Result<Vec<(String, Listener)>, ListenError> {
        self.0
            .into_iter()
            .enumerate()
            .map(|(index, (name, s))| {
                let err = |source| ListenError::Activated {
                    index,
                    name: name.clone(),
                    source,
                };
                let l = match s {
                    ActivatedSocket::Tcp(l) => {
                        l.set_nonblocking(true).map_err(err)?;
                        Listener::Tcp(TcpListener::from_std(l).map_err(err)?)
                    }
                    ActivatedSocket::Unix(l) => {
                        l.set_nonblocking(true).map_err(err)?;
                        Listener::Unix(UnixListener::from_std(l).map_err(err)?)
                    }
                };
                Ok((name, l))
            })
            .collect()
    }
}

/// Binds `addr` as written in the config or on the command line. `:PORT` binds
/// every address: IPv6 and IPv4 where the host has IPv6, else IPv4 only.
pub async fn bind(addr: &str) -> Result<Listener, ListenError> {
    let normalized = crate::config::parse_listen_addr(addr).map_err(ListenError::Addr)?;
    match TcpListener::bind(&normalized).await {
        Ok(l) => Ok(Listener::Tcp(l)),
        Err(e) if normalized.starts_with("[::]:") => {
            let v4 = normalized.replacen("[::]", "0.0.0.0", 1);
            tracing::debug!("IPv6 bind failed ({e}); trying {v4}");
            TcpListener::bind(&v4)
                .await
                .map(Listener::Tcp)
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
