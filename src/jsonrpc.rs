//! JSON-RPC 2.0 messages as the hub moves them.
//!
//! A [`Message`] is the raw JSON object, so that everything the hub does not need
//! to understand (unknown methods, unknown fields, `_meta`) is forwarded byte for
//! byte in meaning. The hub only reads the envelope (`id`, `method`) and rewrites
//! the few fields a proxy must own. Nothing here knows about MCP.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Standard JSON-RPC error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server error: the upstream is unavailable or failed.
pub const UPSTREAM_ERROR: i64 = -32000;
/// Implementation-defined server error: the upstream did not answer in time.
pub const TIMEOUT_ERROR: i64 = -32001;

/// A request id: a string or a number, never null once a request is valid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Num(Number),
    Str(String),
}

impl Id {
    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => Some(Id::Num(n.clone())),
            Value::String(s) => Some(Id::Str(s.clone())),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::Number(n.clone()),
            Id::Str(s) => Value::String(s.clone()),
        }
    }

    /// The numeric value when the id is a non-negative integer; the hub's own ids are.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Num(n) => n.as_u64(),
            Id::Str(_) => None,
        }
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Num(n.into())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// What a message is, read from its envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    Request { id: Id, method: &'a str },
    Notification { method: &'a str },
    Response { id: Id },
}

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("a JSON-RPC message must be an object")]
    NotAnObject,
    #[error("\"jsonrpc\" must be \"2.0\"")]
    Version,
    #[error("\"method\" must be a string")]
    Method,
    #[error("\"id\" must be a string or a number")]
    Id,
    #[error("a message needs \"method\", or \"id\" with \"result\" or \"error\"")]
    Shape,
}

/// One JSON-RPC message, kept as the object it arrived as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Message(pub Map<String, Value>);

impl Message {
    /// Validates the envelope of a parsed value.
    pub fn from_value(v: Value) -> Result<Message, Invalid> {
        let Value::Object(map) = v else {
            return Err(Invalid::NotAnObject);
        };
        let msg = Message(map);
        msg.kind()?;
        Ok(msg)
    }

    pub fn kind(&self) -> Result<Kind<'_>, Invalid> {
        if self.0.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(Invalid::Version);
        }
        let id = match self.0.get("id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Id::from_value(v).ok_or(Invalid::Id)?),
        };
        match self.0.get("method") {
            Some(Value::String(method)) => Ok(match id {
                Some(id) => Kind::Request { id, method },
                None => Kind::Notification { method },
            }),
            Some(_) => Err(Invalid::Method),
            None => match id {
                Some(id) if self.0.contains_key("result") || self.0.contains_key("error") => {
                    Ok(Kind::Response { id })
                }
                _ => Err(Invalid::Shape),
            },
        }
    }

    pub fn method(&self) -> Option<&str> {
        self.0.get("method").and_then(Value::as_str)
    }

    pub fn id(&self) -> Option<Id> {
        self.0.get("id").and_then(Id::from_value)
    }

    pub fn set_id(&mut self, id: &Id) {
        self.0.insert("id".into(), id.to_value());
    }

    pub fn is_request(&self) -> bool {
        self.method().is_some() && self.id().is_some()
    }

    pub fn is_response(&self) -> bool {
        self.method().is_none()
    }

    pub fn params(&self) -> Option<&Value> {
        self.0.get("params")
    }

    pub fn params_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.0.get_mut("params").and_then(Value::as_object_mut)
    }

    pub fn result(&self) -> Option<&Value> {
        self.0.get("result")
    }

    pub fn result_mut(&mut self) -> Option<&mut Value> {
        self.0.get_mut("result")
    }

    /// `params._meta.progressToken`, which a request carries to ask for progress.
    pub fn progress_token(&self) -> Option<&Value> {
        self.params()?.get("_meta")?.get("progressToken")
    }

    pub fn set_progress_token(&mut self, token: Value) {
        if let Some(meta) = self
            .params_mut()
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
        {
            meta.insert("progressToken".into(), token);
        }
    }

    pub fn request(id: Id, method: &str, params: Value) -> Message {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), "2.0".into());
        m.insert("id".into(), id.to_value());
        m.insert("method".into(), method.into());
        m.insert("params".into(), params);
        Message(m)
    }

    pub fn notification(method: &str, params: Option<Value>) -> Message {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), "2.0".into());
        m.insert("method".into(), method.into());
        if let Some(p) = params {
            m.insert("params".into(), p);
        }
        Message(m)
    }

    pub fn response(id: Id, result: Value) -> Message {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), "2.0".into());
        m.insert("id".into(), id.to_value());
        m.insert("result".into(), result);
        Message(m)
    }

    /// An error response. `id` is `None` only when the request's id could not be read.
    pub fn error(id: Option<Id>, code: i64, message: impl Into<String>) -> Message {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), "2.0".into());
        m.insert("id".into(), id.map_or(Value::Null, |i| i.to_value()));
        let mut e = Map::new();
        e.insert("code".into(), code.into());
        e.insert("message".into(), Value::String(message.into()));
        m.insert("error".into(), Value::Object(e));
        Message(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}

/// A POST body: one message or a batch (2025-03-26 clients may batch).
#[derive(Debug)]
pub enum Incoming {
    Single(Message),
    Batch(Vec<Message>),
}

/// Why a body could not be read as JSON-RPC, with the response the client should get.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("invalid request: {0}")]
    Invalid(#[from] Invalid),
    #[error("invalid request: an empty batch")]
    EmptyBatch,
}

impl BodyError {
    pub fn to_message(&self) -> Message {
        let code = match self {
            BodyError::Parse(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        };
        Message::error(None, code, self.to_string())
    }
}

pub fn parse_body(bytes: &[u8]) -> Result<Incoming, BodyError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| BodyError::Parse(e.to_string()))?;
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(BodyError::EmptyBatch);
            }
            let msgs = items
                .into_iter()
                .map(Message::from_value)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Incoming::Batch(msgs))
        }
        v => Ok(Incoming::Single(Message::from_value(v)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> Message {
        Message::from_value(v).unwrap()
    }

    #[test]
    fn classifies_envelopes() {
        let r = msg(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
        assert_eq!(
            r.kind().unwrap(),
            Kind::Request {
                id: 1u64.into(),
                method: "tools/list"
            }
        );
        let n = msg(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        assert_eq!(
            n.kind().unwrap(),
            Kind::Notification {
                method: "notifications/initialized"
            }
        );
        let s = msg(json!({"jsonrpc":"2.0","id":"a","result":{}}));
        assert_eq!(
            s.kind().unwrap(),
            Kind::Response {
                id: Id::Str("a".into())
            }
        );
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert_eq!(
            Message::from_value(json!([1])).unwrap_err(),
            Invalid::NotAnObject
        );
        assert_eq!(
            Message::from_value(json!({"id":1,"method":"x"})).unwrap_err(),
            Invalid::Version
        );
        assert_eq!(
            Message::from_value(json!({"jsonrpc":"2.0","id":{},"method":"x"})).unwrap_err(),
            Invalid::Id
        );
        assert_eq!(
            Message::from_value(json!({"jsonrpc":"2.0","id":1})).unwrap_err(),
            Invalid::Shape
        );
        assert_eq!(
            Message::from_value(json!({"jsonrpc":"2.0","method":3})).unwrap_err(),
            Invalid::Method
        );
    }

    #[test]
    fn keeps_unknown_fields_and_order() {
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"x/y","params":{"z":1,"a":{"_meta":{"k":[1,2]}}},"extra":true}"#;
        let m = msg(serde_json::from_str(text).unwrap());
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), text);
    }

    #[test]
    fn parses_batches_and_reports_errors() {
        assert!(
            matches!(parse_body(b"[{\"jsonrpc\":\"2.0\",\"method\":\"a\"}]"), Ok(Incoming::Batch(v)) if v.len() == 1)
        );
        assert!(matches!(parse_body(b"{not json"), Err(BodyError::Parse(_))));
        assert!(matches!(parse_body(b"[]"), Err(BodyError::EmptyBatch)));
        let e = parse_body(b"{oops").unwrap_err().to_message();
        assert_eq!(e.0["error"]["code"], json!(PARSE_ERROR));
    }

    #[test]
    fn rewrites_progress_token() {
        let mut m = msg(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":"t"}}}),
        );
        assert_eq!(m.progress_token(), Some(&json!("t")));
        m.set_progress_token(json!(42));
        assert_eq!(m.progress_token(), Some(&json!(42)));
    }
}
