//! A tool's input schema placed in an OpenAPI document.
//!
//! Tool schemas are JSON Schema documents of their own: their `$ref`s point
//! into themselves (`#/$defs/x`, sometimes `#` or `#/properties/…`). In an
//! OpenAPI document `#` is the OpenAPI document, and Open WebUI resolves only
//! `#/components/schemas/…`. So each tool's `$defs` (and draft-07
//! `definitions`) move to `components/schemas` under a name prefixed with the
//! tool's, and every internal ref is rewritten to point there; a schema that
//! refers to its own root is itself moved to `components/schemas` and the
//! operation refers to it.

use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A name usable as a `components/schemas` key (`^[a-zA-Z0-9._-]+$`).
pub(super) fn component_key(s: &str) -> String {
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

/// The document's `components/schemas`, with what each wanted key was last
/// suffixed with: a key that collides (after [`component_key`] many names
/// do) gets the next free `_<n>` in one probe, not a scan from `_2`.
pub(super) struct Components {
    pub(super) schemas: Map<String, Value>,
    next: HashMap<String, usize>,
}

impl Components {
    /// Components holding `schemas` to begin with.
    pub(super) fn new(schemas: Map<String, Value>) -> Components {
        Components {
            schemas,
            next: HashMap::new(),
        }
    }

    /// A key free now: `want`, else `want_<n>`.
    fn free_key(&mut self, want: &str) -> String {
        if !self.schemas.contains_key(want) {
            return want.to_string();
        }
        let n = self.next.entry(want.to_string()).or_insert(2);
        loop {
            let key = format!("{want}_{n}");
            *n += 1;
            if !self.schemas.contains_key(&key) {
                return key;
            }
        }
    }

    /// The key `def` goes under: `want` when that already holds the same
    /// schema (two tools sharing a definition share it), else a free one.
    fn claim(&mut self, want: &str, def: &Value) -> String {
        match self.schemas.get(want) {
            Some(v) if v == def => want.to_string(),
            _ => self.free_key(want),
        }
    }
}

/// Moves a tool schema's definitions into `components`, rewriting its refs.
/// Returns the schema to use in place (the schema itself, or a ref to it
/// when it refers to its own root).
pub(super) fn hoist(schema: &Value, prefix: &str, components: &mut Components) -> Value {
    let mut schema = schema.clone();
    // "#/$defs/<escaped name>" → the component key it moved to.
    let mut renames: HashMap<String, String> = HashMap::new();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        for kw in ["$defs", "definitions"] {
            let Some(Value::Object(defs)) = obj.remove(kw) else {
                continue;
            };
            for (name, def) in defs {
                let key = components.claim(&component_key(&format!("{prefix}__{name}")), &def);
                renames.insert(format!("#/{kw}/{}", escape_pointer(&name)), key.clone());
                components.schemas.insert(key, def);
            }
        }
    }
    let root_key = components.free_key(&component_key(&format!("{prefix}__root")));
    let mut self_ref = false;
    rewrite_refs(&mut schema, &renames, &root_key, &mut self_ref);
    let mut moved: Vec<&String> = renames.values().collect();
    moved.sort_unstable();
    moved.dedup();
    for key in moved {
        if let Some(def) = components.schemas.get_mut(key.as_str()) {
            rewrite_refs(def, &renames, &root_key, &mut self_ref);
        }
    }
    if self_ref {
        components.schemas.insert(root_key.clone(), schema);
        return json!({"$ref": format!("#/components/schemas/{root_key}")});
    }
    schema
}

pub(super) fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Rewrites every internal `$ref` under `v`: into a hoisted definition when
/// it names one, else onto the hoisted root (and says so in `self_ref`).
/// External refs stay as they are.
fn rewrite_refs(v: &mut Value, renames: &HashMap<String, String>, root: &str, self_ref: &mut bool) {
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
    renames: &HashMap<String, String>,
    root: &str,
    self_ref: &mut bool,
) -> Option<String> {
    if !r.starts_with('#') || r.starts_with("#/components/") {
        return None;
    }
    // "#/$defs/<name>" and what follows it: one lookup, whatever the number of defs.
    for kw in ["#/$defs/", "#/definitions/"] {
        if let Some(after) = r.strip_prefix(kw) {
            let end = kw.len() + after.find('/').unwrap_or(after.len());
            if let Some(to) = renames.get(&r[..end]) {
                return Some(format!("#/components/schemas/{to}{}", &r[end..]));
            }
        }
    }
    *self_ref = true;
    Some(format!("#/components/schemas/{root}{}", &r[1..]))
}
