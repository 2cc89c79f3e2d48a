//! Aggregated groups of servers (being built).
