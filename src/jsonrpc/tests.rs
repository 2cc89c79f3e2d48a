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
    let m = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), text);
}

#[test]
fn bodies_survive_byte_for_byte() {
    let body =
        r#"{"b":1.50,"a":1e400,"n":123456789012345678901234,"s":"\u00e9","o":{"z":0, "y" :[ 1 ]}}"#;
    for text in [
        format!(r#"{{"jsonrpc":"2.0","id":1.0,"method":"tools/call","params":{body}}}"#),
        format!(r#"{{"jsonrpc":"2.0","id":"x\"y","result":{body}}}"#),
        format!(r#"{{"jsonrpc":"2.0","method":"n","params":{body}}}"#),
    ] {
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), text);
    }
    // An id the hub rewrites and restores is its exact text again.
    let mut m = Message::parse(br#"{"jsonrpc":"2.0","id":1.0,"method":"m"}"#).unwrap();
    let orig = m.id().cloned().unwrap();
    m.set_id(7u64.into());
    m.set_id(orig);
    assert_eq!(m.to_bytes(), br#"{"jsonrpc":"2.0","id":1.0,"method":"m"}"#);
}

#[test]
fn edits_touch_only_their_field() {
    let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"v":1.50,"s":"\u00e9"},"_meta":{"progressToken":"t","k":1e400}}}"#;
    let mut m = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(m.progress_token().unwrap().get(), r#""t""#);
    m.set_progress_token(&to_raw(&42));
    assert_eq!(
        String::from_utf8(m.to_bytes()).unwrap(),
        text.replace(r#""progressToken":"t""#, r#""progressToken":42"#)
    );
    assert_eq!(m.param::<String>("name").as_deref(), Some("x"));
    m.set_progress_token(&to_raw(&"t"));
    assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), text);
}

#[test]
fn filters_named_items_as_written() {
    let r = RawValue::from_string(
        r#"{"tools":[{"name":"ls","x":1.50},{"name":"rm"}],"nextCursor":"c"}"#.into(),
    )
    .unwrap();
    let kept = retain_named(&r, "tools", |n| n != "rm").unwrap();
    assert_eq!(
        kept.get(),
        r#"{"tools":[{"name":"ls","x":1.50}],"nextCursor":"c"}"#
    );
}

#[test]
fn parses_batches_and_reports_errors() {
    assert!(
        matches!(parse_body(b"[{\"jsonrpc\":\"2.0\",\"method\":\"a\"}]"), Ok(Incoming::Batch(v)) if v.len() == 1)
    );
    assert!(matches!(parse_body(b"{not json"), Err(BodyError::Parse(_))));
    assert!(matches!(parse_body(b"[]"), Err(BodyError::EmptyBatch)));
    assert!(matches!(
        parse_body(b"[1]"),
        Err(BodyError::Invalid(Invalid::NotAnObject))
    ));
    assert!(matches!(
        parse_body(b"\"x\""),
        Err(BodyError::Invalid(Invalid::NotAnObject))
    ));
    let e = parse_body(b"{oops").unwrap_err().to_message();
    assert_eq!(e.error_code(), Some(PARSE_ERROR));
}

#[test]
fn salvages_ids_from_broken_lines() {
    assert_eq!(
        salvage_id(br#"{"jsonrpc":"2.0","id":12,"result":{"x":}"#),
        Some(12u64.into())
    );
    assert_eq!(
        salvage_id(br#"{"id" : "a","result":"#),
        Some(Id::Str("a".into()))
    );
    assert_eq!(salvage_id(b"garbage"), None);
}
