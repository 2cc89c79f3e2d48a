//! Merging members' answers into the group's, as plain data: the renamed
//! items of the four lists, and the group's `initialize` result.

use super::naming;
use crate::config::GroupConfig;
use crate::mcp::{LATEST_LEGACY as LATEST_PROTOCOL, LEGACY_VERSIONS as PROTOCOL_VERSIONS};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

/// The lists a group merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl List {
    pub fn from_method(m: &str) -> Option<List> {
        Some(match m {
            "tools/list" => List::Tools,
            "prompts/list" => List::Prompts,
            "resources/list" => List::Resources,
            "resources/templates/list" => List::Templates,
            _ => return None,
        })
    }

    pub fn method(self) -> &'static str {
        match self {
            List::Tools => "tools/list",
            List::Prompts => "prompts/list",
            List::Resources => "resources/list",
            List::Templates => "resources/templates/list",
        }
    }

    /// The result's array.
    pub fn field(self) -> &'static str {
        match self {
            List::Tools => "tools",
            List::Prompts => "prompts",
            List::Resources => "resources",
            List::Templates => "resourceTemplates",
        }
    }

    /// The server capability that says a member has this list.
    pub fn capability(self) -> &'static str {
        match self {
            List::Tools => "tools",
            List::Prompts => "prompts",
            List::Resources | List::Templates => "resources",
        }
    }
}

/// One member's tool or prompt names from one listing: public name → the
/// member's own. Equal tables are one allocation ([`share`]): every group
/// session that listed the same member keeps the same `Arc`.
pub type MemberNames = HashMap<String, String>;

/// Public name → (member index, the member's own name), for tools and
/// prompts, as one session routes them: per member, the table of its last
/// listing (kept while the member is down, so its names still route and
/// answer that it is down).
#[derive(Default)]
pub struct Names(Vec<Option<Arc<MemberNames>>>);

impl Names {
    pub fn get(&self, public: &str) -> Option<(usize, String)> {
        self.0.iter().enumerate().find_map(|(i, t)| {
            t.as_ref()
                .and_then(|t| t.get(public))
                .map(|own| (i, own.clone()))
        })
    }

    /// Replaces `member`'s table with the one from its latest listing.
    pub fn set(&mut self, member: usize, table: Arc<MemberNames>) {
        if self.0.len() <= member {
            self.0.resize(member + 1, None);
        }
        self.0[member] = Some(table);
    }
}

/// Tables handed out by [`share`], by a hash of their content; dead ones are
/// swept as the map grows, so it stays near the number of live tables.
struct Shared {
    tables: HashMap<u64, Vec<Weak<MemberNames>>>,
    sweep_at: usize,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// The one shared allocation of a table equal to `table`: every group
/// session over a member with 20,000 tools would otherwise hold its own
/// copy of the same names.
pub fn share(table: MemberNames) -> Arc<MemberNames> {
    use std::hash::{Hash, Hasher};
    // Order-independent: a map's iteration order differs between equal maps.
    let key = table.iter().fold(table.len() as u64, |acc, (p, o)| {
        let mut h = std::hash::DefaultHasher::new();
        (p, o).hash(&mut h);
        acc.wrapping_add(h.finish())
    });
    let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    let shared = guard.get_or_insert_with(|| Shared {
        tables: HashMap::new(),
        sweep_at: 64,
    });
    let bucket = shared.tables.entry(key).or_default();
    bucket.retain(|w| w.strong_count() > 0);
    if let Some(hit) = bucket
        .iter()
        .filter_map(Weak::upgrade)
        .find(|t| **t == table)
    {
        return hit;
    }
    let table = Arc::new(table);
    bucket.push(Arc::downgrade(&table));
    if shared.tables.len() >= shared.sweep_at {
        shared.tables.retain(|_, b| {
            b.retain(|w| w.strong_count() > 0);
            !b.is_empty()
        });
        shared.sweep_at = (shared.tables.len() * 2).max(64);
    }
    table
}

/// Renames one member's items in place, and records each public name in
/// `names` (this member's table). A public name already taken by an earlier
/// member (`a` + `b__c` against `a__b` + `c`) is shortened with the member's
/// index in its hash, so both stay callable. Returns the names that had to
/// be shortened, as (public, full).
pub fn rename(
    list: List,
    member: usize,
    server: &str,
    sep: &str,
    items: &mut [Value],
    taken: &mut HashSet<String>,
    names: &mut MemberNames,
) -> Vec<(String, String)> {
    let mut shortened = Vec::new();
    for item in items.iter_mut() {
        let Some(obj) = item.as_object_mut() else {
            continue;
        };
        match list {
            List::Tools | List::Prompts => {
                let Some(own) = obj.get("name").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let mut public = naming::public(server, sep, &own);
                if taken.contains(&public) {
                    public = naming::shorten(&format!("{server}{sep}{own}#{member}"));
                }
                let full = format!("{server}{sep}{own}");
                if public != full {
                    shortened.push((public.clone(), full));
                }
                taken.insert(public.clone());
                obj.insert("name".into(), Value::String(public.clone()));
                names.insert(public, own);
            }
            List::Resources => {
                if let Some(uri) = obj.get("uri").and_then(Value::as_str) {
                    let p = naming::public_uri(server, uri);
                    obj.insert("uri".into(), Value::String(p));
                }
            }
            List::Templates => {
                if let Some(t) = obj.get("uriTemplate").and_then(Value::as_str) {
                    let p = naming::public_template(server, t);
                    obj.insert("uriTemplate".into(), Value::String(p));
                }
            }
        }
    }
    shortened
}

/// What a member said in its `initialize`, or why it was not reached.
pub struct MemberInit<'a> {
    pub name: &'a str,
    pub result: Result<Value, String>,
}

/// The group's `initialize` result: the version the client asked for when
/// the hub speaks it, capabilities merged over the reachable members (tools
/// always, with `listChanged`: members coming and going change the list),
/// and instructions that name the servers and how names are built.
pub fn initialize(
    group: &GroupConfig,
    hub_name: &str,
    asked: Option<&str>,
    members: &[MemberInit<'_>],
) -> Value {
    let version = asked
        .filter(|v| PROTOCOL_VERSIONS.contains(v))
        .unwrap_or(LATEST_PROTOCOL);
    let up: Vec<(&str, &Value)> = members
        .iter()
        .filter_map(|m| m.result.as_ref().ok().map(|r| (m.name, r)))
        .collect();
    let has = |cap: &str| up.iter().any(|(_, r)| r["capabilities"].get(cap).is_some());
    let mut caps = Map::new();
    caps.insert("tools".into(), json!({"listChanged": true}));
    if has("prompts") {
        caps.insert("prompts".into(), json!({"listChanged": true}));
    }
    if has("resources") {
        let subscribe = up
            .iter()
            .any(|(_, r)| r["capabilities"]["resources"]["subscribe"] == json!(true));
        caps.insert(
            "resources".into(),
            json!({"listChanged": true, "subscribe": subscribe}),
        );
    }
    if has("logging") {
        caps.insert("logging".into(), json!({}));
    }
    if has("completions") {
        caps.insert("completions".into(), json!({}));
    }
    let names: Vec<String> = members.iter().map(|m| format!("{:?}", m.name)).collect();
    let sep = &group.separator;
    let mut text = format!(
        "This endpoint is the group {:?} of {hub_name}: the tools, prompts and resources of the MCP servers {}. \
         Tool and prompt names are <server>{sep}<name> (shortened with a hash suffix when too long); \
         resource URIs are {}://<server>/<percent-encoded URI of that server>.",
        group.name,
        names.join(", "),
        naming::URI_SCHEME,
    );
    let down: Vec<String> = members
        .iter()
        .filter_map(|m| m.result.as_ref().err().map(|_| format!("{:?}", m.name)))
        .collect();
    if !down.is_empty() {
        text.push_str(&format!(
            " Not reachable right now (their tools appear when they are): {}.",
            down.join(", ")
        ));
    }
    for (name, r) in &up {
        if let Some(i) = r["instructions"].as_str().filter(|i| !i.trim().is_empty()) {
            text.push_str(&format!("\n\n## {name}\n{i}"));
        }
    }
    json!({
        "protocolVersion": version,
        "capabilities": caps,
        "serverInfo": {"name": format!("{hub_name}/g/{}", group.name), "version": env!("CARGO_PKG_VERSION")},
        "instructions": text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> GroupConfig {
        GroupConfig {
            name: "all".into(),
            servers: vec!["a".into(), "b".into()],
            separator: "__".into(),
            auth_tokens: vec![],
            token_source: String::new(),
            tool_filter: None,
            openapi: Default::default(),
        }
    }

    #[test]
    fn colliding_names_stay_apart() {
        let mut taken = HashSet::new();
        let (mut na, mut nb) = (MemberNames::new(), MemberNames::new());
        let mut a = vec![json!({"name": "echo"}), json!({"name": "b__c"})];
        let mut b = vec![json!({"name": "echo"}), json!({"name": "c"})];
        rename(List::Tools, 0, "a", "__", &mut a, &mut taken, &mut na);
        rename(List::Tools, 1, "a__b", "__", &mut b, &mut taken, &mut nb);
        let mut names = Names::default();
        names.set(0, share(na));
        names.set(1, share(nb));
        assert_eq!(a[0]["name"], "a__echo");
        assert_eq!(names.get("a__echo"), Some((0, "echo".to_string())));
        assert_eq!(names.get("a__b__c"), Some((0, "b__c".to_string())));
        let other = b[1]["name"].as_str().unwrap();
        assert_ne!(other, "a__b__c");
        assert_eq!(names.get(other), Some((1, "c".to_string())));
        assert_eq!(names.get("nope"), None);
    }

    #[test]
    fn equal_tables_are_one_allocation() {
        let table = |n: usize| -> MemberNames {
            (0..n)
                .map(|i| (format!("shared-test__t{i}"), format!("t{i}")))
                .collect()
        };
        let a = share(table(100));
        let b = share(table(100));
        assert!(Arc::ptr_eq(&a, &b));
        let c = share(table(101));
        assert!(!Arc::ptr_eq(&a, &c));
        // Once nobody holds it, a table is not kept alive by the sharing.
        let weak = Arc::downgrade(&c);
        drop(c);
        assert!(weak.upgrade().is_none());
        let d = share(table(101));
        assert_eq!(d.len(), 101);
    }

    #[test]
    fn initialize_merges_and_names_the_servers() {
        let a = json!({"capabilities": {"tools": {}, "prompts": {}}, "instructions": "Use a."});
        let r = initialize(
            &group(),
            "hub",
            Some("2025-06-18"),
            &[
                MemberInit {
                    name: "a",
                    result: Ok(a),
                },
                MemberInit {
                    name: "b",
                    result: Err("down".into()),
                },
            ],
        );
        assert_eq!(r["protocolVersion"], "2025-06-18");
        assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
        assert!(r["capabilities"]["prompts"].is_object());
        assert!(r["capabilities"].get("resources").is_none());
        let i = r["instructions"].as_str().unwrap();
        assert!(
            i.contains("\"a\", \"b\"") && i.contains("## a\nUse a."),
            "{i}"
        );
        assert!(i.contains("Not reachable right now"), "{i}");
    }
}
