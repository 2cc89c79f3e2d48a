//! One scrape: the live series and what was read for it, written in the
//! Prometheus text format by prometheus-client's encoder (registered as a
//! `Collector` in a registry made for the scrape).

use super::hist::Hist;
use super::labels::{OpKey, RestartReason, Transport};
use super::{system, AuthFailure, Hasher, Metrics, ServerMetrics};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
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

/// What one scrape shows: the live series, plus what was read from the hub
/// and /proc for it.
#[derive(Debug)]
pub(super) struct Scrape {
    pub(super) metrics: &'static Metrics,
    pub(super) upstreams: Vec<system::UpstreamReading>,
    pub(super) process: system::ProcessReading,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The text encoder adds `_total` to counters itself.
fn counter_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let servers: Vec<Arc<ServerMetrics>> = {
            let m = self.metrics.servers.pin();
            let mut v: Vec<_> = m.values().cloned().collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        self.ops(&mut enc, &servers)?;
        sessions(&mut enc, &servers)?;
        self.upstream(&mut enc, &servers)?;
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
    ops: &papaya::HashMap<OpKey, Hist, Hasher>,
    client: bool,
) -> Result<(), std::fmt::Error> {
    let ops = ops.pin();
    for (k, h) in sorted(ops.iter()) {
        let e = k.error.label();
        let network = if k.transport == "stdio" {
            "pipe"
        } else {
            "tcp"
        };
        let labels = [
            ("mcp_method_name", k.method),
            ("gen_ai_tool_name", k.tool.unwrap_or("")),
            ("error_type", &e),
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
        for u in &self.upstreams {
            let up = i64::from(u.state == "ready");
            ConstGauge::new(up).encode(m.encode_family(&[("server", u.name.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "mcphub_upstream_state",
            "The upstream's lifecycle state: 1 for the current one.",
            None,
            MetricType::Gauge,
        )?;
        for u in &self.upstreams {
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
        for u in &self.upstreams {
            if let Some(b) = u.memory_bytes {
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
        for u in &self.upstreams {
            if let Some(s) = u.cpu_seconds {
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
        let mut rows: Vec<((&'static str, u16), u64)> = self
            .metrics
            .http
            .pin()
            .iter()
            .map(|(k, v)| (*k, v.get()))
            .collect();
        rows.sort();
        for ((route, code), n) in rows {
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
        for (i, c) in self.metrics.auth.iter().enumerate() {
            let labels = [("reason", AuthFailure::as_str(i))];
            ConstCounter::new(c.load(Ordering::Relaxed)).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Series in a stable order, so one scrape reads like the last.
fn sorted<'a>(it: impl Iterator<Item = (&'a OpKey, &'a Hist)>) -> Vec<(&'a OpKey, &'a Hist)> {
    let mut v: Vec<_> = it.collect();
    v.sort_by(|(a, _), (b, _)| {
        (
            a.method,
            a.tool,
            a.error.label(),
            a.transport,
            a.era.as_str(),
        )
            .cmp(&(
                b.method,
                b.tool,
                b.error.label(),
                b.transport,
                b.era.as_str(),
            ))
    });
    v
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
