//! The OpenAPI 3.1 document of one backend, made from its `tools/list` (after
//! the tool filter, which the session layer applied) and, when the view opts
//! in (`openapi.resources`, `openapi.prompts`) and it has them, its prompts
//! and resources. Each tool's input schema is placed in the document by
//! [`super::schema`].

use super::schema::{component_key, hoist, Components};
use crate::config::openapi::OperationIds;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// What the document describes besides tools: nothing unless the view's
/// settings ask for it (the caller leaves these empty then).
#[derive(Default)]
pub struct Extras {
    pub resources: bool,
    /// `prompts/list`'s prompts, when the server has prompts.
    pub prompts: Option<Vec<Value>>,
}

/// Who the document is about, for `info` and `servers`.
pub struct About<'a> {
    pub name: &'a str,
    /// The base URL operations are relative to (`/<name>` or an absolute URL).
    pub base: String,
    pub auth: bool,
    pub ids: OperationIds,
}

/// The operationId of a tool.
pub fn operation_id(tool: &str, ids: OperationIds) -> String {
    match ids {
        OperationIds::Exact => tool.to_string(),
        // FastAPI's default: the function name ("tool"), the path with every
        // non-word character as `_`, and the method.
        OperationIds::Mcpo => {
            let path: String = format!("tool/{tool}")
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{path}_post")
        }
    }
}

/// A path segment for a tool or prompt name: everything outside the URL's
/// unreserved set percent-encoded.
pub fn segment(name: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(name, KEEP).to_string()
}

/// The error body every error response carries: `{"detail": …}` as MCPO
/// (FastAPI) writes it.
fn error_response(what: &str) -> Value {
    json!({"description": what, "content": {"application/json": {"schema":
        {"$ref": "#/components/schemas/Error"}}}})
}

fn common_components() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "Error".into(),
        json!({"type": "object", "properties": {"detail": {}}, "required": ["detail"],
               "description": "{\"detail\": {\"message\": …}} for a failed call; {\"detail\": [{\"loc\", \"msg\", \"type\"}]} for input that does not fit the schema"}),
    );
    m
}

/// Operation ids handed out so far, with the next suffix of each wanted one.
#[derive(Default)]
struct Ids {
    taken: HashSet<String>,
    next: HashMap<String, usize>,
}

impl Ids {
    /// `want` if free, else `want_<n>` for the first free `n` from 2.
    fn free(&mut self, want: &str) -> String {
        if self.taken.insert(want.to_string()) {
            return want.to_string();
        }
        let n = self.next.entry(want.to_string()).or_insert(2);
        loop {
            let id = format!("{want}_{n}");
            *n += 1;
            if self.taken.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// The document.
pub fn build(about: &About<'_>, tools: &[Value], extras: &Extras) -> Value {
    let mut components = Components::new(common_components());
    let mut paths = Map::new();
    let mut ids = Ids::default();
    for tool in tools {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        // A name listed twice is one operation, the first (a call finds that one too).
        let path = format!("/tools/{}", segment(name));
        if paths.contains_key(&path) {
            continue;
        }
        let op_id = ids.free(&operation_id(name, about.ids));
        let prefix = component_key(name);
        let input = tool
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        let body = hoist(&input, &format!("{prefix}__input"), &mut components);
        let required = input
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        let ok_schema = match tool.get("outputSchema") {
            Some(out) if out.is_object() => {
                hoist(out, &format!("{prefix}__output"), &mut components)
            }
            _ => json!({}),
        };
        let description = tool
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let summary = tool
            .get("title")
            .or_else(|| tool.pointer("/annotations/title"))
            .and_then(Value::as_str)
            .unwrap_or(name);
        let mut op = json!({
            "operationId": op_id,
            "summary": summary,
            "description": description,
            "tags": ["tools"],
            "responses": {
                "200": {"description": "The tool's result: its structuredContent when it returns one, else its content (one item bare, several as an array; text that is JSON parsed, images, audio and binary resources as data: URIs)",
                        "content": {"application/json": {"schema": ok_schema}}},
                "404": error_response("No such tool, or the server does not know the method"),
                "422": error_response("The arguments do not fit the tool's input schema"),
                "500": error_response("The tool reported an error (isError)"),
                "503": error_response("The server is not available now"),
            },
        });
        // A tool without parameters has no body, as in MCPO: Open WebUI
        // refuses to call an operation that wants a body it has nothing for.
        if has_parameters(&input) {
            op["requestBody"] = json!({"required": required,
                "content": {"application/json": {"schema": body}}});
        }
        add_auth(&mut op, about.auth);
        paths.insert(path, json!({ "post": op }));
    }
    if extras.resources {
        let mut list = json!({
            "operationId": ids.free("list_resources"),
            "summary": "List resources",
            "description": "The server's resources (resources/list): uri, name, description and mimeType of each.",
            "tags": ["resources"],
            "responses": {"200": {"description": "resources/list's result", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "503": error_response("The server is not available now")},
        });
        add_auth(&mut list, about.auth);
        let mut read = json!({
            "operationId": ids.free("read_resource"),
            "summary": "Read a resource",
            "description": "Reads one resource by its URI (resources/read): one text bare, several contents as an array; text that is JSON parsed, binary as a data: URI.",
            "tags": ["resources"],
            "parameters": [{"name": "uri", "in": "query", "required": true, "description": "The resource's URI, as resources/list gives it", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The resource's contents", "content": {"application/json": {"schema": {}}}},
                          "404": error_response("No such resource"),
                          "422": error_response("No uri given, or the server refused it"),
                          "503": error_response("The server is not available now")},
        });
        add_auth(&mut read, about.auth);
        paths.insert("/resources".into(), json!({ "get": list }));
        paths.insert("/resources/read".into(), json!({ "get": read }));
    }
    if let Some(prompts) = &extras.prompts {
        let mut list = json!({
            "operationId": ids.free("list_prompts"),
            "summary": "List prompts",
            "description": "The server's prompts (prompts/list): name, description and arguments of each.",
            "tags": ["prompts"],
            "responses": {"200": {"description": "prompts/list's result", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "503": error_response("The server is not available now")},
        });
        add_auth(&mut list, about.auth);
        paths.insert("/prompts".into(), json!({ "get": list }));
        for p in prompts {
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            let path = format!("/prompts/{}", segment(name));
            if paths.contains_key(&path) {
                continue;
            }
            let mut props = Map::new();
            let mut required = vec![];
            for a in p
                .get("arguments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(an) = a.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let mut s = json!({"type": "string"});
                if let Some(d) = a.get("description") {
                    s["description"] = d.clone();
                }
                props.insert(an.into(), s);
                if a.get("required").and_then(Value::as_bool) == Some(true) {
                    required.push(an.to_string());
                }
            }
            let mut op = json!({
                "operationId": ids.free(&format!("prompt_{name}")),
                "summary": p.get("title").and_then(Value::as_str).unwrap_or(name),
                "description": p.get("description").and_then(Value::as_str).unwrap_or(""),
                "tags": ["prompts"],
                "responses": {"200": {"description": "prompts/get's result: the prompt's messages", "content": {"application/json": {"schema": {"type": "object"}}}},
                              "404": error_response("No such prompt"),
                              "422": error_response("The arguments do not fit the prompt"),
                              "503": error_response("The server is not available now")},
            });
            if !props.is_empty() {
                op["requestBody"] = json!({"required": !required.is_empty(),
                    "content": {"application/json": {"schema":
                        {"type": "object", "properties": props, "required": required}}}});
            }
            add_auth(&mut op, about.auth);
            paths.insert(path, json!({ "post": op }));
        }
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": about.name,
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(about, extras),
        },
        "servers": [{"url": about.base}],
        "paths": paths,
        "components": {"schemas": components.schemas},
    });
    if about.auth {
        doc["components"]["securitySchemes"] =
            json!({"bearer": {"type": "http", "scheme": "bearer"}});
    }
    doc
}

/// `info.description`: what the operations are, so that a reader of the
/// document knows why resources or prompts are (not) in it.
fn description(about: &About<'_>, extras: &Extras) -> String {
    let more = match (extras.resources, extras.prompts.is_some()) {
        (false, false) => " Resources and prompts are not served here (openapi.resources, openapi.prompts turn them on).",
        (true, false) => " Also the server's resources (openapi.resources).",
        (false, true) => " Also the server's prompts (openapi.prompts).",
        (true, true) => " Also the server's resources and prompts (openapi.resources, openapi.prompts).",
    };
    format!(
        "The MCP server {:?} through mcp-hub: one operation per tool.{more} Human-readable: {}/docs",
        about.name, about.base
    )
}

/// Whether a tool's input schema names any parameter (or is more than a
/// plain object, so a body may carry something).
fn has_parameters(schema: &Value) -> bool {
    let Some(o) = schema.as_object() else {
        return false;
    };
    o.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty())
        || ["$ref", "anyOf", "oneOf", "allOf", "patternProperties"]
            .iter()
            .any(|k| o.contains_key(*k))
        || o.get("additionalProperties")
            .is_some_and(|a| a != &json!(false))
}

fn add_auth(op: &mut Value, auth: bool) {
    if auth {
        op["security"] = json!([{"bearer": []}]);
        op["responses"]["401"] = error_response("No or a wrong bearer token");
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::escape_pointer;
    use super::*;

    fn about(ids: OperationIds) -> About<'static> {
        About {
            name: "s",
            base: "/s".into(),
            auth: true,
            ids,
        }
    }

    #[test]
    fn defs_are_hoisted_and_refs_rewritten() {
        let tools = vec![
            json!({"name": "a", "inputSchema": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object", "$defs": {"addr": {"type": "object", "properties": {"next": {"$ref": "#/$defs/addr"}}}},
                "properties": {"home": {"$ref": "#/$defs/addr"}, "street": {"$ref": "#/$defs/addr/properties/next"},
                               "c": {"const": {"$ref": "#/x"}}}}}),
            json!({"name": "b", "inputSchema": {"type": "object", "definitions": {"addr": {"type": "string"}},
                "properties": {"x": {"$ref": "#/definitions/addr"}}}}),
            json!({"name": "tree", "inputSchema": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}}),
        ];
        let doc = build(&about(OperationIds::Exact), &tools, &Extras::default());
        let s = doc.to_string();
        assert!(!s.contains("#/$defs"), "{s}");
        assert!(!s.contains("#/definitions"), "{s}");
        let comps = &doc["components"]["schemas"];
        assert_eq!(
            comps["a__input__addr"]["properties"]["next"]["$ref"],
            "#/components/schemas/a__input__addr"
        );
        let body = &doc["paths"]["/tools/a"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(
            body["properties"]["home"]["$ref"],
            "#/components/schemas/a__input__addr"
        );
        assert_eq!(
            body["properties"]["street"]["$ref"],
            "#/components/schemas/a__input__addr/properties/next"
        );
        // Data is not rewritten.
        assert_eq!(body["properties"]["c"]["const"]["$ref"], "#/x");
        assert!(body.get("$schema").is_none());
        assert_eq!(comps["b__input__addr"], json!({"type": "string"}));
        // A schema that refers to its root is a component itself.
        let tree = &doc["paths"]["/tools/tree"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(tree["$ref"], "#/components/schemas/tree__input__root");
        assert_eq!(
            comps["tree__input__root"]["properties"]["kids"]["items"]["$ref"],
            "#/components/schemas/tree__input__root"
        );
    }

    #[test]
    fn a_tool_without_parameters_has_no_body() {
        let tools = vec![
            json!({"name": "none", "inputSchema": {"type": "object", "properties": {}}}),
            json!({"name": "one", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}),
        ];
        let doc = build(&about(OperationIds::Exact), &tools, &Extras::default());
        assert!(doc["paths"]["/tools/none"]["post"]
            .get("requestBody")
            .is_none());
        assert_eq!(
            doc["paths"]["/tools/one"]["post"]["requestBody"]["required"],
            false
        );
    }

    #[test]
    fn operation_ids_exact_and_mcpo() {
        assert_eq!(operation_id("get-env", OperationIds::Exact), "get-env");
        assert_eq!(
            operation_id("get-env", OperationIds::Mcpo),
            "tool_get_env_post"
        );
        assert_eq!(operation_id("echo", OperationIds::Mcpo), "tool_echo_post");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    /// `n` distinct names that [`component_key`] and MCPO's ids map to one:
    /// `t` and seven characters out of four that all become `_`.
    fn colliding(n: usize) -> Vec<String> {
        (0..n)
            .map(|mut i| {
                let mut s = String::from("t");
                for _ in 0..7 {
                    s.push([' ', '!', '@', '#'][i % 4]);
                    i /= 4;
                }
                s
            })
            .collect()
    }

    fn well_formed(id: &str, want: &str) -> bool {
        id == want
            || id
                .strip_prefix(want)
                .and_then(|r| r.strip_prefix('_'))
                .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n >= 2))
    }

    #[test]
    fn ten_thousand_colliding_names_get_unique_ids_fast() {
        let mut ids = Ids::default();
        let got: Vec<String> = (0..10_000).map(|_| ids.free("prompt_x")).collect();
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), 10_000);
        assert!(got.iter().all(|id| well_formed(id, "prompt_x")));

        let started = std::time::Instant::now();
        // 10,000 prompts sharing one name, and 1,000 tools whose MCPO ids collide.
        let prompts: Vec<Value> = (0..10_000).map(|_| json!({"name": "x"})).collect();
        let tools: Vec<Value> = colliding(1_000)
            .into_iter()
            .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
            .collect();
        let extras = Extras {
            resources: true,
            prompts: Some(prompts),
        };
        let doc = build(&about(OperationIds::Mcpo), &tools, &extras);
        let took = started.elapsed();
        let ops: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let tool_ops: Vec<&&str> = ops.iter().filter(|o| o.starts_with("tool_")).collect();
        assert_eq!(tool_ops.len(), 1_000);
        assert!(tool_ops
            .iter()
            .all(|o| well_formed(o, "tool_t________post")));
        let unique: HashSet<&&str> = ops.iter().collect();
        assert_eq!(unique.len(), ops.len(), "an operationId is used twice");
        // A generous bound for a debug build; the quadratic probe took tens of seconds.
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn eight_thousand_colliding_defs_are_hoisted_apart_fast() {
        let names = colliding(8_000);
        let mut defs = Map::new();
        let mut props = Map::new();
        for (i, n) in names.iter().enumerate() {
            defs.insert(n.clone(), json!({"type": "integer", "minimum": i}));
            props.insert(
                format!("p{i}"),
                json!({"$ref": format!("#/$defs/{}", escape_pointer(n))}),
            );
        }
        let tools = vec![json!({"name": "big", "inputSchema":
            {"type": "object", "$defs": defs, "properties": props}})];
        let started = std::time::Instant::now();
        let doc = build(&about(OperationIds::Exact), &tools, &Extras::default());
        let took = started.elapsed();
        let comps = doc["components"]["schemas"].as_object().unwrap();
        let hoisted: Vec<&String> = comps
            .keys()
            .filter(|k| k.starts_with("big__input__"))
            .collect();
        assert_eq!(hoisted.len(), 8_000);
        assert!(hoisted
            .iter()
            .all(|k| well_formed(k, "big__input__t_______")));
        // Every ref lands on its own definition.
        let body = &doc["paths"]["/tools/big"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["properties"];
        for i in 0..8_000 {
            let r = body[format!("p{i}")]["$ref"].as_str().unwrap();
            let key = r.strip_prefix("#/components/schemas/").unwrap();
            assert_eq!(comps[key]["minimum"], json!(i), "{r}");
        }
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    }
}
