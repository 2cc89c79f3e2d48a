//! JSON-RPC 2.0 messages as the hub moves them: an opaque, byte-exact [`Message`].
//!
//! The envelope (`id`, `method`) is parsed; every body (`params`, `result`,
//! `error`, unknown top-level keys) stays the raw JSON text it arrived as
//! (`serde_json::value::RawValue`). So `1.50`, `1e400`, a 24-digit integer, a
//! `"\u00e9"` escape and key order reach the other side byte for byte, and a
//! message the hub only forwards costs no DOM. Where the hub must look inside a
//! body (a tool name, a progress token) it parses just that, lazily; where it
//! must edit one (an id inside `params`), it splices raw values, so everything
//! it does not touch stays as written. Nothing here knows about MCP.

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// Standard JSON-RPC error codes.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server error: the upstream is unavailable or failed.
pub const UPSTREAM_ERROR: i64 = -32000;
/// Implementation-defined server error: the upstream did not answer in time.
pub const TIMEOUT_ERROR: i64 = -32001;
/// The request was cancelled (LSP's RequestCancelled, which MCP SDKs reuse).
pub const CANCELLED: i64 = -32800;

/// A request id: a number (kept as its exact JSON text) or a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    Num(Box<str>),
    Str(Box<str>),
}

impl Id {
    /// Reads an id from its raw JSON; `None` for null, objects, arrays, bools.
    pub fn from_raw(raw: &RawValue) -> Option<Id> {
        let t = raw.get().trim();
        match t.as_bytes().first()? {
            b'"' => serde_json::from_str::<String>(t)
                .ok()
                .map(|s| Id::Str(s.into())),
            b'-' | b'0'..=b'9' => Some(Id::Num(t.into())),
            _ => None,
        }
    }

    pub fn from_value(v: &Value) -> Option<Id> {
        match v {
            Value::Number(n) => Some(Id::Num(n.to_string().into())),
            Value::String(s) => Some(Id::Str(s.as_str().into())),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.to_json()).unwrap_or(Value::Null)
    }

    /// The id as JSON text.
    pub fn to_json(&self) -> String {
        match self {
            Id::Num(n) => n.to_string(),
            Id::Str(s) => serde_json::to_string(&**s).unwrap_or_default(),
        }
    }

    fn to_raw(&self) -> Box<RawValue> {
        raw(self.to_json())
    }

    /// The numeric value when the id is a non-negative integer; the hub's own ids are.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Id::Num(n) => n.parse().ok(),
            Id::Str(_) => None,
        }
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Num(n.to_string().into())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
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

/// Raw JSON text that the hub built itself, so it is valid by construction.
fn raw(text: String) -> Box<RawValue> {
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

fn raw_of(v: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// One JSON-RPC message: a parsed envelope around raw bodies.
#[derive(Clone, Debug)]
pub struct Message {
    id: Option<Id>,
    method: Option<Box<str>>,
    params: Option<Box<RawValue>>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
    /// Top-level keys the hub does not know, in order, as written.
    extra: Vec<(Box<str>, Box<RawValue>)>,
    /// What the hub reads of `params` on every request, when it was found
    /// ahead ([`Message::warm`]; boxed: every message carries the slot, few
    /// fill it).
    known: Option<Box<Known>>,
}

/// `params.name` and `params._meta.progressToken`, found in one pass and
/// kept: the session reads them under its router's lock, and a large
/// request's are found off the async workers when it is parsed
/// ([`Message::warm`]).
#[derive(Clone, Debug, Default)]
struct Known {
    name: Option<Box<RawValue>>,
    progress: Option<Box<RawValue>>,
}

impl Known {
    fn of(params: &RawValue) -> Known {
        let (name, progress) = member::name_and_progress(params.get());
        Known {
            name: name.map(ToOwned::to_owned),
            progress: progress.map(ToOwned::to_owned),
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Message {
    /// Reads one message from its JSON text.
    pub fn parse(text: &[u8]) -> Result<Message, BodyError> {
        let map: IndexMap<String, Box<RawValue>> = match serde_json::from_slice(text) {
            Ok(m) => m,
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                return Err(Invalid::NotAnObject.into())
            }
            Err(e) => return Err(BodyError::Parse(e.to_string())),
        };
        Ok(Self::from_map(map)?)
    }

    fn from_raw(r: &RawValue) -> Result<Message, Invalid> {
        let map: IndexMap<String, Box<RawValue>> =
            serde_json::from_str(r.get()).map_err(|_| Invalid::NotAnObject)?;
        Self::from_map(map)
    }

    fn from_map(map: IndexMap<String, Box<RawValue>>) -> Result<Message, Invalid> {
        let mut m = Message {
            id: None,
            method: None,
            params: None,
            result: None,
            error: None,
            extra: Vec::new(),
            known: Default::default(),
        };
        let mut version = false;
        for (k, v) in map {
            match k.as_str() {
                "jsonrpc" => version = v.get().trim() == "\"2.0\"",
                "id" => {
                    if v.get().trim() != "null" {
                        m.id = Some(Id::from_raw(&v).ok_or(Invalid::Id)?);
                    }
                }
                "method" => {
                    let s: String = serde_json::from_str(v.get()).map_err(|_| Invalid::Method)?;
                    m.method = Some(s.into());
                }
                "params" => m.params = Some(v),
                "result" => m.result = Some(v),
                "error" => m.error = Some(v),
                _ => m.extra.push((k.into(), v)),
            }
        }
        if !version {
            return Err(Invalid::Version);
        }
        m.kind()?;
        Ok(m)
    }

    /// Validates the envelope of a parsed value (tests and hub-built messages).
    pub fn from_value(v: Value) -> Result<Message, Invalid> {
        if !v.is_object() {
            return Err(Invalid::NotAnObject);
        }
        Self::from_raw(&raw_of(&v))
    }

    pub fn kind(&self) -> Result<Kind<'_>, Invalid> {
        match (&self.method, &self.id) {
            (Some(method), Some(id)) => Ok(Kind::Request {
                id: id.clone(),
                method,
            }),
            (Some(method), None) => Ok(Kind::Notification { method }),
            (None, Some(id)) if self.result.is_some() || self.error.is_some() => {
                Ok(Kind::Response { id: id.clone() })
            }
            _ => Err(Invalid::Shape),
        }
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    pub fn id(&self) -> Option<&Id> {
        self.id.as_ref()
    }

    pub fn set_id(&mut self, id: Id) {
        self.id = Some(id);
    }

    pub fn is_request(&self) -> bool {
        self.method.is_some() && self.id.is_some()
    }

    pub fn is_response(&self) -> bool {
        self.method.is_none()
    }

    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    /// The error's code, for a response that is an error.
    pub fn error_code(&self) -> Option<i64> {
        #[derive(serde::Deserialize)]
        struct E {
            code: i64,
        }
        let e: E = serde_json::from_str(self.error.as_ref()?.get()).ok()?;
        Some(e.code)
    }

    pub fn error_raw(&self) -> Option<&RawValue> {
        self.error.as_deref()
    }

    pub fn params_raw(&self) -> Option<&RawValue> {
        self.params.as_deref()
    }

    pub fn result_raw(&self) -> Option<&RawValue> {
        self.result.as_deref()
    }

    /// One top-level field of `params`, parsed as `T`.
    pub fn param<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        if key == "name" {
            return serde_json::from_str(self.known()?.name.as_deref()?.get()).ok();
        }
        field(self.params.as_deref()?, key)
    }

    /// What the hub reads of `params`: as found ahead, or found now.
    fn known(&self) -> Option<std::borrow::Cow<'_, Known>> {
        if let Some(k) = &self.known {
            return Some(std::borrow::Cow::Borrowed(k));
        }
        Some(std::borrow::Cow::Owned(Known::of(self.params.as_deref()?)))
    }

    /// Finds what the hub reads of `params` now, so a large message (parsed
    /// off the async workers) costs them no scan of it later.
    pub fn warm(&mut self) {
        if self.known.is_some() {
            return;
        }
        if let Some(p) = &self.params {
            self.known = Some(Box::new(Known::of(p)));
        }
    }

    /// What the hub reads of `params` (`name`, `_meta.progressToken`), from
    /// a caller that found them in a pass of its own: nothing is scanned for
    /// them again.
    pub fn know(&mut self, name: Option<Box<RawValue>>, progress: Option<Box<RawValue>>) {
        if self.params.is_some() {
            self.known = Some(Box::new(Known { name, progress }));
        }
    }

    /// One top-level field of `result`, parsed as `T`.
    pub fn result_field<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        field(self.result.as_deref()?, key)
    }

    /// `params` parsed whole (for the few places that need a DOM).
    pub fn params_value(&self) -> Option<Value> {
        serde_json::from_str(self.params.as_ref()?.get()).ok()
    }

    /// `params._meta.progressToken`, as raw JSON, when a request asks for progress.
    pub fn progress_token(&self) -> Option<Box<RawValue>> {
        match self.known()? {
            std::borrow::Cow::Borrowed(k) => k.progress.clone(),
            std::borrow::Cow::Owned(k) => k.progress,
        }
    }

    /// `params` changed: what was found in it is found again when asked.
    fn set_params(&mut self, params: Box<RawValue>) {
        self.params = Some(params);
        self.known = None;
    }

    /// Replaces `params._meta.progressToken`; everything else stays as written.
    pub fn set_progress_token(&mut self, token: &RawValue) {
        let Some(p) = &self.params else { return };
        let Some(edited) = edit(p, |params| {
            let meta = params.get("_meta")?;
            let new_meta = edit(meta, |m| {
                m.insert("progressToken".into(), token.to_owned());
                Some(())
            })?;
            params.insert("_meta".into(), new_meta);
            Some(())
        }) else {
            return;
        };
        self.set_params(edited);
    }

    /// Sets one top-level field of `params` (a notification's `progressToken`
    /// or `requestId`); everything else stays as written.
    pub fn set_param(&mut self, key: &str, value: &RawValue) {
        let Some(p) = &self.params else {
            // A message sent with no params (a bare notification) gets them.
            let mut m = IndexMap::new();
            m.insert(key.to_owned(), value.to_owned());
            self.set_params(raw_of(&m));
            return;
        };
        if let Some(edited) = edit(p, |m| {
            m.insert(key.into(), value.to_owned());
            Some(())
        }) {
            self.set_params(edited);
        }
    }

    /// Removes one top-level field of `params`.
    pub fn remove_param(&mut self, key: &str) {
        let Some(p) = &self.params else { return };
        if let Some(edited) = edit(p, |m| m.shift_remove(key).map(|_| ())) {
            self.set_params(edited);
        }
    }

    /// Sets one top-level field of `result` (a cached initialize's
    /// `protocolVersion`).
    pub fn set_result_field(&mut self, key: &str, value: &RawValue) {
        let Some(r) = &self.result else { return };
        if let Some(edited) = edit(r, |m| {
            m.insert(key.into(), value.to_owned());
            Some(())
        }) {
            self.result = Some(edited);
        }
    }

    pub fn set_result_raw(&mut self, result: Box<RawValue>) {
        self.result = Some(result);
    }

    pub fn set_params_raw(&mut self, params: Box<RawValue>) {
        self.set_params(params);
    }

    /// Replaces `params` with a rewrite that keeps `name` and
    /// `_meta.progressToken` as they were (the modern keys stripped), so
    /// what was found in them ahead stays found.
    pub fn set_params_keeping_known(&mut self, params: Box<RawValue>) {
        self.params = Some(params);
    }

    pub fn request(id: Id, method: &str, params: Value) -> Message {
        Message {
            id: Some(id),
            method: Some(method.into()),
            params: Some(raw_of(&params)),
            result: None,
            error: None,
            extra: Vec::new(),
            known: Default::default(),
        }
    }

    pub fn notification(method: &str, params: Option<Value>) -> Message {
        Message {
            id: None,
            method: Some(method.into()),
            params: params.map(|p| raw_of(&p)),
            result: None,
            error: None,
            extra: Vec::new(),
            known: Default::default(),
        }
    }

    pub fn response(id: Id, result: Value) -> Message {
        Self::response_raw(id, raw_of(&result))
    }

    pub fn response_raw(id: Id, result: Box<RawValue>) -> Message {
        Message {
            id: Some(id),
            method: None,
            params: None,
            result: Some(result),
            error: None,
            extra: Vec::new(),
            known: Default::default(),
        }
    }

    /// An error response. `id` is `None` only when the request's id could not be read.
    pub fn error(id: Option<Id>, code: i64, message: impl Into<String>) -> Message {
        Self::error_with(id, code, message, None)
    }

    /// An error response with `data`.
    pub fn error_with(
        id: Option<Id>,
        code: i64,
        message: impl Into<String>,
        data: Option<Value>,
    ) -> Message {
        let mut e = serde_json::Map::new();
        e.insert("code".into(), code.into());
        e.insert("message".into(), Value::String(message.into()));
        if let Some(d) = data {
            e.insert("data".into(), d);
        }
        Message {
            id,
            method: None,
            params: None,
            result: None,
            error: Some(raw_of(&e)),
            extra: Vec::new(),
            known: Default::default(),
        }
    }

    /// The size of the bodies, for queue accounting (the envelope is small).
    pub fn weight(&self) -> usize {
        let body = |r: &Option<Box<RawValue>>| r.as_ref().map_or(0, |r| r.get().len());
        64 + body(&self.params)
            + body(&self.result)
            + body(&self.error)
            + self
                .extra
                .iter()
                .map(|(k, v)| k.len() + v.get().len())
                .sum::<usize>()
    }

    /// Appends the message's JSON text to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\"");
        let mut put = |k: &str, v: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(v.as_bytes());
        };
        match &self.id {
            Some(id) => put("id", &id.to_json()),
            None if self.method.is_none() => put("id", "null"),
            None => {}
        }
        if let Some(m) = &self.method {
            put("method", &serde_json::to_string(&**m).unwrap_or_default());
        }
        for (k, v) in [
            ("params", &self.params),
            ("result", &self.result),
            ("error", &self.error),
        ] {
            if let Some(v) = v {
                put(k, v.get());
            }
        }
        for (k, v) in &self.extra {
            let key = serde_json::to_string(&**k).unwrap_or_default();
            out.extend_from_slice(b",");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b":");
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.weight() + 32);
        self.write_to(&mut out);
        out
    }

    /// The message as a DOM (tests, and the rare edit that needs one).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.to_bytes()).unwrap_or(Value::Null)
    }
}

/// Parses one top-level field of a raw JSON object as `T`.
fn field<T: DeserializeOwned>(obj: &RawValue, key: &str) -> Option<T> {
    serde_json::from_str(member(obj.get(), key)?.get()).ok()
}

/// Edits a raw JSON object through its top-level fields; `None` when it is
/// not an object or `f` declines. Untouched values are copied as written.
fn edit(
    obj: &RawValue,
    f: impl FnOnce(&mut IndexMap<String, Box<RawValue>>) -> Option<()>,
) -> Option<Box<RawValue>> {
    let mut map: IndexMap<String, Box<RawValue>> = serde_json::from_str(obj.get()).ok()?;
    f(&mut map)?;
    Some(raw_of(&map))
}

/// Keeps only the items of `result[key]` (an array of objects) that `keep`
/// accepts, reading each item's `name`: the tool filter on `tools/list`. Items
/// stay as written.
pub fn retain_named(
    result: &RawValue,
    key: &str,
    keep: impl Fn(&str) -> bool,
) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(default)]
        name: String,
    }
    edit(result, |m| {
        let items: Vec<Box<RawValue>> = serde_json::from_str(m.get(key)?.get()).ok()?;
        let kept: Vec<Box<RawValue>> = items
            .into_iter()
            .filter(|t| serde_json::from_str::<Named>(t.get()).is_ok_and(|n| keep(&n.name)))
            .collect();
        m.insert(key.into(), raw_of(&kept));
        Some(())
    })
}

/// Raw JSON for a value the hub builds (an id, a token).
pub fn to_raw(v: &impl serde::Serialize) -> Box<RawValue> {
    raw_of(v)
}

impl Id {
    /// The id as raw JSON, to splice into a body.
    pub fn raw(&self) -> Box<RawValue> {
        self.to_raw()
    }
}

mod body;
pub use body::{parse_body, salvage_id, BodyError, Incoming};
mod member;
pub use member::member;

#[cfg(test)]
mod tests;
