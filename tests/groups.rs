//! Groups (`/g/<group>/…`): two fixture servers with the same tool names in
//! one group, over both MCP transports; prefixed lists and calls that reach
//! the right server; a member that goes down and comes back; tokens that do
//! not reach past the group; config errors; reload adding and removing a group.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Fixture servers `a` and `b` (each says who it is in its environment),
/// `c` outside the group, and the group `all` = [a, b].
fn servers() -> Value {
    json!({
        "a": fx(json!({"sandbox": false, "env": {"WHO": "server-a"}})),
        "b": fx(json!({"sandbox": false, "env": {"WHO": "server-b"}})),
        "c": fx(json!({"sandbox": false, "env": {"WHO": "server-c"}})),
    })
}

fn group_proxy(group: Value) -> Value {
    json!({"options": {"groups": {"all": group}}})
}

fn names(list: &Value, field: &str, key: &str) -> Vec<String> {
    list["result"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {list}"))
        .iter()
        .map(|t| t[key].as_str().unwrap().to_string())
        .collect()
}

fn text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_string()
}

/// Which server's environment a `<server>__env` call showed.
fn who(answer: &Value) -> String {
    let env: Value = serde_json::from_str(&text(answer)).unwrap();
    env["WHO"].as_str().unwrap_or("").to_string()
}

/// Log lines arrive through a pipe after the answer that followed them.
async fn wait_log(hub: &Hub, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hub.log_contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in the log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tools(c: &Mcp, id: u64) -> Vec<String> {
    let r = c.post(&req(json!(id), "tools/list", json!({}))).await;
    names(r.last(), "tools", "name")
}

#[tokio::test]
async fn streamable_group_prefixes_and_routes_each_call_to_its_server() {
    let hub = Hub::start(group_proxy(json!({"servers": ["a", "b"]})), servers());
    let mut c = Mcp::new(&hub, "g/all");
    let init = c.initialize().await;
    let r = &init["result"];
    assert_eq!(r["protocolVersion"], "2025-11-25");
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
    assert!(r["capabilities"]["prompts"].is_object(), "{init}");
    let instructions = r["instructions"].as_str().unwrap();
    assert!(
        instructions.contains("\"a\", \"b\"") && instructions.contains("<server>__<name>"),
        "{instructions}"
    );

    let listed = tools(&c, 1).await;
    for t in ["a__echo", "b__echo", "a__env", "b__env"] {
        assert!(listed.contains(&t.to_string()), "{t} in {listed:?}");
    }
    assert!(!listed.iter().any(|t| t.starts_with("c__") || t == "echo"));

    // The same tool name, two servers: each call reaches its own.
    for (tool, server) in [("a__env", "server-a"), ("b__env", "server-b")] {
        let r = c.post(&call(2, tool, json!({}))).await;
        assert_eq!(r.last()["id"], 2);
        assert_eq!(who(r.last()), server, "{tool}");
    }
    let r = c.post(&call(3, "b__echo", json!({"text": "hi"}))).await;
    assert_eq!(text(r.last()), "hi");
    // Outside the group, or no prefix: unknown.
    for t in ["c__echo", "echo", "zz__echo"] {
        let r = c.post(&call(4, t, json!({}))).await;
        assert_eq!(r.last()["error"]["code"], -32602, "{t}: {}", r.last());
    }

    // Prompts are prefixed like tools, resources namespaced by server.
    let r = c.post(&req(json!(5), "prompts/list", json!({}))).await;
    let prompts = names(r.last(), "prompts", "name");
    assert!(prompts.contains(&"b__test_simple_prompt".to_string()));
    let r = c
        .post(&req(
            json!(6),
            "prompts/get",
            json!({"name": "a__test_simple_prompt"}),
        ))
        .await;
    assert!(r.last()["result"]["messages"].is_array(), "{}", r.last());
    let r = c.post(&req(json!(7), "resources/list", json!({}))).await;
    let uris = names(r.last(), "resources", "uri");
    let uri = "mcp-hub://b/test%3A%2F%2Fstatic-text";
    assert!(uris.contains(&uri.to_string()), "{uris:?}");
    let r = c
        .post(&req(json!(8), "resources/read", json!({"uri": uri})))
        .await;
    assert_eq!(r.last()["id"], 8);
    assert!(
        r.last()["result"]["contents"][0]["text"].is_string(),
        "{}",
        r.last()
    );
    let r = c
        .post(&req(json!(9), "resources/templates/list", json!({})))
        .await;
    let templates = names(r.last(), "resourceTemplates", "uriTemplate");
    assert!(templates.contains(&"mcp-hub://a/test%3A%2F%2Ftemplate%2F{id}%2Fdata".to_string()));

    let status = hub.status().await;
    assert_eq!(
        status["groups"],
        json!([{"name": "all", "servers": ["a", "b"], "routes": ["/g/all/sse", "/g/all/mcp"]}])
    );
    // Each member keeps its own audit and session: the call shows in the
    // member's status as one open session, not in c's.
    assert_eq!(hub.server_status("a").await["sessions"], 1);
    assert_eq!(hub.server_status("c").await["sessions"], 0);
    assert_eq!(c.delete().await, 200);
}

#[tokio::test]
async fn legacy_sse_group_prefixes_and_routes_each_call_to_its_server() {
    let hub = Hub::start(group_proxy(json!({"servers": ["a", "b"]})), servers());
    let mut s = LegacySse::connect(&hub, "g/all").await;
    assert!(
        s.endpoint.starts_with("/g/all/message?sessionId="),
        "{}",
        s.endpoint
    );
    assert_eq!(
        s.post(&req(json!(1), "initialize", init_params("2024-11-05")))
            .await,
        202
    );
    let init = s.next_message(20).await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    s.post(&req(json!(2), "tools/list", json!({}))).await;
    let list = s.next_message(20).await;
    let listed = names(&list, "tools", "name");
    assert!(listed.contains(&"a__env".to_string()) && listed.contains(&"b__env".to_string()));
    for (id, tool, server) in [(3, "a__env", "server-a"), (4, "b__env", "server-b")] {
        assert_eq!(s.post(&call(id, tool, json!({}))).await, 202);
        let m = s.next_message(20).await;
        assert_eq!(m["id"], id);
        assert_eq!(who(&m), server);
    }
}

#[tokio::test]
async fn a_member_that_goes_down_is_dropped_and_comes_back() {
    let hub = Hub::start(group_proxy(json!({"servers": ["a", "b"]})), servers());
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let mut events = RawEvents::new(c.get_stream().await);
    assert!(tools(&c, 1).await.contains(&"a__echo".to_string()));

    // `crash` ends a's child; the supervisor restarts it after a backoff of 1s.
    let r = c.post(&call(2, "a__crash", json!({}))).await;
    assert_eq!(r.last()["error"]["code"], -32000, "{}", r.last());
    let listed = tools(&c, 3).await;
    assert!(
        !listed.iter().any(|t| t.starts_with("a__")),
        "a's tools are left out while it is down: {listed:?}"
    );
    assert!(listed.contains(&"b__echo".to_string()), "{listed:?}");
    let r = c.post(&call(4, "a__echo", json!({"text": "x"}))).await;
    let e = r.last()["error"]["message"].as_str().unwrap_or("");
    // "… server "a" is down (restarting after: …)"; right at the crash, the
    // session layer's own "server "a" is restarting" may answer first.
    assert!(e.contains("server \"a\""), "{}", r.last());
    wait_log(&hub, "leaving out server \"a\"").await;
    // b is not taken down with it.
    let r = c.post(&call(5, "b__echo", json!({"text": "still"}))).await;
    assert_eq!(text(r.last()), "still");

    // Down and back: list_changed each time, on the session's GET stream.
    for _ in 0..2 {
        let m = events.next_message(15).await;
        assert_eq!(m["method"], "notifications/tools/list_changed", "{m}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if tools(&c, 6).await.contains(&"a__echo".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "a's tools never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = c.post(&call(7, "a__env", json!({}))).await;
    assert_eq!(who(r.last()), "server-a");
}

#[tokio::test]
async fn group_tokens_reach_only_the_group_and_members_that_accept_them() {
    let servers = json!({
        // a accepts the group's token; b does not (only the global one); c is outside.
        "a": fx(json!({"sandbox": false, "options": {"authTokens": ["group-token", TOKEN]}})),
        "b": fx(json!({"sandbox": false})),
        "c": fx(json!({"sandbox": false})),
    });
    let hub = Hub::start(
        group_proxy(json!({"servers": ["a", "b"], "authTokens": ["group-token"]})),
        servers,
    );
    let mut g = Mcp::new(&hub, "g/all");
    g.token = "group-token".into();
    g.initialize().await;
    let listed = tools(&g, 1).await;
    assert!(listed.contains(&"a__echo".to_string()), "{listed:?}");
    assert!(
        !listed.iter().any(|t| t.starts_with("b__")),
        "b does not accept the token: {listed:?}"
    );
    let r = g.post(&call(2, "b__echo", json!({"text": "x"}))).await;
    assert_eq!(r.last()["error"]["code"], -32602, "{}", r.last());
    assert_eq!(g.call_text(3, "a__echo", json!({"text": "ok"})).await, "ok");

    // The group's token opens nothing outside it.
    for server in ["c", "b"] {
        let mut o = Mcp::new(&hub, server);
        o.token = "group-token".into();
        let r = o
            .post(&req(json!(0), "initialize", init_params("2025-11-25")))
            .await;
        assert_eq!(r.status, 401, "{server}");
    }
    // And the global token does not open the group.
    let o = Mcp::new(&hub, "g/all");
    let r = o
        .post(&req(json!(0), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 401);
    // Unknown groups are not confirmed to a caller without the global token.
    let mut u = Mcp::new(&hub, "g/nope");
    u.token = "group-token".into();
    assert_eq!(
        u.post(&req(json!(0), "initialize", init_params("2025-11-25")))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn group_tool_filter_applies_on_top_of_the_members() {
    let hub = Hub::start(
        group_proxy(json!({"servers": ["a", "b"], "separator": "-",
            "toolFilter": {"mode": "allow", "list": ["a-echo", "b-echo", "b-add"]}})),
        json!({
            "a": fx(json!({"sandbox": false})),
            "b": fx(json!({"sandbox": false, "options": {"toolFilter": {"mode": "block", "list": ["add"]}}})),
        }),
    );
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let mut listed = tools(&c, 1).await;
    listed.sort();
    assert_eq!(listed, ["a-echo", "b-echo"]);
    let r = c.post(&call(2, "a-add", json!({"a": 1, "b": 2}))).await;
    assert_eq!(r.last()["error"]["code"], -32602);
    let r = c.post(&call(3, "b-add", json!({"a": 1, "b": 2}))).await;
    assert_eq!(
        r.last()["error"]["code"],
        -32602,
        "b's own filter still holds"
    );
}

fn check(cfg: &Value) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_vec(cfg).unwrap()).unwrap();
    let out = std::process::Command::new(hub_bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn group_config_errors_name_the_path() {
    let base = servers();
    for (groups, at, needle) in [
        (
            json!({"all": {"servers": ["a", "x"]}}),
            "groups.all.servers[1]",
            "no server named \"x\"",
        ),
        (
            json!({"all": {"servers": ["a"], "bogus": 1}}),
            "groups.all",
            "bogus",
        ),
        (
            json!({"all": {"servers": []}}),
            "groups.all.servers",
            "at least one",
        ),
        (
            json!({"all": {"servers": ["a", "a"]}}),
            "groups.all.servers[1]",
            "twice",
        ),
        (
            json!({"all": {"servers": ["a"], "toolFilter": {"mode": "maybe"}}}),
            "groups.all.toolFilter.mode",
            "\"maybe\"",
        ),
    ] {
        let (ok, _, err) = check(&json!({"mcpServers": base, "groups": groups}));
        assert!(!ok, "{groups}");
        assert!(err.contains(at) && err.contains(needle), "{at}: {err}");
    }
    let (ok, _, err) = check(&json!({"mcpServers": base,
        "mcpProxy": {"options": {"groups": {"x": {"servers": ["c", "nope"]}}}}}));
    assert!(!ok);
    assert!(
        err.contains("mcpProxy.options.groups.x.servers[1]: no server named \"nope\""),
        "{err}"
    );
}

#[test]
fn check_lists_group_routes_and_warns_about_shortened_names() {
    let (ok, out, err) = check(&json!({
        "mcpServers": {"my.server": fx(json!({})), "b": fx(json!({}))},
        "groups": {"all": {"servers": ["my.server", "b"]}},
    }));
    assert!(ok, "{err}");
    assert!(out.contains("/g/all/mcp"), "{out}");
    assert!(
        out.contains("warning: groups.all.servers[0]") && out.contains("shortened"),
        "{out}"
    );
}

#[tokio::test]
async fn reload_adds_and_removes_a_group() {
    let hub = Hub::start(json!({}), servers());
    let mut c = Mcp::new(&hub, "g/all");
    let r = c
        .post(&req(json!(0), "initialize", init_params("2025-11-25")))
        .await;
    assert_eq!(r.status, 404);

    let write = |groups: Value| {
        let cfg = json!({"mcpProxy": {"options": {"authTokens": [TOKEN]}}, "mcpServers": servers(), "groups": groups});
        std::fs::write(&hub.config_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let pid = nix::unistd::Pid::from_raw(hub.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    };
    let wait_reloads = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while hub.log_lines_with(&["reloaded"]).len() < n {
            assert!(Instant::now() < deadline, "no reload in the log");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write(json!({"all": {"servers": ["a", "b"]}}));
    wait_reloads(1);
    c.initialize().await;
    assert!(tools(&c, 1).await.contains(&"b__echo".to_string()));
    let mut events = RawEvents::new(c.get_stream().await);

    write(json!({}));
    wait_reloads(2);
    assert!(events.ends_within(10).await, "the group's streams end");
    let r = c.post(&req(json!(2), "tools/list", json!({}))).await;
    assert_eq!(r.status, 404);
    // Its members' sessions ended with it.
    assert_eq!(hub.server_status("a").await["sessions"], 0);
}

#[tokio::test]
async fn a_member_changed_by_a_reload_is_reached_again_in_the_same_group_session() {
    let cfg = |who_a: &str| {
        json!({"mcpProxy": {"options": {"authTokens": [TOKEN], "groups": {"all": {"servers": ["a", "b"]}}}},
        "mcpServers": {
            "a": fx(json!({"sandbox": false, "env": {"WHO": who_a}})),
            "b": fx(json!({"sandbox": false, "env": {"WHO": "server-b"}})),
        }})
    };
    let hub = Hub::start(
        group_proxy(json!({"servers": ["a", "b"]})),
        json!({
            "a": fx(json!({"sandbox": false, "env": {"WHO": "server-a"}})),
            "b": fx(json!({"sandbox": false, "env": {"WHO": "server-b"}})),
        }),
    );
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let mut events = RawEvents::new(c.get_stream().await);
    let r = c.post(&call(1, "a__env", json!({}))).await;
    assert_eq!(who(r.last()), "server-a");

    std::fs::write(
        &hub.config_path,
        serde_json::to_vec(&cfg("server-a2")).unwrap(),
    )
    .unwrap();
    let pid = nix::unistd::Pid::from_raw(hub.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    // The old a's session ends: its tools leave the list for a moment.
    let m = events.next_message(10).await;
    assert_eq!(m["method"], "notifications/tools/list_changed", "{m}");
    // The group is unchanged, so its session stays; the call reaches the new a.
    let r = c.post(&call(2, "a__env", json!({}))).await;
    assert_eq!(who(r.last()), "server-a2", "{}", r.last());
    let r = c.post(&call(3, "b__env", json!({}))).await;
    assert_eq!(who(r.last()), "server-b");
}

#[tokio::test]
async fn members_keep_their_own_session_mode() {
    let hub = Hub::start(
        group_proxy(json!({"servers": ["p", "b"]})),
        json!({
            "p": fx(json!({"sandbox": false, "session": "per-client"})),
            "b": fx(json!({"sandbox": false})),
        }),
    );
    let (mut one, mut two) = (Mcp::new(&hub, "g/all"), Mcp::new(&hub, "g/all"));
    one.initialize().await;
    two.initialize().await;
    // A per-client member gets the client's own initialize, and a child per client.
    let info = one.call_text(1, "p__client_info", json!({})).await;
    assert!(info.contains("hub-tests"), "{info}");
    let p1 = one.call_text(2, "p__pid", json!({})).await;
    let p2 = two.call_text(2, "p__pid", json!({})).await;
    assert_ne!(p1, p2);
    // A shared member is one child for both.
    let b1 = one.call_text(3, "b__pid", json!({})).await;
    let b2 = two.call_text(3, "b__pid", json!({})).await;
    assert_eq!(b1, b2);
    // Closing a group session ends its per-client child.
    assert_eq!(one.delete().await, 200);
    let pid: i32 = p1.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the per-client child outlived its group session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(two.call_text(4, "p__pid", json!({})).await, p2);
}

#[tokio::test]
async fn shortened_names_are_valid_and_route_back() {
    let long = "a-server-with-a-rather-long-name-for-a-group-member";
    let hub = Hub::start(
        group_proxy(json!({"servers": ["my.server", long]})),
        json!({
            "my.server": fx(json!({"sandbox": false, "env": {"WHO": "dotted"}})),
            long: fx(json!({"sandbox": false, "env": {"WHO": "long"}})),
        }),
    );
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let listed = tools(&c, 1).await;
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    assert!(listed.iter().all(|n| valid(n)), "{listed:?}");
    let unique: std::collections::HashSet<_> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "{listed:?}");
    // `env` of each server, found by its shortened name, reaches that server.
    for (prefix, server) in [
        ("my_server__env_", "dotted"),
        (&format!("{long}__env")[..], "long"),
    ] {
        let name = listed
            .iter()
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}… in {listed:?}"));
        let r = c.post(&call(2, name, json!({}))).await;
        assert_eq!(who(r.last()), server, "{name}");
    }
    wait_log(&hub, "shortened").await;
    // A fresh session calls a shortened name without listing first.
    let mut d = Mcp::new(&hub, "g/all");
    d.initialize().await;
    let name = listed
        .iter()
        .find(|n| n.starts_with("my_server__env_"))
        .unwrap();
    let r = d.post(&call(3, name, json!({}))).await;
    assert_eq!(who(r.last()), "dotted");
}

#[tokio::test]
async fn a_members_list_changed_is_the_groups() {
    let hub = Hub::start(group_proxy(json!({"servers": ["a", "b"]})), servers());
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let mut events = RawEvents::new(c.get_stream().await);
    assert_eq!(c.call_text(1, "b__list_changed", json!({})).await, "sent");
    let m = events.next_message(10).await;
    assert_eq!(m["method"], "notifications/tools/list_changed", "{m}");
}

/// The one-shot interface views use (the OpenAPI facade on a group), in
/// process: a request in, its answer out, through a transient group session.
#[tokio::test(flavor = "multi_thread")]
async fn one_shot_requests_through_a_group() {
    use mcp_hub::jsonrpc::Message;
    let state = tempfile::tempdir().unwrap();
    let config =
        json!({"mcpServers": servers(), "groups": {"all": {"servers": ["a", "b"]}}}).to_string();
    let dir = state.path().to_str().unwrap().to_string();
    let lookup = move |k: &str| (k == "STATE_DIRECTORY").then(|| dir.clone());
    let cfg = mcp_hub::config::parse(&config, "test.json", &lookup).unwrap();
    let hub = mcp_hub::hub::Hub::new(cfg);
    let group = hub.current().group("all").unwrap();
    let ask = |id: u64, method: &str, params: Value| {
        Message::from_value(req(json!(id), method, params)).unwrap()
    };

    let list = mcp_hub::views::group::request(&group, &hub, None, ask(1, "tools/list", json!({})))
        .await
        .to_value();
    assert_eq!(list["id"], 1);
    let listed = names(&list, "tools", "name");
    assert!(listed.contains(&"a__echo".to_string()) && listed.contains(&"b__echo".to_string()));

    let answer = mcp_hub::views::group::request(
        &group,
        &hub,
        None,
        ask(2, "tools/call", json!({"name": "b__env", "arguments": {}})),
    )
    .await
    .to_value();
    assert_eq!(answer["id"], 2);
    assert_eq!(who(&answer), "server-b");

    // No client to ask: a server request during the call is refused, saying why.
    let answer = mcp_hub::views::group::request(
        &group,
        &hub,
        None,
        ask(
            3,
            "tools/call",
            json!({"name": "a__test_sampling", "arguments": {"prompt": "hi"}}),
        ),
    )
    .await
    .to_value();
    let t = text(&answer);
    assert!(t.contains("no MCP client to ask"), "{t}");

    let read = mcp_hub::views::group::request(
        &group,
        &hub,
        None,
        ask(
            4,
            "resources/read",
            json!({"uri": "mcp-hub://a/test%3A%2F%2Fstatic-text"}),
        ),
    )
    .await
    .to_value();
    assert!(read["result"]["contents"][0]["text"].is_string(), "{read}");
    hub.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn sampling_during_a_call_reaches_the_client_on_that_call_and_goes_back() {
    let hub = Hub::start(
        group_proxy(json!({"servers": ["a", "p"]})),
        json!({
            "a": fx(json!({"sandbox": false})),
            "p": fx(json!({"sandbox": false, "session": "per-client"})),
        }),
    );
    // Two group sessions at once: the request goes to the one whose call asked.
    let mut c = Mcp::new(&hub, "g/all");
    c.initialize().await;
    let mut other = Mcp::new(&hub, "g/all");
    other.initialize().await;
    for (n, tool) in [(1, "a__test_sampling"), (2, "p__test_sampling")] {
        let mut answer = c
            .post_streaming(&call(n, tool, json!({"prompt": "2+2?"})))
            .await;
        let ask = answer.next().await;
        assert_eq!(ask["method"], "sampling/createMessage", "{tool}: {ask}");
        assert_eq!(ask["params"]["messages"][0]["content"]["text"], "2+2?");
        let reply = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"role": "assistant", "model": "test",
            "content": {"type": "text", "text": "four"}}});
        assert_eq!(c.post(&reply).await.status, 202);
        let done = answer.next().await;
        assert_eq!(done["id"], n);
        assert_eq!(
            done["result"]["content"][0]["text"], "LLM response: four",
            "{tool}"
        );
    }
    assert_eq!(
        other.call_text(3, "a__echo", json!({"text": "fine"})).await,
        "fine"
    );

    // Legacy SSE: the request arrives on the stream, the answer goes back by POST.
    let mut s = LegacySse::connect(&hub, "g/all").await;
    s.post(&req(json!(1), "initialize", init_params("2024-11-05")))
        .await;
    s.next_message(20).await;
    s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    s.post(&call(2, "p__test_sampling", json!({"prompt": "3+3?"})))
        .await;
    let ask = s.next_message(20).await;
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    let reply = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"role": "assistant", "model": "test",
        "content": {"type": "text", "text": "six"}}});
    assert_eq!(s.post(&reply).await, 202);
    let done = s.next_message(20).await;
    assert_eq!(done["id"], 2);
    assert_eq!(done["result"]["content"][0]["text"], "LLM response: six");
}

#[tokio::test]
async fn resource_updates_come_back_under_the_groups_uri() {
    let hub = Hub::start(group_proxy(json!({"servers": ["a", "b"]})), servers());
    let mut c = Mcp::new(&hub, "g/all");
    let init = c.initialize().await;
    assert_eq!(
        init["result"]["capabilities"]["resources"]["subscribe"],
        true
    );
    let mut events = RawEvents::new(c.get_stream().await);
    let uri = "mcp-hub://b/test%3A%2F%2Fwatched-resource";
    let r = c
        .post(&req(json!(1), "resources/subscribe", json!({"uri": uri})))
        .await;
    assert_eq!(r.last()["result"], json!({}), "{}", r.last());
    // a's update of the same URI is not this subscription's; b's is.
    for server in ["a", "b"] {
        c.call_text(
            2,
            &format!("{server}__flood"),
            json!({"method": "notifications/resources/updated", "uri": "test://watched-resource"}),
        )
        .await;
    }
    let m = events.next_message(10).await;
    assert_eq!(m["method"], "notifications/resources/updated", "{m}");
    assert_eq!(m["params"]["uri"], uri);
    // A URI that is not the group's is refused, saying what its URIs look like.
    let r = c
        .post(&req(
            json!(3),
            "resources/read",
            json!({"uri": "test://static-text"}),
        ))
        .await;
    assert_eq!(r.last()["error"]["code"], -32602);
    assert!(r.last()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mcp-hub://<server>/"));
}

/// One stateless 2026-07-28 request on `/g/all/mcp`: its headers, its
/// envelope (with the capabilities `caps`) and no session.
async fn modern_on_group(
    hub: &Hub,
    id: u64,
    method: &str,
    mut params: Value,
    caps: Value,
) -> (u16, Value) {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    let mut r = reqwest::Client::new()
        .post(hub.url("/g/all/mcp"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(n) = params.get("name").and_then(Value::as_str) {
        r = r.header("mcp-name", n);
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let resp = r.json(&body).send().await.unwrap();
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "no session for a modern request"
    );
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    // JSON, or an SSE stream ending with the answer.
    let v = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|m| m.get("id") == Some(&json!(id)))
            .unwrap_or(Value::Null)
    });
    (code, v)
}

#[tokio::test]
async fn a_group_serves_2026_07_28_lists_calls_and_questions() {
    let hub = Hub::start(group_proxy(json!({"servers": ["a", "b"]})), servers());
    let (code, list) = modern_on_group(&hub, 1, "tools/list", json!({}), json!({})).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    let listed = names(&list, "tools", "name");
    assert!(
        listed.contains(&"a__echo".to_string()) && listed.contains(&"b__echo".to_string()),
        "{listed:?}"
    );

    // A call goes to the member its prefix names.
    let (code, answer) = modern_on_group(
        &hub,
        2,
        "tools/call",
        json!({"name": "b__env", "arguments": {}}),
        json!({}),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(who(&answer), "server-b");
    assert_eq!(answer["result"]["resultType"], "complete");

    // A member's question becomes input_required; the retry carries the
    // answer back to that member, and the call completes.
    let caps = json!({"elicitation": {"form": {}}});
    let call = json!({"name": "a__test_elicitation", "arguments": {"message": "who?"}});
    let (code, held) = modern_on_group(&hub, 3, "tools/call", call.clone(), caps.clone()).await;
    assert_eq!(code, 200, "{held}");
    assert_eq!(held["result"]["resultType"], "input_required", "{held}");
    let requests = held["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{held}");
    let (key, asked) = requests.iter().next().unwrap();
    assert_eq!(asked["method"], "elicitation/create");
    assert_eq!(asked["params"]["message"], "who?");
    let state = held["result"]["requestState"].as_str().unwrap().to_string();
    let mut retry = call.clone();
    retry["requestState"] = json!(state);
    retry["inputResponses"] =
        json!({key.clone(): {"action": "accept", "content": {"response": "group client"}}});
    let (code, done) = modern_on_group(&hub, 4, "tools/call", retry, caps).await;
    assert_eq!(code, 200, "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(text(&done).contains("group client"), "{done}");

    // server/discover answers from the group's merged initialize.
    let (code, d) = modern_on_group(&hub, 5, "server/discover", json!({}), json!({})).await;
    assert_eq!(code, 200, "{d}");
    assert!(d["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
}
