//! `mcpProxy.options.metricsTokens` and `metricsListen`: who may read
//! `/metrics`, and the optional second address that serves it with no token
//! (for a Prometheus on the same host, which then needs no secret).

use super::{invalid, tokens, Invalid};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSettings {
    /// Tokens for `/metrics`; `None`: any token the hub accepts.
    pub tokens: Option<Vec<String>>,
    /// Serves `/metrics` here without a token, as written ("127.0.0.1:9091").
    pub listen: Option<String>,
}

pub(super) fn validate(
    tokens_raw: Option<Vec<String>>,
    listen: Option<String>,
) -> Result<MetricsSettings, Invalid> {
    let tokens = tokens_raw
        .map(|t| tokens(t, "mcpProxy.options.metricsTokens"))
        .transpose()?;
    if let Some(l) = &listen {
        super::parse_listen_addr(l).map_err(|m| {
            invalid(
                "mcpProxy.options.metricsListen",
                format!("{m} (e.g. \"127.0.0.1:9091\")"),
            )
        })?;
    }
    Ok(MetricsSettings { tokens, listen })
}
