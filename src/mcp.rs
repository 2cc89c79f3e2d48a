//! The protocol's vocabulary, in one place: versions of both eras, the
//! reserved `_meta` keys and error codes of 2026-07-28, and how a request is
//! classified into its era. `jsonrpc` stays free of MCP; this module knows
//! MCP but not HTTP.

use crate::jsonrpc::Message;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Handshake-era versions the hub accepts from clients, newest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// What the hub asks for in its own `initialize`.
pub const LATEST_LEGACY: &str = LEGACY_VERSIONS[0];
/// Stateless-era versions, newest first.
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];
pub const LATEST_MODERN: &str = MODERN_VERSIONS[0];

pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// Header and body disagree (or a required header is missing).
pub const HEADER_MISMATCH: i64 = -32020;
/// The request needs a client capability it did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;
/// A protocol version the server does not serve.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// Every version the hub serves, both eras, newest first.
pub fn supported_versions() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(LEGACY_VERSIONS.iter())
        .copied()
        .collect()
}

/// The `data` of an unsupported-version error, as probing clients expect it.
/// A refusal never names the requested version as supported: where a
/// version the hub knows is refused (a 2026-07-28 header on a 2025 session's
/// request), the list is what that request could have used.
pub fn version_error_data(requested: &str) -> Value {
    json!({"supported": supported_except(requested), "requested": requested})
}

/// Every version the hub serves but `requested`.
pub fn supported_except(requested: &str) -> Vec<&'static str> {
    let mut v = supported_versions();
    v.retain(|x| *x != requested);
    v
}

/// Which era a message speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    Legacy,
    /// A 2026-07-28+ request, with the version its `_meta` names.
    Modern(String),
}

/// The `_meta` of a request's params, when it has one.
pub fn request_meta(m: &Message) -> Option<serde_json::Map<String, Value>> {
    m.param::<serde_json::Map<String, Value>>("_meta")
}

/// The W3C trace id a request carries in `params._meta.traceparent`, for the
/// journal's `TRACE_ID` (so log lines join the trace a client started). Only
/// a well-formed traceparent counts (`00-<32 hex>-<16 hex>-<2 hex>`, ids not
/// all zeros): the value is the client's, and only hex digits reach the log.
/// The `_meta` itself is forwarded untouched either way.
pub fn trace_id(m: &Message) -> Option<String> {
    // Most requests carry none: skip the parse.
    if !m.params_raw()?.get().contains("traceparent") {
        return None;
    }
    // Read in place: a `_meta` of many keys is not built into a map.
    let meta = crate::jsonrpc::member(m.params_raw()?.get(), "_meta")?;
    let tp: String =
        serde_json::from_str(crate::jsonrpc::member(meta.get(), "traceparent")?.get()).ok()?;
    traceparent_id(&tp).map(str::to_string)
}

/// The trace id of a W3C `traceparent` header value.
pub fn traceparent_id(tp: &str) -> Option<&str> {
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let mut parts = tp.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four parts; later versions may add more.
    if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    if !hex(trace, 32) || zero(trace) || !hex(parent, 16) || zero(parent) || !hex(flags, 2) {
        return None;
    }
    Some(trace)
}

/// A request is modern when its `_meta` names a protocol version.
pub fn classify(m: &Message) -> Era {
    match envelope(m).and_then(|e| e.version) {
        Some(v) => Era::Modern(v.into_owned()),
        None => Era::Legacy,
    }
}

/// The parts of a request's `_meta` the hub reads, borrowed from the
/// request. No tree is built: the rest of `_meta`, however large, is skipped
/// as it is scanned, so a request's envelope is read once and costs what its
/// bytes cost.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Envelope<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub version: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow, default)]
    pub capabilities: Option<&'a RawValue>,
    #[serde(rename = "io.modelcontextprotocol/logLevel", borrow, default)]
    pub log_level: Option<&'a RawValue>,
    #[serde(rename = "progressToken", borrow, default)]
    pub progress: Option<&'a RawValue>,
}

/// A request's envelope; `None` without `_meta` (or with one that is not an
/// object, or repeats a key the hub reads).
pub fn envelope(m: &Message) -> Option<Envelope<'_>> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow, default)]
        meta: Option<Envelope<'a>>,
    }
    serde_json::from_str::<Params>(m.params_raw()?.get())
        .ok()?
        .meta
}

/// What the hub reads of a request's params, in one pass: the envelope and
/// the call's identity, each borrowed from the request. Every identity field
/// is raw, so no value's type can fail the read; a repeated key can, and then
/// [`params`] falls back to the envelope alone.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params<'a> {
    #[serde(rename = "_meta", borrow, default)]
    pub meta: Option<Envelope<'a>>,
    #[serde(borrow, default)]
    pub name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub uri: Option<&'a RawValue>,
    #[serde(rename = "taskId", borrow, default)]
    pub task_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub arguments: Option<&'a RawValue>,
    #[serde(rename = "requestState", borrow, default)]
    pub request_state: Option<&'a RawValue>,
    /// The whole read succeeded (not the envelope alone after a repeated key).
    #[serde(skip)]
    pub whole: bool,
}

impl Params<'_> {
    /// A string param among those read (`name_param`'s), if it is one.
    pub fn string(&self, key: &str) -> Option<String> {
        let raw = match key {
            "name" => self.name,
            "uri" => self.uri,
            "taskId" => self.task_id,
            "requestState" => self.request_state,
            _ => None,
        }?;
        serde_json::from_str(raw.get()).ok()
    }
}

/// A request's [`Params`]; the default (nothing found) without params.
pub fn params(m: &Message) -> Params<'_> {
    let Some(raw) = m.params_raw() else {
        return Params::default();
    };
    match serde_json::from_str::<Params>(raw.get()) {
        Ok(p) => Params { whole: true, ..p },
        Err(_) => Params {
            meta: envelope(m),
            ..Params::default()
        },
    }
}

/// Methods whose complete results carry cache hints (`ttlMs`, `cacheScope`).
pub fn cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// The param a method's `Mcp-Name` header mirrors.
pub fn name_param(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        // The Tasks extension names its task.
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// A header value as sent: plain printable ASCII as it is, anything else in
/// the `=?base64?…?=` sentinel.
pub fn encode_header(v: &str) -> String {
    use base64::Engine as _;
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && v.trim() == v
        && !v.starts_with("=?");
    if plain {
        v.to_string()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

/// Decodes a header value that may use the `=?base64?…?=` sentinel.
pub fn decode_header(v: &str) -> Option<String> {
    use base64::Engine as _;
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(v.to_string()),
    }
}

/// The modern result a legacy upstream's result becomes: `resultType`, and
/// for cacheable methods the hub's own cache hints. `ttlMs: 0` and `private`:
/// a reload or a tool filter can change what the hub answers without a
/// `list_changed`, and results may depend on the token.
pub fn modernize_result(method: &str, result: &RawValue) -> Option<Box<RawValue>> {
    let mut map: indexmap::IndexMap<String, Box<RawValue>> =
        serde_json::from_str(result.get()).ok()?;
    map.entry("resultType".into())
        .or_insert_with(|| crate::jsonrpc::to_raw(&"complete"));
    if cacheable(method) {
        map.insert("ttlMs".into(), crate::jsonrpc::to_raw(&0));
        map.insert("cacheScope".into(), crate::jsonrpc::to_raw(&"private"));
    }
    Some(crate::jsonrpc::to_raw(&map))
}

/// Modern `_meta` keys a legacy upstream must not see. Unknown keys (trace
/// context, progress tokens, vendors') pass.
pub fn strip_modern_meta(m: &mut Message) {
    let Some(raw) = m.params_raw() else { return };
    if !raw.get().contains("io.modelcontextprotocol/") {
        return;
    }
    // One pass over the params, written straight into one new buffer
    // (`_meta`'s rewrite included): no map or tree of a large `_meta` is
    // built, whatever its size. Not sized up front: in the test of 16 bodies
    // of 3 MB, a buffer of exactly the params' size left the hub's peak
    // about 16 MiB higher than one grown to it (the allocator keeps a freed
    // block of that size in its heap; a larger one it gives back).
    let mut params = String::new();
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let rewrite = Rewrite {
        top: true,
        out: &mut params,
    };
    let Ok(true) = serde::Deserializer::deserialize_map(&mut de, rewrite) else {
        return;
    };
    // Only `io.modelcontextprotocol/` keys of `_meta` went: its name and
    // progress token are as they were.
    if let Ok(p) = RawValue::from_string(params) {
        m.set_params_keeping_known(p);
    }
}

/// Rewrites a JSON object as written into `out`, without the modern keys of
/// its `_meta` (`top`: this is the params object, whose `_meta` is
/// rewritten; otherwise this is `_meta`). Its value: whether anything was
/// dropped.
struct Rewrite<'o> {
    top: bool,
    out: &'o mut String,
}

/// A key, borrowed from the input unless it holds escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::de::Visitor<'de> for Rewrite<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let out = self.out;
        out.push('{');
        let open = out.len();
        let mut dropped = false;
        while let Some(Key(k)) = map.next_key::<Key>()? {
            let v: &'de RawValue = map.next_value()?;
            if !self.top
                && matches!(
                    k.as_ref(),
                    META_VERSION | META_CAPABILITIES | META_CLIENT_INFO | META_LOG_LEVEL
                )
            {
                dropped = true;
                continue;
            }
            let mark = out.len();
            if mark > open {
                out.push(',');
            }
            match &k {
                // Borrowed: it held no escape, so it is written as it came.
                std::borrow::Cow::Borrowed(k) => {
                    out.push('"');
                    out.push_str(k);
                    out.push('"');
                }
                std::borrow::Cow::Owned(k) => {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default())
                }
            }
            out.push(':');
            if self.top && k == "_meta" {
                let at = out.len();
                let mut de = serde_json::Deserializer::from_str(v.get());
                let inner = Rewrite {
                    top: false,
                    out: &mut *out,
                };
                match serde::Deserializer::deserialize_map(&mut de, inner) {
                    Ok(true) => {
                        dropped = true;
                        // A `_meta` left empty goes altogether.
                        if &out[at..] == "{}" {
                            out.truncate(mark);
                            continue;
                        }
                    }
                    Ok(false) => {}
                    // Not an object: it stays as written.
                    Err(_) => {
                        out.truncate(at);
                        out.push_str(v.get());
                    }
                }
            } else {
                out.push_str(v.get());
            }
        }
        out.push('}');
        Ok(dropped)
    }
}

/// The `_meta` the hub puts on a request toward a modern upstream.
pub fn hub_meta(caps: &Value, client_info: Option<&Value>, log_level: Option<&str>) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(META_VERSION.into(), LATEST_MODERN.into());
    m.insert(META_CAPABILITIES.into(), caps.clone());
    m.insert(
        META_CLIENT_INFO.into(),
        client_info
            .cloned()
            .unwrap_or_else(|| json!({"name": "mcp-hub", "version": env!("CARGO_PKG_VERSION")})),
    );
    if let Some(l) = log_level {
        m.insert(META_LOG_LEVEL.into(), l.into());
    }
    Value::Object(m)
}

/// The params of the hub's own `initialize` toward an upstream, with the
/// client capabilities it offers there (which differ by who the hub speaks
/// for: itself, a shared server's clients, or one client).
pub fn hub_initialize(capabilities: Value) -> Value {
    json!({
        "protocolVersion": LATEST_LEGACY,
        "capabilities": capabilities,
        "clientInfo": {"name": "mcp-hub", "version": env!("CARGO_PKG_VERSION")}
    })
}

/// Whether a `server/discover` answer says the server speaks a modern version.
pub fn is_modern_discover(m: &Message) -> bool {
    m.result_field::<Vec<String>>("supportedVersions")
        .is_some_and(|v| v.iter().any(|x| MODERN_VERSIONS.contains(&x.as_str())))
}

/// An `initialize` result for a 2025 client, made from a `server/discover` one.
pub fn init_from_discover(d: &RawValue) -> Box<RawValue> {
    let d: Value = serde_json::from_str(d.get()).unwrap_or(Value::Null);
    let mut r = json!({
        "protocolVersion": LEGACY_VERSIONS[0],
        "capabilities": d.get("capabilities").cloned().unwrap_or(json!({})),
        "serverInfo": d.get("_meta").and_then(|m| m.get(META_SERVER_INFO)).cloned()
            .unwrap_or(json!({"name": "unknown", "version": ""})),
    });
    if let Some(i) = d.get("instructions") {
        r["instructions"] = i.clone();
    }
    crate::jsonrpc::to_raw(&r)
}

/// A modern result as a 2025 client reads it: without `resultType`, `ttlMs`
/// and `cacheScope`.
pub fn legacy_result(result: &RawValue) -> Option<Box<RawValue>> {
    let mut map: indexmap::IndexMap<String, Box<RawValue>> =
        serde_json::from_str(result.get()).ok()?;
    let mut changed = false;
    for k in ["resultType", "ttlMs", "cacheScope"] {
        changed |= map.shift_remove(k).is_some();
    }
    changed.then(|| crate::jsonrpc::to_raw(&map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_read_in_one_pass_or_fall_back_to_the_envelope() {
        let m = |params: &str| {
            Message::parse(
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#)
                    .as_bytes(),
            )
            .unwrap()
        };
        let whole = m(
            r#"{"name":"e\u0063ho","arguments":{"a":[1]},"requestState":"h1",
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","progressToken":7}}"#,
        );
        let p = params(&whole);
        assert!(p.whole);
        assert_eq!(p.string("name").as_deref(), Some("echo"));
        assert_eq!(p.arguments.map(RawValue::get), Some(r#"{"a":[1]}"#));
        assert_eq!(p.string("requestState").as_deref(), Some("h1"));
        let env = p.meta.unwrap();
        assert_eq!(env.version.as_deref(), Some("2026-07-28"));
        assert_eq!(env.progress.map(RawValue::get), Some("7"));
        // A name that is not a string is no string, and fails nothing else.
        let odd =
            m(r#"{"name":5,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        let p = params(&odd);
        assert!(p.whole && p.string("name").is_none() && p.meta.is_some());
        // A repeated key fails the one pass: the envelope is still read.
        let twice = m(
            r#"{"name":"a","name":"b","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#,
        );
        let p = params(&twice);
        assert!(!p.whole && p.name.is_none());
        assert_eq!(p.meta.unwrap().version.as_deref(), Some("2026-07-28"));
        let bare = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        let p = params(&bare);
        assert!(!p.whole && p.meta.is_none());
    }

    #[test]
    fn trace_ids_only_from_well_formed_traceparents() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            traceparent_id(&format!("00-{t}-00f067aa0ba902b7-01")),
            Some(t)
        );
        assert_eq!(
            traceparent_id(&format!("01-{t}-00f067aa0ba902b7-01-x")),
            Some(t)
        );
        for bad in [
            format!("00-{t}-00f067aa0ba902b7-01-x"),
            format!("ff-{t}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{t}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", t.to_uppercase()),
            format!("00-{t}\nFAKE=1-00f067aa0ba902b7-01"),
            "00-abc-def-01".into(),
        ] {
            assert_eq!(traceparent_id(&bad), None, "{bad}");
        }
        let m = Message::request(
            1u64.into(),
            "tools/call",
            json!({"name": "x", "_meta": {"traceparent": format!("00-{t}-00f067aa0ba902b7-01")}}),
        );
        assert_eq!(trace_id(&m).as_deref(), Some(t));
        let m = Message::request(1u64.into(), "tools/call", json!({"name": "traceparent"}));
        assert_eq!(trace_id(&m), None);
    }

    #[test]
    fn classifies_by_meta() {
        let modern = Message::request(
            1u64.into(),
            "tools/list",
            json!({"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {}}}),
        );
        assert_eq!(classify(&modern), Era::Modern("2026-07-28".into()));
        let legacy = Message::request(1u64.into(), "tools/list", json!({}));
        assert_eq!(classify(&legacy), Era::Legacy);
    }

    #[test]
    fn encodes_unsafe_header_values() {
        assert_eq!(encode_header("echo"), "echo");
        assert_eq!(encode_header("é"), "=?base64?w6k=?=");
        assert_eq!(decode_header(&encode_header(" x ")).as_deref(), Some(" x "));
    }

    #[test]
    fn decodes_base64_sentinel() {
        assert_eq!(decode_header("plain").as_deref(), Some("plain"));
        assert_eq!(decode_header("=?base64?w6k=?=").as_deref(), Some("é"));
        assert_eq!(decode_header("=?base64?!!?="), None);
    }

    #[test]
    fn modern_results_get_type_and_hints() {
        let r = RawValue::from_string(r#"{"tools":[{"name":"a","x":1.50}]}"#.into()).unwrap();
        let m = modernize_result("tools/list", &r).unwrap();
        assert_eq!(
            m.get(),
            r#"{"tools":[{"name":"a","x":1.50}],"resultType":"complete","ttlMs":0,"cacheScope":"private"}"#
        );
        let c = RawValue::from_string(r#"{"content":[]}"#.into()).unwrap();
        assert_eq!(
            modernize_result("tools/call", &c).unwrap().get(),
            r#"{"content":[],"resultType":"complete"}"#
        );
    }

    #[test]
    fn strips_only_modern_keys() {
        let mut m = Message::request(
            1u64.into(),
            "tools/call",
            json!({"name": "x", "_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {}, "progressToken": 5, "traceparent": "t"}}),
        );
        strip_modern_meta(&mut m);
        assert_eq!(
            m.params_value().unwrap(),
            json!({"name": "x", "_meta": {"progressToken": 5, "traceparent": "t"}})
        );
        let mut bare = Message::request(
            1u64.into(),
            "tools/list",
            json!({"_meta": {META_VERSION: "2026-07-28", META_CAPABILITIES: {}}}),
        );
        strip_modern_meta(&mut bare);
        assert_eq!(bare.params_value().unwrap(), json!({}));
    }

    #[test]
    fn stripping_keeps_everything_else_as_written() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":1.50,"k\u0041":[1, 2],"_meta":{"x\"y":2.0,"io.modelcontextprotocol/protocolVersion":"2026-07-28","z":{"io.modelcontextprotocol/logLevel":1}}}}"#;
        let mut m = Message::parse(text.as_bytes()).unwrap();
        strip_modern_meta(&mut m);
        assert_eq!(
            m.params_raw().unwrap().get(),
            r#"{"a":1.50,"kA":[1, 2],"_meta":{"x\"y":2.0,"z":{"io.modelcontextprotocol/logLevel":1}}}"#
        );
        // Nothing to strip, or a _meta that is no object: untouched.
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"io.modelcontextprotocol/x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":"io.modelcontextprotocol/x"}}"#,
        ] {
            let mut m = Message::parse(text.as_bytes()).unwrap();
            let before = m.params_raw().unwrap().get().to_owned();
            strip_modern_meta(&mut m);
            assert_eq!(m.params_raw().unwrap().get(), before);
        }
    }
}
