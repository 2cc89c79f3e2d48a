//! The OpenAPI facade of one server (being built).
