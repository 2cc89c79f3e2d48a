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

#[cfg(test)]
mod tests {
    use crate::sandbox::profile::{build, validate, Profile, Request};
    use crate::sandbox::spec::Spec;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::path::Path;

    #[test]
    fn browser_profile_binds_fonts_and_turns_chromiums_sandbox_off() {
        let p = validate(Some(&json!({"browser": true})), "s")
            .unwrap()
            .unwrap();
        assert!(p.browser);
        let home = tempfile::tempdir().unwrap();
        let env = BTreeMap::new();
        let mut req = Request {
            server: "b",
            command: "sh",
            args: &[],
            env: &env,
            cwd: None,
            default_path: "/usr/bin:/bin",
            home: home.path(),
            cgroup: None,
            parent_pid: 1,
            uid: 1000,
            gid: 1000,
        };
        let spec = build(&p, &req).unwrap();
        let bound = |s: &Spec, path: &str| s.mounts.iter().any(|m| m.path == Path::new(path));
        if Path::new("/etc/fonts").exists() {
            assert!(bound(&spec, "/etc/fonts"));
        }
        assert!(spec
            .env
            .contains(&("PLAYWRIGHT_MCP_SANDBOX".into(), "false".into())));
        // Not without the option; and the configured env wins.
        assert!(!bound(
            &build(&Profile::default(), &req).unwrap(),
            "/etc/fonts"
        ));
        let mine = BTreeMap::from([("PLAYWRIGHT_MCP_SANDBOX".to_string(), "true".to_string())]);
        req.env = &mine;
        let spec = build(&p, &req).unwrap();
        assert!(spec
            .env
            .contains(&("PLAYWRIGHT_MCP_SANDBOX".into(), "true".into())));
    }
}
