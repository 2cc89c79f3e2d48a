//! What the hub serves besides plain MCP on `/<name>/…`: views that are built
//! from the same session layer as the MCP routes, so they share its routing,
//! limits, auth and audit.
//!
//! - `openapi`: an OpenAPI 3.1 facade per server (`/<name>/openapi.json`, one
//!   `POST` operation per tool), for Open WebUI's tool servers in place of MCPO.
//! - `group`: one MCP endpoint over several servers (`/g/<group>/…`), with
//!   tool and prompt names prefixed by their server.

pub mod group;
pub mod openapi;
