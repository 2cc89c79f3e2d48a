//! mcp-hub as a library: every module of the hub, so the routing core, the
//! lifecycle and the reload diff can be built and tested in-process. The
//! binary (`main.rs`) only dispatches, builds the runtime and handles signals.

// Unsafe code is denied everywhere; only the sandbox helper (`sandbox::exec`)
// and the systemd glue allow it, for the system calls no safe wrapper covers,
// each with a SAFETY note.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod hub;
pub mod jsonrpc;
pub mod limits;
pub mod logsafe;
pub mod mcp;
pub mod metrics;
pub mod offload;
pub mod oidc;
pub mod ratelimit;
pub mod sandbox;
pub mod session;
pub mod supervisor;
pub mod systemd;
pub mod transport;
pub mod upstream;
pub mod views;
