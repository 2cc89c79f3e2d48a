//! `"browser": true`: what a Chromium-based server (e.g. `@playwright/mcp` with
//! Debian's `chromium`) needs beyond the default profile.
//!
//! - Debian's `/usr/bin/chromium` wrapper sources `/etc/chromium.d/*` and
//!   fails without it; `/etc/chromium` holds its default preferences.
//! - Without `/etc/fonts` (and fontconfig's cache) pages render in fallback
//!   fonts; the fonts themselves are under `/usr/share/fonts`, which the
//!   default profile shows already.
//! - `/dev/shm` is a private tmpfs with the kernel's default size (half of the
//!   RAM), not Docker's 64 MiB that makes Chromium crash.
//! - Chromium's own sandbox needs user namespaces, which our seccomp filter
//!   denies inside the sandbox, so Chromium must run with `--no-sandbox`: ours
//!   then takes its place, around the whole browser rather than each renderer.
//!   `@playwright/mcp` is told so through its environment ([`ENV`]); other
//!   Chromium-based servers take their own `--no-sandbox` option.

use std::path::PathBuf;

/// Read-only binds, where they exist on the host.
const READ: &[&str] = &[
    "/etc/chromium.d",
    "/etc/chromium",
    "/etc/fonts",
    "/var/cache/fontconfig",
];

/// Environment defaults (the server's configured `env` wins).
pub const ENV: &[(&str, &str)] = &[("PLAYWRIGHT_MCP_SANDBOX", "false")];

/// The host paths a browser profile binds read-only.
pub fn read_binds() -> Vec<PathBuf> {
    READ.iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}
