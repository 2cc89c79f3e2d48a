//! The `openapi` option (in `mcpProxy.options` or a server's `options`): how
//! the OpenAPI facade names its operations, and how much of a server's lists
//! it reads and serves. Read as written here, validated into [`OpenApi`]; a
//! server's (or group's) own block replaces the global one, as every TBXark
//! option does.
//!
//! The view carries tools only unless `resources` / `prompts` say otherwise:
//! that is what MCPO serves, and Open WebUI hands every operation to the model
//! as a tool, so resource and prompt operations would read as tools it may call.

pub use super::raw::RawOpenApi as Raw;
use super::raw::Size;
use super::{invalid, opt_size, Invalid};

/// The default of `maxListSize`: the bytes of one list (all its pages) the
/// facade reads and keeps.
pub const MAX_LIST_SIZE: usize = 16 << 20;
/// The default of `maxListPages`: a server that hands out cursors forever is
/// cut off, not followed forever.
pub const MAX_LIST_PAGES: usize = 100;
/// The default of `maxDocumentSize`: one `openapi.json`.
pub const MAX_DOCUMENT_SIZE: usize = 32 << 20;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenApi {
    pub operation_ids: OperationIds,
    /// Bytes of one list (`tools/list`, `prompts/list`, all pages) read and cached.
    pub max_list_size: usize,
    /// Pages of one list followed.
    pub max_list_pages: usize,
    /// Bytes of one `openapi.json`.
    pub max_document_size: usize,
    /// Resources are operations (`/resources`, `/resources/read`).
    pub resources: bool,
    /// Prompts are operations (`/prompts`, `/prompts/<name>`).
    pub prompts: bool,
}

impl Default for OpenApi {
    fn default() -> Self {
        OpenApi {
            operation_ids: OperationIds::Exact,
            max_list_size: MAX_LIST_SIZE,
            max_list_pages: MAX_LIST_PAGES,
            max_document_size: MAX_DOCUMENT_SIZE,
            resources: false,
            prompts: false,
        }
    }
}

/// The server's setting: its own block, else the global one, else the default.
pub fn resolve(own: Option<&Raw>, global: Option<&Raw>, path: &str) -> Result<OpenApi, Invalid> {
    let (raw, at) = match (own, global) {
        (Some(r), _) => (r, format!("{path}.options.openapi")),
        (None, Some(r)) => (r, "mcpProxy.options.openapi".to_string()),
        (None, None) => return Ok(OpenApi::default()),
    };
    validate(raw, &at)
}

/// One block as written, at config path `at` (a group's own `openapi`).
pub fn validate(raw: &Raw, at: &str) -> Result<OpenApi, Invalid> {
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
    let sized =
        |z: &Option<Size>, key: &str, default: usize| opt_size(z, &format!("{at}.{key}"), default);
    let max_list_pages = match raw.max_list_pages {
        None => MAX_LIST_PAGES,
        Some(n @ 1..=10_000) => n as usize,
        Some(n) => {
            return Err(invalid(
                format!("{at}.maxListPages"),
                format!("{n} is not between 1 and 10000"),
            ))
        }
    };
    Ok(OpenApi {
        operation_ids,
        max_list_size: sized(&raw.max_list_size, "maxListSize", MAX_LIST_SIZE)?,
        max_list_pages,
        max_document_size: sized(&raw.max_document_size, "maxDocumentSize", MAX_DOCUMENT_SIZE)?,
        resources: raw.resources.unwrap_or(false),
        prompts: raw.prompts.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_block_wins_and_bad_values_name_their_path() {
        let mcpo = Raw {
            operation_ids: Some("mcpo".into()),
            ..Default::default()
        };
        let exact = Raw {
            operation_ids: Some("exact".into()),
            ..Default::default()
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
            ..Default::default()
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
        let caps = r#"{"mcpServers": {"a": {"command": "x", "options": {"openapi":
            {"maxListSize": "1MiB", "maxListPages": 3, "maxDocumentSize": 4096}}}}}"#;
        let c = super::super::parse(caps, "t.json", &none).unwrap();
        let o = c.servers["a"].openapi;
        assert_eq!(
            (o.max_list_size, o.max_list_pages, o.max_document_size),
            (1 << 20, 3, 4096)
        );
        let bad = r#"{"mcpServers": {"a": {"command": "x", "options": {"openapi": {"maxListPages": 0}}}}}"#;
        let e = super::super::parse(bad, "t.json", &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("openapi.maxListPages"), "{e}");
        // Tools only unless a block opts in; a group's own block wins over the global one.
        let views = r#"{"mcpProxy": {"options": {"openapi": {"prompts": true}}},
            "mcpServers": {"a": {"command": "x"},
                           "b": {"command": "x", "options": {"openapi": {"resources": true}}}},
            "groups": {"g1": {"servers": ["a"]},
                       "g2": {"servers": ["a"], "openapi": {"resources": true, "prompts": false}}}}"#;
        let c = super::super::parse(views, "t.json", &none).unwrap();
        let rp = |o: OpenApi| (o.resources, o.prompts);
        assert_eq!(rp(OpenApi::default()), (false, false));
        assert_eq!(rp(c.servers["a"].openapi), (false, true));
        assert_eq!(rp(c.servers["b"].openapi), (true, false));
        assert_eq!(rp(c.groups["g1"].openapi), (false, true));
        assert_eq!(rp(c.groups["g2"].openapi), (true, false));
        let bad = r#"{"mcpServers": {"a": {"command": "x"}},
            "groups": {"g": {"servers": ["a"], "openapi": {"operationIds": "x"}}}}"#;
        let e = super::super::parse(bad, "t.json", &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("groups.g.openapi.operationIds"), "{e}");
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
