//! systemd integration: sockets passed by socket activation (`listen`), and
//! state reports to the service manager (`notify`). Both read their environment
//! in `main`, before the runtime and its threads exist.

pub mod listen;
pub mod notify;
