//! systemd integration: sockets passed by socket activation (`listen`), state
//! reports to the service manager (`notify`), and the journal (`journal`,
//! with `logwriter` batching the lines on stderr). Both read their
//! environment in `main`, before the runtime and its threads exist.

pub mod journal;
pub mod listen;
pub mod logwriter;
pub mod notify;
pub mod pidfile;
