//! The hub as an MCP client: connections to upstream servers. Each kind yields a
//! pair of message channels, so the session layer does not care what is behind it.
//! Remote kinds (SSE, streamable HTTP) join `stdio` here.

pub mod stdio;
