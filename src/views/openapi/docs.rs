//! `GET /<name>/docs`: a small HTML page, rendered here, listing each tool
//! with its description, its parameters and a curl example. No JavaScript
//! and nothing fetched from elsewhere: the LANs this runs on may have no
//! internet, and a page that needs a CDN would show nothing there.

use super::spec::{self, About, Extras};
use crate::http::response::{full, Body};
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};
use std::fmt::Write;

/// Text safe inside HTML elements and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An example body: each required parameter with a placeholder of its type.
fn example(schema: &Value) -> Value {
    let mut m = Map::new();
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            if !required.contains(&k.as_str()) {
                continue;
            }
            let v = match p.get("type").and_then(Value::as_str) {
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!("…"),
            };
            m.insert(k.clone(), v);
        }
    }
    Value::Object(m)
}

/// The page.
pub fn render(about: &About<'_>, tools: &[Value], extras: &Extras) -> Response<Body> {
    let name = esc(about.name);
    let base = esc(&about.base);
    let auth = if about.auth {
        " -H 'Authorization: Bearer $TOKEN'"
    } else {
        ""
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{name}: tools</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}\
         pre{{background:#f4f4f4;padding:.6em;overflow-x:auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}}</style></head><body>\
         <h1>{name}</h1><p>The MCP server <b>{name}</b> as an OpenAPI tool server. \
         Spec: <a href=\"openapi.json\">{base}/openapi.json</a>. {} tool(s).</p>",
        tools.len()
    );
    for t in tools {
        let Some(tn) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        let op = spec::operation_id(tn, about.ids);
        let desc = t.get("description").and_then(Value::as_str).unwrap_or("");
        let schema = t.get("inputSchema").cloned().unwrap_or(json!({}));
        let _ = write!(
            h,
            "<h2 id=\"{}\">{}</h2><p>operationId <code>{}</code></p><p>{}</p>",
            esc(tn),
            esc(tn),
            esc(&op),
            esc(desc)
        );
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = schema
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
        {
            h.push_str("<table><tr><th>parameter</th><th>type</th><th>required</th><th>description</th></tr>");
            for (k, p) in props {
                let ty = match p.get("type") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None if p.get("$ref").is_some() => "object".into(),
                    None => "any".into(),
                };
                let d = p.get("description").and_then(Value::as_str).unwrap_or("");
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(k),
                    esc(&ty),
                    if required.contains(&k.as_str()) {
                        "yes"
                    } else {
                        ""
                    },
                    esc(d)
                );
            }
            h.push_str("</table>");
        }
        let body = example(&schema).to_string().replace('\'', "'\\''");
        let _ = write!(
            h,
            "<pre>curl -X POST{auth} -H 'Content-Type: application/json' \\\n  -d '{}' \\\n  '{}/tools/{}'</pre>",
            esc(&body),
            base,
            esc(&spec::segment(tn))
        );
    }
    if extras.resources || extras.prompts.is_some() {
        h.push_str("<h2>Resources and prompts</h2><ul>");
        if extras.resources {
            let _ = write!(
                h,
                "<li><code>GET {base}/resources</code>, <code>GET {base}/resources/read?uri=…</code></li>"
            );
        }
        if let Some(p) = &extras.prompts {
            let _ = write!(
                h,
                "<li><code>GET {base}/prompts</code>, <code>POST {base}/prompts/&lt;name&gt;</code> ({} prompt(s))</li>",
                p.len()
            );
        }
        h.push_str("</ul>");
    }
    if !extras.resources && extras.prompts.is_none() {
        // Say why they are missing: MCPO's view is tools only, and so is this
        // one unless the config opts in.
        h.push_str(
            "<p>Tools only: resources and prompts are served here when the config sets \
             <code>\"openapi\": {\"resources\": true, \"prompts\": true}</code>.</p>",
        );
    }
    h.push_str("</body></html>");
    let mut r = Response::new(full(h));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_has_no_scripts() {
        let about = About {
            name: "s<x>",
            base: "/s".into(),
            auth: true,
            ids: Default::default(),
        };
        let tools = vec![
            json!({"name": "t", "description": "<script>alert(1)</script>",
            "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}),
        ];
        let r = render(&about, &tools, &Extras::default());
        let body =
            futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(r.into_body()))
                .unwrap()
                .unwrap()
                .to_bytes();
        let s = String::from_utf8(body.to_vec()).unwrap();
        assert!(!s.contains("<script"), "{s}");
        assert!(s.contains("s&lt;x&gt;"));
        assert!(s.contains("{&quot;q&quot;:&quot;…&quot;}"), "{s}");
        assert!(s.contains("Authorization: Bearer"));
    }
}
