use super::*;

fn files(main: &str, dropins: &[(&str, &str)]) -> Files {
    Files {
        main: "/etc/mcp-hub/config.json".into(),
        main_text: main.into(),
        dropins: dropins
            .iter()
            .map(|(n, t)| {
                (
                    PathBuf::from(format!("/etc/mcp-hub/conf.d/{n}")),
                    t.to_string(),
                )
            })
            .collect(),
    }
}

fn load(f: &Files) -> Result<crate::config::Config, String> {
    crate::config::load_files(f, &|k| (k == "X").then(|| "x-value".into()))
        .map_err(|e| e.to_string())
}

#[test]
fn dropins_merge_in_lexical_order_and_remember_their_file() {
    let f = files(
        r#"{"mcpServers": {"a": {"command": "/bin/true"}}}"#,
        &[
            (
                "20-c.json",
                r#"{"mcpServers": {"c": {"command": "/bin/true"}}}"#,
            ),
            (
                "10-b.json",
                r#"// comment
               {"mcpServers": {"b": {"url": "http://h/${X}/sse"}}}"#,
            ),
        ],
    );
    let c = load(&f).unwrap();
    assert_eq!(c.servers.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(c.origins.0["a"], "/etc/mcp-hub/config.json");
    assert_eq!(c.origins.0["b"], "/etc/mcp-hub/conf.d/10-b.json");
    match &c.servers["b"].upstream {
        crate::config::Upstream::Sse { url, .. } => assert_eq!(url.path(), "/x-value/sse"),
        u => panic!("{u:?}"),
    }
}

#[test]
fn a_duplicate_names_both_files() {
    let f = files(
        r#"{"mcpServers": {"a": {"command": "/bin/true"}}}"#,
        &[(
            "a.json",
            r#"{"mcpServers": {"a": {"command": "/bin/false"}}}"#,
        )],
    );
    assert_eq!(
        load(&f).unwrap_err(),
        "mcpServers.a: defined twice, in /etc/mcp-hub/config.json and in /etc/mcp-hub/conf.d/a.json"
    );
}

#[test]
fn errors_name_the_dropin() {
    let f = files(
        "{}",
        &[(
            "b.json",
            r#"{"mcpServers": {"b": {"command": "/bin/true", "timeout": "3q"}}}"#,
        )],
    );
    let e = load(&f).unwrap_err();
    assert!(
        e.starts_with("/etc/mcp-hub/conf.d/b.json: mcpServers.b.timeout:"),
        "{e}"
    );
    let f = files(
        "{}",
        &[("b.json", r#"{"mcpServers": {"b": {"comand": "x"}}}"#)],
    );
    let e = load(&f).unwrap_err();
    assert!(
        e.starts_with("/etc/mcp-hub/conf.d/b.json: mcpServers.b"),
        "{e}"
    );
    let f = files("{}", &[("b.json", r#"{"groups": {}}"#)]);
    assert_eq!(
        load(&f).unwrap_err(),
        "/etc/mcp-hub/conf.d/b.json: a drop-in holds only \"mcpServers\" (an object of servers) and \"mcpProxy\": {\"options\": {\"clients\": …}} (an object of named clients); found the key \"groups\""
    );
    let f = files("{}", &[("b.json", "{nope")]);
    assert!(load(&f)
        .unwrap_err()
        .starts_with("/etc/mcp-hub/conf.d/b.json: not valid JSON"));
    let f = files(
        "{}",
        &[("b.json", r#"{"mcpServers": {"b": {"url": "${NOPE}"}}}"#)],
    );
    let e = load(&f).unwrap_err();
    assert!(
        e.starts_with("/etc/mcp-hub/conf.d/b.json: mcpServers.b.url: environment variable NOPE"),
        "{e}"
    );
}

#[test]
fn names_outside_the_rule_load_with_a_warning() {
    let f = files(
        r#"{"mcpServers": {"My-Server": {"command": "/bin/true"}}}"#,
        &[],
    );
    let c = load(&f).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("mcpServers.My-Server: ")),
        "{:?}",
        c.warnings
    );
    assert!(name_is_portable("fetch_2"));
    assert!(!name_is_portable("fetch-2"));
    assert!(!name_is_portable(""));
    assert!(!name_is_portable(&"a".repeat(33)));
}

#[test]
fn only_regular_files_up_to_the_limit_are_read() {
    let d = tempfile::tempdir().unwrap();
    let main = d.path().join("config.json");
    std::fs::write(&main, "{}").unwrap();
    let conf = d.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    // A symlink to a regular file is read.
    let real = d.path().join("real.json");
    std::fs::write(&real, r#"{"mcpServers": {}}"#).unwrap();
    std::os::unix::fs::symlink(&real, conf.join("a.json")).unwrap();
    assert_eq!(Files::read(&main).unwrap().dropins.len(), 1);
    let refused = |target: &Path, needle: &str| {
        let t0 = std::time::Instant::now();
        let e = Files::read(&main).unwrap_err().to_string();
        assert!(t0.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            e.starts_with(&format!("{}: cannot read: ", target.display())) && e.contains(needle),
            "{e}"
        );
    };
    let zz = conf.join("zz.json");
    nix::unistd::mkfifo(&zz, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    refused(&zz, "a FIFO, not a regular file");
    std::fs::remove_file(&zz).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &zz).unwrap();
    refused(&zz, "a character device, not a regular file");
    std::fs::remove_file(&zz).unwrap();
    std::fs::write(&zz, vec![b' '; MAX_FILE_SIZE as usize + 1]).unwrap();
    refused(&zz, "larger than 1024 KiB, the limit for a config file");
    std::fs::write(&zz, vec![b' '; MAX_FILE_SIZE as usize]).unwrap();
    assert!(Files::read(&main).is_ok());
    std::fs::remove_file(&zz).unwrap();
    std::fs::create_dir(&zz).unwrap();
    refused(&zz, "a directory");
    std::fs::remove_dir(&zz).unwrap();
    // Eight files of the largest size are the most a config may hold.
    for i in 0..8 {
        std::fs::write(
            conf.join(format!("{i}.json")),
            vec![b' '; MAX_FILE_SIZE as usize - 64],
        )
        .unwrap();
    }
    assert!(Files::read(&main).is_ok());
    std::fs::write(&zz, vec![b' '; 1024]).unwrap();
    refused(&zz, "larger than 8 MiB together, the limit for a config");
}

fn hash(token: &str) -> String {
    crate::config::clients::sha256_hex(token)
}

#[test]
fn a_dropin_may_hold_named_clients_merged_by_name() {
    let f = files(
        &format!(
            r#"{{"mcpProxy": {{"addr": ":9", "options": {{"authTokens": ["t"],
                "clients": {{"desk": {{"tokenSha256": "{}"}}}}}}}},
              "mcpServers": {{"fs": {{"command": "/bin/true"}}}}}}"#,
            hash("d")
        ),
        &[
            (
                "client-lap.json",
                &format!(
                    r#"{{"mcpProxy": {{"options": {{"clients": {{"lap": {{"tokenSha256": "{}", "servers": ["fs"]}}}}}}}}}}"#,
                    hash("l")
                ),
            ),
            // A client's token from a variable, expanded in its drop-in;
            // servers and clients in one drop-in.
            (
                "z.json",
                r#"{"mcpServers": {"z": {"command": "/bin/true"}},
                    "mcpProxy": {"options": {"clients": {"zed": {"token": "${X}"}}}}}"#,
            ),
        ],
    );
    let c = load(&f).unwrap();
    let names: Vec<&str> = c.hub.clients.iter().map(|c| &*c.name).collect();
    assert_eq!(names, ["desk", "lap", "zed"]);
    assert_eq!(c.hub.auth_tokens, ["t"]);
    assert_eq!(c.hub.addr, ":9");
    assert!(c.hub.clients[1].reaches_server("fs") && !c.hub.clients[1].reaches_server("z"));
    assert!(c.hub.clients[2].holds(
        &crate::config::clients::sha256("x-value"),
        std::time::SystemTime::now()
    ));
    assert_eq!(c.origins.client("desk"), Some("/etc/mcp-hub/config.json"));
    assert_eq!(
        c.origins.client("lap"),
        Some("/etc/mcp-hub/conf.d/client-lap.json")
    );
    assert_eq!(c.origins.client("zed"), Some("/etc/mcp-hub/conf.d/z.json"));
    assert_eq!(c.origins.0["z"], "/etc/mcp-hub/conf.d/z.json");
    // A main file with no mcpProxy at all takes them too.
    let f = files(
        "{}",
        &[(
            "client-lap.json",
            &format!(
                r#"{{"mcpProxy": {{"options": {{"clients": {{"lap": {{"tokenSha256": "{}"}}}}}}}}}}"#,
                hash("l")
            ),
        )],
    );
    assert_eq!(&*load(&f).unwrap().hub.clients[0].name, "lap");
}

#[test]
fn a_client_defined_twice_names_both_files_and_errors_name_the_dropin() {
    let client = |name: &str, token: &str| {
        format!(
            r#"{{"mcpProxy": {{"options": {{"clients": {{"{name}": {{"tokenSha256": "{}"}}}}}}}}}}"#,
            hash(token)
        )
    };
    let f = files(
        &client("lap", "a"),
        &[("client-lap.json", &client("lap", "b"))],
    );
    assert_eq!(
        load(&f).unwrap_err(),
        "mcpProxy.options.clients.lap: defined twice, in /etc/mcp-hub/config.json and in /etc/mcp-hub/conf.d/client-lap.json"
    );
    let f = files(
        "{}",
        &[
            ("a.json", &client("lap", "a")),
            ("b.json", &client("lap", "b")),
        ],
    );
    assert_eq!(
        load(&f).unwrap_err(),
        "mcpProxy.options.clients.lap: defined twice, in /etc/mcp-hub/conf.d/a.json and in /etc/mcp-hub/conf.d/b.json"
    );
    // The same token as another file's client: the error names the second file.
    let f = files(&client("a", "same"), &[("b.json", &client("b", "same"))]);
    let e = load(&f).unwrap_err();
    assert!(
        e.starts_with("/etc/mcp-hub/conf.d/b.json: mcpProxy.options.clients.b:"),
        "{e}"
    );
    for (text, want) in [
        (
            r#"{"mcpProxy": {"options": {"clients": {"lap": {"tokenSha256": "abc"}}}}}"#,
            "/etc/mcp-hub/conf.d/c.json: mcpProxy.options.clients.lap.tokenSha256: must be 64 hex",
        ),
        (
            r#"{"mcpProxy": {"options": {"clients": {"lap": {"token": "x", "rate": "lots"}}}}}"#,
            "/etc/mcp-hub/conf.d/c.json: mcpProxy.options.clients.lap.rate:",
        ),
        (
            r#"{"mcpProxy": {"options": {"clients": {"lap": {"token": "x", "bogus": 1}}}}}"#,
            "/etc/mcp-hub/conf.d/c.json: mcpProxy.options.clients.lap",
        ),
        (
            r#"{"mcpProxy": {"options": {"clients": {"lap": {"token": "${NOPE}"}}}}}"#,
            "/etc/mcp-hub/conf.d/c.json: mcpProxy.options.clients.lap.token: environment variable NOPE",
        ),
        (
            r#"{"mcpProxy": {"addr": ":1"}}"#,
            "found the key \"mcpProxy.addr\"",
        ),
        (
            r#"{"mcpProxy": {"options": {"authTokens": ["x"]}}}"#,
            "found the key \"mcpProxy.options.authTokens\"",
        ),
        (
            r#"{"mcpProxy": {"options": {"clients": []}}}"#,
            "found \"mcpProxy.options.clients\" as an array",
        ),
        (r#"{"mcpProxy": 1}"#, "found \"mcpProxy\" as a number"),
    ] {
        let e = load(&files("{}", &[("c.json", text)])).unwrap_err();
        assert!(e.contains(want), "{text}: {e}");
        if want.starts_with("found") {
            assert!(e.starts_with("/etc/mcp-hub/conf.d/c.json: a drop-in holds only"), "{e}");
        }
    }
}

#[test]
fn origins_match_the_longest_name() {
    let o = Origins(
        BTreeMap::from([
            ("a".to_string(), "one".to_string()),
            ("a.b".to_string(), "two".to_string()),
        ]),
        BTreeMap::from([("lap".to_string(), "three".to_string())]),
    );
    assert_eq!(
        o.file_for("mcpProxy.options.clients.lap.tokenSha256", "main"),
        "three"
    );
    assert_eq!(o.file_for("mcpProxy.options.clients.lapx", "main"), "main");
    assert_eq!(o.client("lap"), Some("three"));
    assert_eq!(o.file_for("mcpServers.a.b.command", "main"), "two");
    assert_eq!(o.file_for("mcpServers.a.command", "main"), "one");
    assert_eq!(o.file_for("mcpServers.ab", "main"), "main");
    assert_eq!(o.file_for("mcpProxy.addr", "main"), "main");
}
