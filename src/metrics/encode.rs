//! One scrape: the live series and what was read for it, written in the
//! Prometheus text format by prometheus-client's encoder (registered as a
//! `Collector` in a registry made for the scrape).

use super::hist::Hist;
use super::labels::{OpKey, RestartReason, ToolId, Transport, OTHER_TOOL};
use super::{system, AuthFailure, Metrics, Ops, ServerMetrics};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(super) fn encode(scrape: Scrape) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// What one scrape shows, taken from the live series when it starts: the
/// servers the caller may see, what was read from the hub and the system
/// for them, and the hub-wide counters.
#[derive(Debug)]
pub(super) struct Scrape {
    servers: Vec<Arc<ServerMetrics>>,
    upstreams: Vec<(system::UpstreamReading, system::Usage)>,
    http: Vec<((&'static str, u16), u64)>,
    auth: [u64; 2],
    clients: Vec<((Arc<str>, &'static str), u64)>,
    process: system::ProcessReading,
}

impl Scrape {
    pub(super) fn new(
        metrics: &Metrics,
        upstreams: Vec<system::UpstreamReading>,
        process: system::ProcessReading,
    ) -> Scrape {
        let mut servers: Vec<Arc<ServerMetrics>> = {
            let m = metrics.servers();
            upstreams
                .iter()
                .filter_map(|u| m.get(u.name.as_str()).cloned())
                .collect()
        };
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut http: Vec<_> = metrics
            .http
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.get()))
            .collect();
        http.sort();
        let mut clients: Vec<_> = metrics
            .clients
            .pin()
            .iter()
            .map(|(k, v)| (k.clone(), v.get()))
            .collect();
        clients.sort();
        Scrape {
            clients,
            servers,
            upstreams: upstreams
                .into_iter()
                .map(|u| {
                    let usage = u.usage();
                    (u, usage)
                })
                .collect(),
            http,
            auth: std::array::from_fn(|i| metrics.auth[i].load(Ordering::Relaxed)),
            process,
        }
    }
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerMetrics({:?})", self.name)
    }
}

/// The text encoder adds `_total` to counters itself.
fn counter_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let servers = &self.servers;
        self.ops(&mut enc, servers)?;
        sessions(&mut enc, servers)?;
        self.upstream(&mut enc, servers)?;
        self.http(&mut enc)?;
        system::encode_process(&mut enc, &self.process)?;
        Ok(())
    }
}

/// One server's operation histograms, as server or (`client`) as client:
/// the same labels, plus `network_transport` on the client side.
fn encode_ops(
    m: &mut prometheus_client::encoding::MetricEncoder,
    s: &ServerMetrics,
    ops: &Ops,
    client: bool,
) -> Result<(), std::fmt::Error> {
    let names: HashMap<ToolId, String> = s
        .tools
        .pin()
        .iter()
        .map(|(n, t)| (t.id, n.to_string()))
        .chain([(ToolId::OTHER, OTHER_TOOL.to_string())])
        .collect();
    let ops = ops.pin();
    let mut rows: Vec<(&OpKey, &str, &Hist)> = Vec::with_capacity(ops.len());
    for (k, h) in ops.iter() {
        let tool = match k.tool {
            None => "",
            // A tool forgotten while this call was recorded: its series
            // goes at the next prune; a scrape never shows an id.
            Some(id) => match names.get(&id) {
                Some(n) => n.as_str(),
                None => continue,
            },
        };
        rows.push((k, tool, h));
    }
    rows.sort_by(|(a, at, _), (b, bt, _)| {
        (a.method, *at, a.error.label(), a.transport, a.era.as_str()).cmp(&(
            b.method,
            *bt,
            b.error.label(),
            b.transport,
            b.era.as_str(),
        ))
    });
    for (k, tool, h) in rows {
        let e = k.error.label();
        let network = if k.transport == "stdio" {
            "pipe"
        } else {
            "tcp"
        };
        let labels = [
            ("mcp_method_name", k.method),
            ("gen_ai_tool_name", tool),
            ("error_type", e),
            ("server", &s.name),
            ("transport", k.transport),
            ("protocol_era", k.era.as_str()),
            ("network_transport", network),
        ];
        let labels = if client { &labels[..] } else { &labels[..6] };
        h.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Scrape {
    fn ops(
        &self,
        enc: &mut DescriptorEncoder,
        servers: &[Arc<ServerMetrics>],
    ) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            "mcp_server_operation_duration_seconds",
            "MCP requests the hub answered as server, from arrival to answer.",
            None,
            MetricType::Histogram,
        )?;
        for s in servers {
            encode_ops(&mut m, s, &s.server_ops, false)?;
        }
        let mut m = enc.encode_descriptor(
            "mcp_client_operation_duration_seconds",
            "MCP requests the hub sent upstream as client, until the upstream answered or the hub gave up.",
            None,
            MetricType::Histogram,
        )?;
        for s in servers {
            encode_ops(&mut m, s, &s.client_ops, true)?;
        }
        Ok(())
    }

    fn upstream(
        &self,
        enc: &mut DescriptorEncoder,
        servers: &[Arc<ServerMetrics>],
    ) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            "mcphub_upstream_up",
            "1 while the server's upstream is ready.",
            None,
            MetricType::Gauge,
        )?;
        for (u, _) in &self.upstreams {
            let up = i64::from(u.state == "ready");
            ConstGauge::new(up).encode(m.encode_family(&[("server", u.name.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "mcphub_upstream_state",
            "The upstream's lifecycle state: 1 for the current one.",
            None,
            MetricType::Gauge,
        )?;
        for (u, _) in &self.upstreams {
            for st in system::STATES {
                let labels = [("server", u.name.as_str()), ("state", st)];
                ConstGauge::new(i64::from(u.state == st)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_upstream_restarts_total"),
            "Upstream restarts after a crash or a failed start, by cause.",
            None,
            MetricType::Counter,
        )?;
        for s in servers {
            for r in RestartReason::ALL {
                let n = s.restarts[r as usize].load(Ordering::Relaxed);
                let labels = [("server", &*s.name), ("reason", r.as_str())];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "mcphub_child_memory_bytes",
            "Memory of the server's processes: its cgroup's memory.current when delegated, else their resident set.",
            None,
            MetricType::Gauge,
        )?;
        for (u, (memory, _)) in &self.upstreams {
            if let Some(b) = *memory {
                ConstGauge::new(b as i64)
                    .encode(m.encode_family(&[("server", u.name.as_str())])?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_child_cpu_seconds_total"),
            "CPU time of the server's running processes: its cgroup's cpu.stat when delegated, else /proc.",
            None,
            MetricType::Counter,
        )?;
        for (u, (_, cpu)) in &self.upstreams {
            if let Some(s) = *cpu {
                ConstCounter::new(s).encode(m.encode_family(&[("server", u.name.as_str())])?)?;
            }
        }
        Ok(())
    }

    fn http(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_http_requests_total"),
            "HTTP requests answered, by route template and status code.",
            None,
            MetricType::Counter,
        )?;
        for ((route, code), n) in self.http.iter().copied() {
            let code = code.to_string();
            let labels = [("route", route), ("code", code.as_str())];
            ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_auth_failures_total"),
            "Requests refused for a missing or invalid bearer token.",
            None,
            MetricType::Counter,
        )?;
        for (i, n) in self.auth.iter().enumerate() {
            let labels = [("reason", AuthFailure::as_str(i))];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            counter_name("mcphub_client_requests_total"),
            "JSON-RPC requests of named clients, by client and what became of them (admitted, denied, rate_limited, concurrent).",
            None,
            MetricType::Counter,
        )?;
        for ((client, outcome), n) in &self.clients {
            let labels = [("client", &**client), ("outcome", *outcome)];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn sessions(
    enc: &mut DescriptorEncoder,
    servers: &[Arc<ServerMetrics>],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(
        "mcphub_sessions_active",
        "Open client sessions.",
        None,
        MetricType::Gauge,
    )?;
    for s in servers {
        for t in Transport::ALL {
            let n = s.sessions[t.index()].load(Ordering::Relaxed);
            let labels = [("server", &*s.name), ("transport", t.as_str())];
            ConstGauge::new(n).encode(m.encode_family(&labels)?)?;
        }
    }
    let mut m = enc.encode_descriptor(
        "mcp_server_session_duration_seconds",
        "Client sessions, from open to close.",
        None,
        MetricType::Histogram,
    )?;
    for s in servers {
        for t in Transport::ALL {
            let h = &s.session_time[t.index()];
            if h.count() == 0 {
                continue;
            }
            let labels = [("server", &*s.name), ("transport", t.as_str())];
            h.encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
