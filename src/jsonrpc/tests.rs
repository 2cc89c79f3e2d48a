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

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// JSON text as clients and servers write it, oddities included: number
    /// forms serde would rewrite, escapes, whitespace, nesting.
    fn json_text() -> impl Strategy<Value = String> {
        let ws = prop_oneof![Just(""), Just(" "), Just("\n\t ")];
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".into()),
            Just("false".into()),
            any::<i64>().prop_map(|n| n.to_string()),
            "-?[1-9][0-9]{19,30}",
            Just("1.50".into()),
            Just("1e400".into()),
            Just("-0.0".into()),
            Just("2E-7".into()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#""\u00e9\ud83d\ude00\/\"""#.into()),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                (proptest::collection::vec(inner.clone(), 0..6), ws.clone())
                    .prop_map(|(v, w)| format!("[{w}{}{w}]", v.join(&format!("{w},{w}")))),
                (
                    proptest::collection::vec((any::<String>(), inner), 0..6),
                    ws.clone()
                )
                    .prop_map(|(v, w)| {
                        let items: Vec<String> = v
                            .into_iter()
                            .map(|(k, val)| {
                                format!("{}{w}:{w}{val}", serde_json::to_string(&k).unwrap())
                            })
                            .collect();
                        format!("{{{w}{}{w}}}", items.join(","))
                    }),
            ]
        })
    }

    fn id_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("1.0".to_string()),
            "[1-9][0-9]{20,40}",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        ]
    }

    /// A valid message as written: the envelope keys in any order, with
    /// unknown top-level keys, and the body texts it carries.
    fn message_text() -> impl Strategy<Value = (String, Vec<String>)> {
        let kind = 0..4u8;
        let extra = proptest::collection::vec(("[a-z_]{1,8}", json_text()), 0..3);
        (
            kind,
            id_text(),
            any::<String>(),
            json_text(),
            extra,
            any::<u64>(),
        )
            .prop_map(|(kind, id, method, body, extra, seed)| {
                let method = serde_json::to_string(&method).unwrap();
                let mut fields: Vec<(String, String)> = vec![("jsonrpc".into(), "\"2.0\"".into())];
                match kind {
                    0 => fields.extend([
                        ("id".into(), id),
                        ("method".into(), method),
                        ("params".into(), body.clone()),
                    ]),
                    1 => {
                        fields.extend([("method".into(), method), ("params".into(), body.clone())])
                    }
                    2 => fields.extend([("id".into(), id), ("result".into(), body.clone())]),
                    _ => fields.extend([("id".into(), id), ("error".into(), body.clone())]),
                }
                let mut bodies = vec![body];
                for (k, v) in extra {
                    let reserved = ["jsonrpc", "id", "method", "params", "result", "error"];
                    if !reserved.contains(&k.as_str()) && !fields.iter().any(|(f, _)| *f == k) {
                        bodies.push(v.clone());
                        fields.push((k, v));
                    }
                }
                // Any key order.
                let n = fields.len();
                for i in (1..n).rev() {
                    fields.swap(i, (seed as usize >> (i % 16)) % (i + 1));
                }
                let items: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\" : {v}"))
                    .collect();
                (format!(" {{ {} }}\n", items.join(" , ")), bodies)
            })
    }

    /// Whatever parses must write itself back to text that parses to the same
    /// message, and that text is a fixed point.
    fn round_trips(m: &Message) -> Result<(), TestCaseError> {
        let bytes = m.to_bytes();
        let again = Message::parse(&bytes).map_err(|e| {
            TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes)))
        })?;
        prop_assert_eq!(&again, m);
        prop_assert_eq!(again.to_bytes(), bytes);
        prop_assert_eq!(again.kind(), m.kind());
        Ok(())
    }

    fn check_any(bytes: &[u8]) -> Result<(), TestCaseError> {
        let _ = salvage_id(bytes);
        if let Ok(m) = Message::parse(bytes) {
            round_trips(&m)?;
        }
        match parse_body(bytes) {
            Ok(Incoming::Single(m)) => round_trips(&m)?,
            Ok(Incoming::Batch(v)) => {
                prop_assert!(!v.is_empty());
                for m in &v {
                    round_trips(m)?;
                }
            }
            Err(e) => {
                let _ = e.to_message().to_bytes();
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            check_any(&bytes)?;
        }

        #[test]
        fn messages_round_trip_with_bodies_byte_exact((text, bodies) in message_text()) {
            let m = Message::parse(text.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            round_trips(&m)?;
            let out = String::from_utf8(m.to_bytes()).unwrap();
            for body in &bodies {
                prop_assert!(out.contains(body.as_str()), "{body} not in {out}");
            }
            let raw = m.params_raw().or(m.result_raw()).or(m.error_raw()).unwrap();
            prop_assert_eq!(raw.get(), bodies[0].as_str());
            // In a batch too.
            let batch = format!("[{text},{text}]");
            let Ok(Incoming::Batch(v)) = parse_body(batch.as_bytes()) else {
                return Err(TestCaseError::fail(format!("not a batch: {batch}")));
            };
            prop_assert_eq!(v.len(), 2);
            prop_assert_eq!(&v[0], &m);
        }

        #[test]
        fn near_misses_never_panic(
            (text, _) in message_text(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
        ) {
            let mut bytes = text.into_bytes();
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = byte,
                    1 => { bytes.remove(i); }
                    _ => bytes.insert(i, byte),
                }
            }
            check_any(&bytes)?;
        }
    }
}
