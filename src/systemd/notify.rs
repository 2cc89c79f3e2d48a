//! Reports to the service manager over NOTIFY_SOCKET (sd_notify): READY=1 once
//! listeners and config are up, STATUS= with a one-line summary, RELOADING=1
//! (with MONOTONIC_USEC) then READY=1 around a reload, STOPPING=1 on shutdown,
//! and watchdog pings. Without NOTIFY_SOCKET every call is a no-op.
//!
//! Watchdog: enabled when WATCHDOG_USEC is set and WATCHDOG_PID is either ours
//! or absent. A missing WATCHDOG_PID is taken as ours, as libsystemd does: a
//! wrapper (or a test) that sets only WATCHDOG_USEC still gets pings. Pings go
//! out at half the interval, and only after a round trip through the runtime
//! and the hub's registry succeeds, so a wedged hub stops pinging and systemd
//! restarts it.

use crate::hub::Hub;
use sd_notify::NotifyState;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The notify socket, opened once at start: at the open-file limit (a
/// connection flood) a socket opened per message would fail, and with it the
/// watchdog ping that keeps the service alive.
static SOCKET: OnceLock<Option<(UnixDatagram, SocketAddr)>> = OnceLock::new();

/// Opens the notify socket now, while descriptors are plenty.
pub fn init() {
    SOCKET.get_or_init(open);
}

fn open() -> Option<(UnixDatagram, SocketAddr)> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name).ok()?,
        None => SocketAddr::from_pathname(&path).ok()?,
    };
    Some((UnixDatagram::unbound().ok()?, addr))
}

fn send(states: &[NotifyState]) {
    if let Some(Some((sock, addr))) = SOCKET.get() {
        let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
        match sock.send_to_addr(msg.as_bytes(), addr) {
            Ok(_) => return,
            Err(e) => tracing::debug!("sd_notify on the opened socket failed: {e}"),
        }
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// RELOADING=1 with MONOTONIC_USEC, which systemd 253+ requires and older ones ignore.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the config"),
        ]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The watchdog interval systemd expects pings within, if it watches us.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// One line for `systemctl status`: servers by state, and sessions.
pub fn summary(hub: &Hub) -> String {
    let (sessions, by_state) = hub.counts();
    let servers: usize = by_state.values().sum();
    let states: Vec<String> = by_state.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!(
        "{servers} server(s): {}; {sessions} session(s)",
        states.join(", ")
    )
}

/// Pings the watchdog and refreshes STATUS= until the process ends.
pub fn spawn_watchdog(hub: Arc<Hub>, every: Option<Duration>) {
    let period = every.map(|d| d / 2).unwrap_or(Duration::from_secs(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            // Proves the scheduler runs tasks and the registry is not deadlocked.
            let probe = hub.clone();
            let Ok(line) = tokio::spawn(async move { summary(&probe) }).await else {
                continue;
            };
            if every.is_some() {
                send(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
            } else {
                status(&line);
            }
        }
    });
}
