//! A reload: the new config applied to the running registry as a diff, per
//! server and per group, so that what did not change keeps running.

use super::{GroupEntry, Hub, Server, Snapshot};
use crate::config::{Config, ServerConfig, SessionMode};
use crate::http::origin::Policy;
use crate::session::Upstream;
use crate::supervisor::Supervisor;
use crate::upstream::link::{Kind, LinkState};
use indexmap::IndexMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What a reload changed, for the log and STATUS=.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub kept: Vec<String>,
    pub changed: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl Hub {
    /// Applies a new, already validated config as a per-server diff.
    pub fn reload(&self, config: Config) -> ReloadSummary {
        let old = self.current();
        let mut summary = ReloadSummary::default();
        let mut drivers = Vec::new();
        let mut servers = IndexMap::new();
        for (name, cfg) in config.servers {
            let server = match old.servers.get(&name) {
                Some(prev) if same_upstream(&prev.cfg, &cfg) => {
                    summary.kept.push(name.clone());
                    let cfg = Arc::new(cfg);
                    for up in prev.shared.iter().chain(prev.live_clients().iter()) {
                        up.update(cfg.clone(), &config.hub.clients);
                    }
                    // A reload is a natural "try again" for a server that is failing.
                    if let Some(sh) = &prev.shared {
                        if matches!(sh.link.state(), LinkState::Failed(_)) {
                            sh.link.retry_now();
                        }
                    }
                    Arc::new(Server {
                        cfg,
                        sup: prev.sup.clone(),
                        shared: prev.shared.clone(),
                        clients: prev.clients.clone(),
                    })
                }
                Some(_) => {
                    summary.changed.push(name.clone());
                    Arc::new(build(cfg, &mut drivers))
                }
                None => {
                    summary.added.push(name.clone());
                    Arc::new(build(cfg, &mut drivers))
                }
            };
            servers.insert(name, server);
        }
        for name in old.servers.keys().filter(|n| !servers.contains_key(*n)) {
            summary.removed.push(name.clone());
        }
        crate::metrics::global().retain_servers(|n| servers.contains_key(n));
        crate::metrics::global().retain_clients(|n| {
            config.hub.clients.iter().any(|c| &*c.label == n)
                || (n == "oidc" && config.hub.oidc.is_some())
        });
        if old.settings.addr != config.hub.addr {
            tracing::warn!("mcpProxy.addr changed; the listening address changes only on restart");
        }
        if old.settings.metrics.listen != config.hub.metrics.listen {
            tracing::warn!("mcpProxy.options.metricsListen changed; it changes only on restart");
        }
        if old.settings.hub_id != config.hub.hub_id {
            tracing::warn!(
                "mcpProxy.options.hubId changed; the requestState prefix changes only on restart"
            );
        }
        // A group whose config is unchanged keeps its sessions; one that
        // changed or went away ends them (its clients initialize again).
        let mut groups = IndexMap::new();
        let mut retired_groups = Vec::new();
        for (name, g) in config.groups {
            let group = match old.groups.get(&name) {
                Some(prev) if *prev.cfg == g => prev.clone(),
                Some(prev) => {
                    retired_groups.push(prev.clone());
                    Arc::new(GroupEntry::new(g))
                }
                None => Arc::new(GroupEntry::new(g)),
            };
            groups.insert(name, group);
        }
        for (name, g) in &old.groups {
            if !groups.contains_key(name) {
                retired_groups.push(g.clone());
            }
        }
        // The provider's keys outlive a reload with the same issuer.
        let oidc = match (&config.hub.oidc, &old.oidc) {
            (Some(new), Some(prev)) if prev.cfg == *new => Some(prev.clone()),
            (Some(new), prev) => Some(crate::oidc::Oidc::new(new.clone(), prev.as_deref())),
            (None, _) => None,
        };
        let snapshot = Snapshot {
            policy: Policy::new(&config.hub),
            oidc,
            settings: config.hub,
            servers,
            groups,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        if let Ok(mut d) = self.drivers.lock() {
            d.extend(drivers);
        }
        for g in retired_groups {
            g.retire("the group was changed or removed by a config reload");
        }
        // Only now, with the new snapshot in place, stop what went away.
        for name in summary.changed.iter().chain(&summary.removed) {
            if let Some(s) = old.servers.get(name) {
                s.retire(&format!(
                    "server {name:?} was changed or removed by a config reload"
                ));
            }
        }
        summary
    }
}

pub(super) fn build(cfg: ServerConfig, drivers: &mut Vec<JoinHandle<()>>) -> Server {
    let cfg = Arc::new(cfg);
    let sup = Arc::new(Supervisor::new(&cfg.name));
    let shared = (cfg.session == SessionMode::Shared && !cfg.disabled).then(|| {
        let (up, task) = Upstream::spawn(cfg.clone(), sup.clone(), Kind::Shared);
        drivers.push(task);
        up
    });
    Server {
        cfg,
        sup,
        shared,
        clients: Arc::default(),
    }
}

/// True when a reload may keep the running upstream: what starts or reaches
/// it is the same. Tokens, the tool filter, the OpenAPI naming, audit logging
/// and the request timeout apply in place, with no restart.
fn same_upstream(old: &ServerConfig, new: &ServerConfig) -> bool {
    let mut probe = old.clone();
    probe.auth_tokens = new.auth_tokens.clone();
    probe.token_source = new.token_source.clone();
    probe.tool_filter = new.tool_filter.clone();
    probe.openapi = new.openapi;
    probe.log_enabled = new.log_enabled;
    probe.request_timeout = new.request_timeout;
    probe.panic_if_invalid = new.panic_if_invalid;
    probe == *new
}
