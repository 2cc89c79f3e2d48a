//! The OpenAPI 3.1 document of one backend, made from its `tools/list` (after
//! the tool filter, which the session layer applied) and, when it has them,
//! its prompts and resources.
//!
//! Tool schemas are JSON Schema documents of their own: their `$ref`s point
//! into themselves (`#/$defs/x`, sometimes `#` or `#/properties/…`). In an
//! OpenAPI document `#` is the OpenAPI document, and Open WebUI resolves only
//! `#/components/schemas/…`. So each tool's `$defs` (and draft-07
//! `definitions`) move to `components/schemas` under a name prefixed with the
//! tool's, and every internal ref is rewritten to point there; a schema that
//! refers to its own root is itself moved to `components/schemas` and the
//! operation refers to it.

use crate::config::openapi::OperationIds;
use serde_json::{json, Map, Value};

/// What the document describes besides tools.
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

/// A name usable as a `components/schemas` key (`^[a-zA-Z0-9._-]+$`).
fn component_key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
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

/// Moves a tool schema's definitions into `components`, rewriting its refs.
/// Returns the schema to use in place (the schema itself, or a ref to it
/// when it refers to its own root).
fn hoist(schema: &Value, prefix: &str, components: &mut Map<String, Value>) -> Value {
    let mut schema = schema.clone();
    let mut renames: Vec<(String, String)> = Vec::new();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        for kw in ["$defs", "definitions"] {
            let Some(Value::Object(defs)) = obj.remove(kw) else {
                continue;
            };
            for (name, def) in defs {
                let key = unique_key(
                    components,
                    &component_key(&format!("{prefix}__{name}")),
                    &def,
                );
                renames.push((format!("#/{kw}/{}", escape_pointer(&name)), key.clone()));
                components.insert(key, def);
            }
        }
    }
    let root_key = component_key(&format!("{prefix}__root"));
    let mut self_ref = false;
    let rewrite = |v: &mut Value, self_ref: &mut bool| {
        rewrite_refs(v, &renames, &root_key, self_ref);
    };
    rewrite(&mut schema, &mut self_ref);
    for (_, key) in &renames {
        if let Some(mut def) = components.remove(key) {
            rewrite(&mut def, &mut self_ref);
            components.insert(key.clone(), def);
        }
    }
    if self_ref {
        components.insert(root_key.clone(), schema);
        return json!({"$ref": format!("#/components/schemas/{root_key}")});
    }
    schema
}

/// A key not yet taken by a different schema.
fn unique_key(components: &Map<String, Value>, want: &str, def: &Value) -> String {
    let mut key = want.to_string();
    let mut n = 2;
    while components.get(&key).is_some_and(|v| v != def) {
        key = format!("{want}_{n}");
        n += 1;
    }
    key
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Rewrites every internal `$ref` under `v`: into a hoisted definition when
/// it names one, else onto the hoisted root (and says so in `self_ref`).
/// External refs stay as they are.
fn rewrite_refs(v: &mut Value, renames: &[(String, String)], root: &str, self_ref: &mut bool) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(new) = rewrite_one(r, renames, root, self_ref) {
                    *r = new;
                }
            }
            for (k, child) in o.iter_mut() {
                // `const`, `enum`, `default` and `examples` hold data, not schemas.
                if !matches!(k.as_str(), "const" | "enum" | "default" | "examples") {
                    rewrite_refs(child, renames, root, self_ref);
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                rewrite_refs(child, renames, root, self_ref);
            }
        }
        _ => {}
    }
}

fn rewrite_one(
    r: &str,
    renames: &[(String, String)],
    root: &str,
    self_ref: &mut bool,
) -> Option<String> {
    if !r.starts_with('#') || r.starts_with("#/components/") {
        return None;
    }
    for (from, to) in renames {
        if let Some(rest) = r.strip_prefix(from.as_str()) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some(format!("#/components/schemas/{to}{rest}"));
            }
        }
    }
    *self_ref = true;
    Some(format!("#/components/schemas/{root}{}", &r[1..]))
}

/// The document.
pub fn build(about: &About<'_>, tools: &[Value], extras: &Extras) -> Value {
    let mut components = common_components();
    let mut paths = Map::new();
    let mut taken = std::collections::HashSet::new();
    for tool in tools {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        let op_id = operation_id(name, about.ids);
        taken.insert(op_id.clone());
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
        paths.insert(format!("/tools/{}", segment(name)), json!({ "post": op }));
    }
    let free_id = |want: &str, taken: &mut std::collections::HashSet<String>| {
        let mut id = want.to_string();
        while taken.contains(&id) {
            id.push('_');
        }
        taken.insert(id.clone());
        id
    };
    if extras.resources {
        let mut list = json!({
            "operationId": free_id("list_resources", &mut taken),
            "summary": "List resources",
            "description": "The server's resources (resources/list): uri, name, description and mimeType of each.",
            "tags": ["resources"],
            "responses": {"200": {"description": "resources/list's result", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "503": error_response("The server is not available now")},
        });
        add_auth(&mut list, about.auth);
        let mut read = json!({
            "operationId": free_id("read_resource", &mut taken),
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
            "operationId": free_id("list_prompts", &mut taken),
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
                "operationId": free_id(&format!("prompt_{name}"), &mut taken),
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
            paths.insert(format!("/prompts/{}", segment(name)), json!({ "post": op }));
        }
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": about.name,
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("The MCP server {:?} through mcp-hub: one operation per tool. Human-readable: {}/docs", about.name, about.base),
        },
        "servers": [{"url": about.base}],
        "paths": paths,
        "components": {"schemas": components},
    });
    if about.auth {
        doc["components"]["securitySchemes"] =
            json!({"bearer": {"type": "http", "scheme": "bearer"}});
    }
    doc
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
}
