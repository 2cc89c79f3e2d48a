//! The group's own answers: `initialize` merged over the members, the four
//! lists gathered from every member and renamed, and the dispatch of each
//! client request to what handles it.

use super::{lock, push, Inner, Reach, LIST_TIMEOUT, MAX_PAGES};
use crate::jsonrpc::{Id, Message, METHOD_NOT_FOUND};
use crate::session::outbound::Outbound;
use crate::views::group::merge::{self, List, MemberInit};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;

impl Inner {
    pub(super) async fn handle(self: Arc<Self>, msg: Message, reply: Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let method = msg.method().unwrap_or("").to_owned();
        let answer = match method.as_str() {
            "initialize" => self.initialize(id, msg).await,
            "ping" => Message::response(id, json!({})),
            "tools/call" => return self.route_named(List::Tools, msg, &reply).await,
            "prompts/get" => return self.route_named(List::Prompts, msg, &reply).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                return self.route_uri(msg, &reply).await
            }
            "completion/complete" => return self.route_completion(msg, &reply).await,
            "logging/setLevel" => {
                let all = (0..self.members.len()).map(|i| {
                    let me = self.clone();
                    let msg = msg.clone();
                    async move {
                        if let Some(s) = me.slot(i) {
                            let _ = me.ask(&s, i, msg).await;
                        }
                    }
                });
                futures_util::future::join_all(all).await;
                Message::response(id, json!({}))
            }
            m => match List::from_method(m) {
                Some(list) => {
                    let items = self.gather(list).await;
                    Message::response(id, json!({ list.field(): items }))
                }
                None => Message::error(
                    Some(id),
                    METHOD_NOT_FOUND,
                    format!("Method not found: {method} (not served on group endpoints)"),
                ),
            },
        };
        push(&reply, answer, &self.sink);
    }

    pub(super) async fn initialize(self: &Arc<Self>, id: Id, msg: Message) -> Message {
        let asked: Option<String> = msg.param("protocolVersion");
        *lock(&self.init) = Some(msg);
        let opened =
            futures_util::future::join_all((0..self.members.len()).map(|i| self.member(i))).await;
        let mut inits = Vec::new();
        for (i, r) in opened.into_iter().enumerate() {
            let name = self.members[i].name.as_str();
            let result = match r {
                Ok(_) => Ok(lock(&self.members[i].init).clone().unwrap_or_default()),
                Err(Reach::Hidden) => continue,
                Err(Reach::Down(why)) => {
                    self.left_out(name, &why);
                    Err(why)
                }
            };
            inits.push(MemberInit { name, result });
        }
        let hub_name = self.hub.current().settings.name.clone();
        let result = merge::initialize(&self.group.cfg, &hub_name, asked.as_deref(), &inits);
        Message::response(id, result)
    }

    /// Says that a member is left out of an answer, at most once a second
    /// per group and member (every client's list would say it again).
    pub(super) fn left_out(&self, name: &str, why: &str) {
        let group = &self.group.cfg.name;
        if let Some(held) = crate::ratelimit::allow(&format!("group-member:{group}:{name}")) {
            let more = if held > 0 {
                format!(" ({held} more like this suppressed)")
            } else {
                String::new()
            };
            tracing::warn!(mcp_server = %name, mcp_session = %self.info.id,
                "group {group:?}: leaving out server {name:?}: {why}{more}");
        }
    }

    /// One member's whole list (every page).
    pub(super) async fn collect(
        self: &Arc<Self>,
        i: usize,
        list: List,
    ) -> Result<Vec<Value>, Reach> {
        let session = self.member(i).await?;
        let name = &self.members[i].name;
        let has = lock(&self.members[i].init)
            .as_ref()
            .is_none_or(|r| r["capabilities"].get(list.capability()).is_some());
        if !has {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let ask = self.ask(
                &session,
                i,
                Message::request(0u64.into(), list.method(), params),
            );
            let m = tokio::time::timeout(LIST_TIMEOUT, ask)
                .await
                .map_err(|_| {
                    Reach::Down(format!(
                        "server {name:?} did not answer {} within {}s",
                        list.method(),
                        LIST_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(Reach::Down)?;
            if let Some(e) = m.error_raw() {
                return Err(Reach::Down(format!(
                    "server {name:?} answered {} with an error: {}",
                    list.method(),
                    e.get()
                )));
            }
            let r: Value = m
                .result_raw()
                .and_then(|r| serde_json::from_str(r.get()).ok())
                .unwrap_or_default();
            if let Some(a) = r.get(list.field()).and_then(Value::as_array) {
                out.extend(a.iter().cloned());
            }
            cursor = r
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Every member's list, renamed and merged; members that are down are
    /// left out with a log line.
    pub(super) async fn gather(self: &Arc<Self>, list: List) -> Vec<Value> {
        let all = (0..self.members.len()).map(|i| self.collect(i, list));
        let results = futures_util::future::join_all(all).await;
        let (mut taken, mut names, mut items) = (HashSet::new(), Vec::new(), Vec::new());
        let sep = &self.group.cfg.separator;
        for (i, r) in results.into_iter().enumerate() {
            let name = &self.members[i].name;
            match r {
                Ok(mut got) => {
                    let mut own = merge::MemberNames::new();
                    let short = merge::rename(list, i, name, sep, &mut got, &mut taken, &mut own);
                    if matches!(list, List::Tools | List::Prompts) {
                        names.push((i, merge::share(own)));
                    }
                    if let Some((public, full)) = short.first() {
                        crate::ratelimit::warn(
                            &format!("group-short:{}:{name}", self.group.cfg.name),
                            format_args!(
                                "group {:?}: {} name(s) of server {name:?} shortened to fit ^[a-zA-Z0-9_-]{{1,64}}$, e.g. {full:?} is {public:?}",
                                self.group.cfg.name,
                                short.len()
                            ),
                        );
                    }
                    items.extend(got);
                }
                Err(Reach::Hidden) => {}
                Err(Reach::Down(why)) => self.left_out(name, &why),
            }
        }
        if let (List::Tools, Some(f)) = (list, &self.group.cfg.tool_filter) {
            items.retain(|t| t["name"].as_str().is_some_and(|n| f.allows(n)));
        }
        // Per member: a member that is down now keeps its last table and
        // still routes (and answers that it is down), rather than "unknown tool".
        let table = match list {
            List::Tools => Some(&self.tools),
            List::Prompts => Some(&self.prompts),
            _ => None,
        };
        if let Some(table) = table {
            let mut t = lock(table);
            for (i, own) in names {
                t.set(i, own);
            }
        }
        items
    }
}
