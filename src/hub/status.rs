//! What the hub tells about itself: `/status` (per server and group) and
//! the readings a `/metrics` scrape takes of each server.

use super::{Hub, Server};
use crate::config::SessionMode;
use serde_json::{json, Value};
use std::time::Duration;

impl Hub {
    /// Per-server state; with `token`, only the servers that token is valid for.
    pub fn status(&self, token: Option<&str>) -> Value {
        let snap = self.current();
        let servers: Vec<Value> = snap
            .servers
            .values()
            .filter(|s| {
                token.is_none_or(|t| {
                    s.cfg.auth_tokens.is_empty() || s.cfg.auth_tokens.iter().any(|x| x == t)
                })
            })
            .map(|s| {
                let st = s.sup.snapshot();
                json!({
                    "name": s.cfg.name,
                    "kind": s.cfg.upstream.kind(),
                    "session": s.cfg.session.as_str(),
                    "state": s.state(),
                    "maxClients": (s.cfg.session == SessionMode::PerClient).then_some(s.cfg.max_clients),
                    "idleTimeoutSecs": s.cfg.idle_timeout.map(|d| d.as_secs()),
                    "pid": st.pid,
                    "children": st.children,
                    "restarts": st.restarts,
                    "sessions": st.sessions,
                    "lastError": st.last_error,
                    "lastStderr": st.last_stderr,
                    "uptimeSecs": st.uptime_secs,
                    "sandbox": sandbox_status(&s.cfg.upstream),
                })
            })
            .collect();
        // Groups the token may use (all, without one): their members' state is
        // above. A member shows only if the token reaches it too, as in the
        // group's own view: the group's token must not name the others.
        let groups: Vec<Value> = snap
            .groups
            .values()
            .filter(|g| {
                token.is_none_or(|t| {
                    g.cfg.auth_tokens.is_empty() || g.cfg.auth_tokens.iter().any(|x| x == t)
                })
            })
            .map(|g| {
                let members: Vec<&String> = g
                    .cfg
                    .servers
                    .iter()
                    .filter(|m| {
                        token.is_none_or(|t| {
                            snap.servers.get(m.as_str()).is_some_and(|s| {
                                s.cfg.auth_tokens.is_empty()
                                    || s.cfg.auth_tokens.iter().any(|x| x == t)
                            })
                        })
                    })
                    .collect();
                json!({"name": g.cfg.name, "servers": members, "routes": g.cfg.routes()})
            })
            .collect();
        // Named clients, for an operator's token (a global one, or a
        // statusToken): never to a client, which must not learn the others.
        let operator = token.is_none_or(|t| snap.settings.auth_tokens.iter().any(|x| x == t));
        let clients: Option<Vec<Value>> = operator.then(|| {
            let open: std::collections::HashMap<String, usize> = self
                .per_token
                .by_caller(|k| k.starts_with("client:"))
                .into_iter()
                .collect();
            let seen = self.seen.pin();
            snap.settings
                .clients
                .iter()
                .map(|c| {
                    json!({
                        "name": &*c.name,
                        "sessions": open.get(&format!("client:{}", c.name)).copied().unwrap_or(0),
                        "lastUsed": seen.get(&c.name).map(|t| {
                            let at = std::time::UNIX_EPOCH
                                + Duration::from_secs(t.load(std::sync::atomic::Ordering::Relaxed));
                            humantime::format_rfc3339_seconds(at).to_string()
                        }),
                    })
                })
                .collect()
        });
        json!({
            "name": snap.settings.name,
            "version": env!("CARGO_PKG_VERSION"),
            "clients": clients,
            "configVersion": snap.settings.version,
            "uptimeSecs": self.started.elapsed().as_secs(),
            "droppedMessages": crate::session::outbound::dropped_total(),
            "servers": servers,
            "groups": groups,
        })
    }

    /// What a `/metrics` scrape reads of each server: with `token`, only
    /// the servers that token is valid for (as `/status` shows them).
    pub fn upstream_readings(&self, token: Option<&str>) -> Vec<crate::metrics::UpstreamReading> {
        let cgroups = match crate::sandbox::cgroup::known() {
            Some(crate::sandbox::cgroup::State::Delegated { dir }) => Some(dir.clone()),
            _ => None,
        };
        let snap = self.current();
        let reachable = |s: &Server| {
            token.is_none_or(|t| {
                s.cfg.auth_tokens.is_empty() || s.cfg.auth_tokens.iter().any(|x| x == t)
            })
        };
        snap.servers
            .values()
            .filter(|s| reachable(s))
            .map(|s| crate::metrics::UpstreamReading {
                name: s.cfg.name.clone(),
                state: s.state(),
                pid: s.sup.snapshot().pid,
                cgroups: cgroups.clone(),
            })
            .collect()
    }
}

/// A server's sandbox as `/status` shows it: off (with a warning), or on with
/// its limits and whether the host enforces them.
fn sandbox_status(up: &crate::config::Upstream) -> Value {
    let crate::config::Upstream::Stdio(spec) = up else {
        return Value::Null;
    };
    let Some(p) = &spec.sandbox else {
        return json!({"enabled": false, "warning": "sandbox disabled (\"sandbox\": false): the server runs with the hub's user and file system access"});
    };
    let limits = &p.limits;
    let cgroup = crate::sandbox::cgroup::state();
    let enforced = matches!(cgroup, crate::sandbox::cgroup::State::Delegated { .. });
    json!({
        "enabled": true,
        "package": crate::sandbox::install::describe(spec),
        "network": if p.network == crate::sandbox::profile::Network::None { "none" } else { "host" },
        "memoryMax": limits.memory_max,
        "pidsMax": limits.pids_max,
        "cpuQuotaPercent": limits.cpu_quota,
        "limits": if enforced || !limits.needs_cgroup() { "enforced".to_string() } else { cgroup.describe() },
    })
}
