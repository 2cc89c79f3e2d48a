//! The `openapi` option (in `mcpProxy.options` or a server's `options`): how
//! the OpenAPI facade names its operations. Read as written here, validated
//! into [`OpenApi`]; a server's own block replaces the global one, as every
//! TBXark option does.

use super::{invalid, Invalid};
use serde::Deserialize;

/// `"openapi": {"operationIds": "exact" | "mcpo"}` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Raw {
    pub operation_ids: Option<String>,
}

/// How operations are named in `/<name>/openapi.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OperationIds {
    /// The tool's own name: what the model sees is what the server calls it.
    #[default]
    Exact,
    /// MCPO's FastAPI names, `tool_<name>_post`, for installations that move
    /// from MCPO and keep the tool ids Open WebUI already stored.
    Mcpo,
}

/// The validated facade settings of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenApi {
    pub operation_ids: OperationIds,
}

/// The server's setting: its own block, else the global one, else the default.
pub fn resolve(own: Option<&Raw>, global: Option<&Raw>, path: &str) -> Result<OpenApi, Invalid> {
    let (raw, at) = match (own, global) {
        (Some(r), _) => (r, format!("{path}.options.openapi")),
        (None, Some(r)) => (r, "mcpProxy.options.openapi".to_string()),
        (None, None) => return Ok(OpenApi::default()),
    };
    let operation_ids = match raw.operation_ids.as_deref() {
        None | Some("exact") => OperationIds::Exact,
        Some("mcpo") => OperationIds::Mcpo,
        Some(other) => {
            return Err(invalid(
                format!("{at}.operationIds"),
                format!("{other:?} is not \"exact\" or \"mcpo\""),
            ))
        }
    };
    Ok(OpenApi { operation_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_block_wins_and_bad_values_name_their_path() {
        let mcpo = Raw {
            operation_ids: Some("mcpo".into()),
        };
        let exact = Raw {
            operation_ids: Some("exact".into()),
        };
        assert_eq!(
            resolve(None, None, "mcpServers.a").unwrap().operation_ids,
            OperationIds::Exact
        );
        assert_eq!(
            resolve(None, Some(&mcpo), "mcpServers.a")
                .unwrap()
                .operation_ids,
            OperationIds::Mcpo
        );
        assert_eq!(
            resolve(Some(&exact), Some(&mcpo), "mcpServers.a")
                .unwrap()
                .operation_ids,
            OperationIds::Exact
        );
        let bad = Raw {
            operation_ids: Some("fastapi".into()),
        };
        let e = resolve(Some(&bad), None, "mcpServers.a").unwrap_err();
        assert_eq!(e.path, "mcpServers.a.options.openapi.operationIds");
        assert!(e.msg.contains("\"fastapi\""), "{e}");
    }

    #[test]
    fn the_file_sets_it_and_unknown_keys_are_errors() {
        let none = |_: &str| None;
        let text = r#"{"mcpProxy": {"options": {"openapi": {"operationIds": "mcpo"}}},
            "mcpServers": {"a": {"command": "x"},
                           "b": {"command": "x", "options": {"openapi": {"operationIds": "exact"}}}}}"#;
        let c = super::super::parse(text, "t.json", &none).unwrap();
        assert_eq!(c.servers["a"].openapi.operation_ids, OperationIds::Mcpo);
        assert_eq!(c.servers["b"].openapi.operation_ids, OperationIds::Exact);
        let bad = r#"{"mcpServers": {"a": {"command": "x", "options": {"openapi": {"operationId": "mcpo"}}}}}"#;
        let e = super::super::parse(bad, "t.json", &none)
            .unwrap_err()
            .to_string();
        // (The path stops at `options`: serde's flatten hides the rest; the
        // message names the key and what was expected.)
        assert!(
            e.contains("mcpServers.a.options") && e.contains("`operationIds`"),
            "{e}"
        );
        let bad = r#"{"mcpServers": {"a": {"command": "x", "options": {"openapi": {"operationIds": "fast"}}}}}"#;
        let e = super::super::parse(bad, "t.json", &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mcpServers.a.options.openapi.operationIds"),
            "{e}"
        );
    }
}
