use super::*;

#[test]
fn tokens_are_fresh_and_url_safe() {
    let (a, b) = (new_token().unwrap(), new_token().unwrap());
    assert_ne!(a, b);
    assert_eq!(a.len(), 43);
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
}

#[test]
fn until_rounds_up_to_a_whole_second() {
    let now = UNIX_EPOCH + Duration::from_millis(1_800_000_000_200);
    assert_eq!(until(now, Duration::from_secs(2)), "2027-01-15T08:00:03Z");
    let whole = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(until(whole, Duration::from_secs(2)), "2027-01-15T08:00:02Z");
}

#[test]
fn entries_from_flags() {
    let a = AddArgs {
        name: "lap".into(),
        servers: Some(vec!["fs".into(), " fetch".into()]),
        groups: None,
        tools: vec!["fs=read_file, list_directory".into(), "fetch=!fetch".into()],
        rate: Some("120/min".into()),
        max_concurrent: Some(8),
        max_sessions: None,
        force: false,
    };
    let e = Value::Object(entry(&a, "h").unwrap());
    assert_eq!(
        e,
        json!({"tokenSha256": "h", "servers": ["fs", "fetch"],
            "tools": {"fs": {"mode": "allow", "list": ["read_file", "list_directory"]},
                      "fetch": {"mode": "block", "list": ["fetch"]}},
            "rate": "120/min", "maxConcurrent": 8})
    );
    for bad in ["fs", "=x", "fs=!"] {
        let a = AddArgs {
            tools: vec![bad.into()],
            ..a_default()
        };
        assert!(entry(&a, "h").is_err(), "{bad}");
    }
    let a = AddArgs {
        servers: Some(vec![]),
        ..a_default()
    };
    assert!(entry(&a, "h").is_err());
}

fn a_default() -> AddArgs {
    AddArgs {
        name: "x".into(),
        servers: None,
        groups: None,
        tools: vec![],
        rate: None,
        max_concurrent: None,
        max_sessions: None,
        force: false,
    }
}

#[test]
fn prune_drops_only_empty_levels() {
    let mut m: Map<String, Value> =
        serde_json::from_value(json!({"mcpProxy": {"addr": ":1", "options": {"clients": {}}}}))
            .unwrap();
    prune(&mut m);
    assert_eq!(Value::Object(m), json!({"mcpProxy": {"addr": ":1"}}));
    let mut m: Map<String, Value> =
        serde_json::from_value(json!({"mcpProxy": {"options": {"clients": {}}}})).unwrap();
    prune(&mut m);
    assert!(m.is_empty());
}
