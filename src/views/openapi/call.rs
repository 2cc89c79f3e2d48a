//! One operation: the HTTP body checked and turned into an MCP request, and
//! the MCP answer turned into the HTTP response MCPO (0.0.20) would give, or
//! a better one where MCPO loses data.
//!
//! Kept from MCPO: a tool's content becomes the body, one item bare and
//! several as an array; text that parses as JSON is returned parsed; images
//! are `data:` URIs. A result with `isError` is 500
//! `{"detail": {"message": <first text>}}`; JSON-RPC errors map by code
//! (-32700 and -32600 to 400, -32601 to 404, -32602 to 422, others to 500)
//! with `{"detail": {"message", "data"?}}`. Input that is not a JSON object
//! or does not fit the tool's `inputSchema` is 422 with FastAPI's
//! `{"detail": [{"type", "loc", "msg"}]}` shape, and never reaches the server.
//!
//! Better than MCPO: `structuredContent` is returned as it is when the tool
//! gives it (MCPO drops it); embedded resources are their text (parsed when
//! JSON) or their blob as a `data:` URI (MCPO says "not supported"); audio is
//! a `data:` URI and a resource link its own object (MCPO drops both).

use crate::jsonrpc::{Message, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use http::StatusCode;
use serde_json::{json, Map, Value};

/// An HTTP answer: status and JSON body.
pub type Reply = (StatusCode, Value);

/// FastAPI's error body for input that does not fit.
pub fn invalid_input(errors: Vec<Value>) -> Reply {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "detail": errors }),
    )
}

/// `{"detail": {"message": …}}` with a status.
pub fn detail(status: StatusCode, message: impl Into<String>) -> Reply {
    (status, json!({"detail": {"message": message.into()}}))
}

/// The request body as the tool's arguments: an empty body is no arguments;
/// anything but a JSON object is refused.
pub fn arguments(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match arguments_value(body)? {
        Value::Object(o) => Ok(o),
        _ => Ok(Map::new()),
    }
}

/// [`arguments`] as the `Value` it parsed (an object), parsed once and kept
/// whole for the schema check and the request.
pub fn arguments_value(body: &[u8]) -> Result<Value, Reply> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(invalid_input(vec![json!({
            "type": "object_type",
            "loc": ["body"],
            "msg": format!("the body must be a JSON object of the tool's arguments, not {}", kind(&other)),
        })])),
        Err(e) => Err(invalid_input(vec![json!({
            "type": "json_invalid",
            "loc": ["body", e.column()],
            "msg": format!("JSON decode error: {e}"),
        })])),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The HTTP status MCPO gives a JSON-RPC error code.
fn rpc_status(code: i64) -> StatusCode {
    match code {
        PARSE_ERROR | INVALID_REQUEST => StatusCode::BAD_REQUEST,
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        INVALID_PARAMS => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON-RPC error as MCPO renders it.
pub fn rpc_error(m: &Message) -> Option<Reply> {
    let code = m.error_code()?;
    let e: Value = m
        .error_raw()
        .and_then(|e| serde_json::from_str(e.get()).ok())
        .unwrap_or_default();
    let mut d = json!({"message": e.get("message").cloned().unwrap_or(json!("error"))});
    if let Some(data) = e.get("data").filter(|d| !d.is_null()) {
        d["data"] = data.clone();
    }
    Some((rpc_status(code), json!({ "detail": d })))
}

fn result(m: &Message) -> Value {
    m.result_raw()
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default()
}

/// A `tools/call` answer as the HTTP response.
pub fn tool_reply(m: &Message) -> Reply {
    if let Some(r) = rpc_error(m) {
        return r;
    }
    let r = result(m);
    let content = r.get("content").and_then(Value::as_array);
    if r.get("isError").and_then(Value::as_bool) == Some(true) {
        let message = content
            .and_then(|c| c.first())
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
            .and_then(|c| c.get("text").and_then(Value::as_str))
            .unwrap_or("Unknown tool execution error");
        return detail(StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    if let Some(s) = r.get("structuredContent").filter(|s| !s.is_null()) {
        return (StatusCode::OK, s.clone());
    }
    let items: Vec<Value> = content.into_iter().flatten().map(item).collect();
    (StatusCode::OK, bare_or_array(items))
}

fn bare_or_array(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items.pop().unwrap_or_default()
    } else {
        Value::Array(items)
    }
}

/// Text as JSON when it parses, else as the string it is.
fn text(t: &str) -> Value {
    serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string()))
}

fn data_uri(mime: Option<&Value>, data: &str) -> Value {
    let mime = mime
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    Value::String(format!("data:{mime};base64,{data}"))
}

/// One content item.
fn item(c: &Value) -> Value {
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    match s("type") {
        Some("text") => text(s("text").unwrap_or("")),
        Some("image") | Some("audio") => data_uri(c.get("mimeType"), s("data").unwrap_or("")),
        Some("resource") => resource_contents(c.get("resource").unwrap_or(&Value::Null)),
        _ => c.clone(),
    }
}

/// One resource's contents: its text, or its blob as a `data:` URI.
fn resource_contents(r: &Value) -> Value {
    if let Some(t) = r.get("text").and_then(Value::as_str) {
        return text(t);
    }
    if let Some(b) = r.get("blob").and_then(Value::as_str) {
        return data_uri(r.get("mimeType"), b);
    }
    r.clone()
}

/// A `resources/read` answer: its contents, mapped like embedded resources.
pub fn resource_reply(m: &Message) -> Reply {
    if let Some(mut r) = rpc_error(m) {
        // -32002 is MCP's "resource not found".
        if m.error_code() == Some(-32002) {
            r.0 = StatusCode::NOT_FOUND;
        }
        return r;
    }
    let r = result(m);
    let items: Vec<Value> = r
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(resource_contents)
        .collect();
    (StatusCode::OK, bare_or_array(items))
}

/// Any other answer (lists, prompts/get): the result as it is.
pub fn plain_reply(m: &Message) -> Reply {
    match rpc_error(m) {
        Some(r) => r,
        None => (StatusCode::OK, result(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::Id;

    fn ok(result: Value) -> Message {
        Message::response(Id::Num("1".into()), result)
    }

    #[test]
    fn content_maps_as_mcpo_does_and_better() {
        let one = ok(json!({"content": [{"type": "text", "text": "{\"a\":1}"}]}));
        assert_eq!(tool_reply(&one), (StatusCode::OK, json!({"a": 1})));
        let plain = ok(json!({"content": [{"type": "text", "text": "hi"}]}));
        assert_eq!(tool_reply(&plain).1, json!("hi"));
        let many = ok(json!({"content": [{"type": "text", "text": "x"},
            {"type": "image", "data": "AAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "a://b", "blob": "QQ==", "mimeType": "text/x"}}]}));
        assert_eq!(
            tool_reply(&many).1,
            json!(["x", "data:image/png;base64,AAA", "data:text/x;base64,QQ=="])
        );
        let none = ok(json!({"content": []}));
        assert_eq!(tool_reply(&none).1, json!([]));
        let structured =
            ok(json!({"content": [{"type": "text", "text": "x"}], "structuredContent": {"n": 2}}));
        assert_eq!(tool_reply(&structured).1, json!({"n": 2}));
        let failed = ok(json!({"isError": true, "content": [{"type": "text", "text": "boom"}]}));
        assert_eq!(
            tool_reply(&failed),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"detail": {"message": "boom"}})
            )
        );
    }

    #[test]
    fn errors_map_by_code() {
        let e = |code| Message::error(Some(Id::Num("1".into())), code, "m");
        assert_eq!(tool_reply(&e(-32601)).0, StatusCode::NOT_FOUND);
        assert_eq!(tool_reply(&e(-32602)).0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(tool_reply(&e(-32600)).0, StatusCode::BAD_REQUEST);
        assert_eq!(tool_reply(&e(-32000)).0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            tool_reply(&e(-32602)).1,
            json!({"detail": {"message": "m"}})
        );
    }

    #[test]
    fn bodies_and_schemas_are_checked() {
        assert!(arguments(b"").unwrap().is_empty());
        assert_eq!(arguments(b"[1]").unwrap_err().0, 422);
        assert_eq!(arguments(b"{").unwrap_err().0, 422);
        let schema: std::sync::Arc<str> =
            r#"{"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}"#
                .into();
        let check = |body: &'static str| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(super::super::body::check(body.into(), Some(schema.clone())))
                .map(|c| c.args)
        };
        assert!(check(r#"{"a": 1}"#).is_ok());
        let (status, body) = check(r#"{"a": "x"}"#).unwrap_err();
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["loc"], json!(["body", "a"]));
        assert_eq!(body["detail"][0]["type"], "type");
        let (_, body) = check("").unwrap_err();
        assert_eq!(body["detail"][0]["type"], "required");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "a"]));
    }
}
