//! Routing a client's request to the one member it names (a tool or prompt
//! by its public name, a resource by its group URI), and relaying what comes
//! back for it: the answer, progress, and server requests under group ids.

use super::{lock, push, Inner, Reach};
use crate::jsonrpc::{to_raw, Message, INVALID_PARAMS, UPSTREAM_ERROR};
use crate::session::outbound::Outbound;
use crate::views::group::merge::List;
use crate::views::group::naming;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Inner {
    /// The member and its own name for a public tool or prompt name: from
    /// the last list, or by its prefix when it was not shortened, or from a
    /// fresh list.
    pub(super) async fn resolve(
        self: &Arc<Self>,
        list: List,
        public: &str,
    ) -> Option<(usize, String)> {
        let table = |me: &Self| {
            let t = if list == List::Tools {
                &me.tools
            } else {
                &me.prompts
            };
            lock(t).get(public)
        };
        if let Some(hit) = table(self) {
            return Some(hit);
        }
        let sep = &self.group.cfg.separator;
        let by_prefix = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let own = public
                    .strip_prefix(m.name.as_str())?
                    .strip_prefix(sep.as_str())?;
                (naming::public(&m.name, sep, own) == public).then(|| (i, own.to_string()))
            })
            .max_by_key(|(i, _)| self.members[*i].name.len());
        if by_prefix.is_some() {
            return by_prefix;
        }
        self.gather(list).await;
        table(self)
    }

    pub(super) async fn route_named(
        self: &Arc<Self>,
        list: List,
        mut msg: Message,
        reply: &Outbound,
    ) {
        let Some(id) = msg.id().cloned() else { return };
        let name: String = msg.param("name").unwrap_or_default();
        let what = if list == List::Tools {
            "tool"
        } else {
            "prompt"
        };
        let unknown = |id| {
            let m = if list == List::Tools {
                format!("Unknown tool: {name}")
            } else {
                format!("Unknown prompt: {name}")
            };
            Message::error(Some(id), INVALID_PARAMS, m)
        };
        let blocked = list == List::Tools
            && self
                .group
                .cfg
                .tool_filter
                .as_ref()
                .is_some_and(|f| !f.allows(&name));
        let target = if blocked {
            None
        } else {
            self.resolve(list, &name).await
        };
        let Some((i, own)) = target else {
            return push(reply, unknown(id), &self.sink);
        };
        msg.set_param("name", &to_raw(&own));
        self.forward(i, msg, reply, &format!("{what} {name:?}"))
            .await;
    }

    pub(super) async fn route_uri(self: &Arc<Self>, mut msg: Message, reply: &Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let uri: String = msg.param("uri").unwrap_or_default();
        let target = naming::private_uri(&uri)
            .and_then(|(server, own)| Some((self.member_index(server)?, own)));
        let Some((i, own)) = target else {
            let e = format!(
                "resource {uri:?} is not one of this group's: its URIs are {}://<server>/<percent-encoded URI>",
                naming::URI_SCHEME
            );
            return push(
                reply,
                Message::error(Some(id), INVALID_PARAMS, e),
                &self.sink,
            );
        };
        msg.set_param("uri", &to_raw(&own));
        self.forward(i, msg, reply, &format!("resource {uri:?}"))
            .await;
    }

    pub(super) async fn route_completion(self: &Arc<Self>, mut msg: Message, reply: &Outbound) {
        let Some(id) = msg.id().cloned() else { return };
        let mut r: Value = msg.param("ref").unwrap_or_default();
        let target = match r["type"].as_str() {
            Some("ref/prompt") => {
                let name = r["name"].as_str().unwrap_or("").to_owned();
                self.resolve(List::Prompts, &name).await.map(|(i, own)| {
                    r["name"] = Value::String(own);
                    i
                })
            }
            Some("ref/resource") => {
                let uri = r["uri"].as_str().unwrap_or("").to_owned();
                naming::private_uri(&uri).and_then(|(server, own)| {
                    let i = self.member_index(server)?;
                    r["uri"] = Value::String(own);
                    Some(i)
                })
            }
            _ => None,
        };
        let Some(i) = target else {
            let e = Message::error(
                Some(id),
                INVALID_PARAMS,
                "params.ref names no prompt or resource of this group",
            );
            return push(reply, e, &self.sink);
        };
        msg.set_param("ref", &to_raw(&r));
        self.forward(i, msg, reply, "completion").await;
    }

    /// Sends a client request to member `i` and relays what comes back for
    /// it to the client's `reply`, until its answer.
    pub(super) async fn forward(
        self: &Arc<Self>,
        i: usize,
        msg: Message,
        reply: &Outbound,
        what: &str,
    ) {
        let Some(id) = msg.id().cloned() else { return };
        let session = match self.member(i).await {
            Ok(s) => s,
            Err(Reach::Hidden) => {
                let e = Message::error(Some(id), INVALID_PARAMS, format!("Unknown {what}"));
                return push(reply, e, &self.sink);
            }
            Err(Reach::Down(why)) => {
                let e = Message::error(
                    Some(id),
                    UPSTREAM_ERROR,
                    format!("{what} is unavailable: {why}"),
                );
                return push(reply, e, &self.sink);
            }
        };
        lock(&self.calls).insert(id.clone(), i);
        // The client stands behind this call: its questions and progress go
        // to the call's stream.
        let relay = |m: Message| {
            if m.is_request() {
                self.ask_client(i, m, Some(reply));
            } else {
                push(reply, m, &self.sink);
            }
        };
        let answer = crate::session::ask(
            &*session,
            msg,
            crate::session::OnServerRequest::Forward(&relay),
            None,
            (&self.group.route, &self.info.id),
        )
        .await;
        lock(&self.calls).remove(&id);
        if let Ok(m) = answer {
            push(reply, m, &self.sink);
        } else {
            let e = Message::error(
                Some(id),
                UPSTREAM_ERROR,
                format!(
                    "server {:?}: the session ended before it answered",
                    self.members[i].name
                ),
            );
            push(reply, e, &self.sink);
        }
    }

    /// A member's request for the client (sampling, elicitation, roots): to
    /// the client under a group id, on the call's stream when it came with
    /// one; refused when there is no client to ask.
    pub(super) fn ask_client(self: &Arc<Self>, i: usize, mut m: Message, reply: Option<&Outbound>) {
        let Some(up) = m.id().cloned() else { return };
        if !self.can_ask {
            let method = m.method().unwrap_or("request").to_owned();
            if let Some(s) = self.slot(i) {
                tokio::spawn(async move {
                    let e = Message::error(
                        Some(up),
                        UPSTREAM_ERROR,
                        format!("mcp-hub cannot route {method} to a client: this request came through a view with no MCP client to ask"),
                    );
                    s.notify(e).await;
                });
            }
            return;
        }
        let g = self.seq.fetch_add(1, Ordering::Relaxed);
        lock(&self.asks).insert(g, (i, up));
        m.set_id(g.into());
        match reply {
            Some(r) => push(r, m, &self.sink),
            None => self.sink.deliver(m),
        }
    }
}
