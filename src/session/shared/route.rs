//! What comes from the upstream: responses back to the client that asked (with
//! its own id), progress to the request that carries the token, server→client
//! requests to the client with the newest request in flight, everything else to
//! every client. Also the failure paths: fail everything in flight, expire
//! requests past their deadline.

use super::Shared;
use crate::jsonrpc::{Id, Kind, Message, TIMEOUT_ERROR, UPSTREAM_ERROR};
use crate::session::{filter_tool_list, Audit};
use crate::upstream::Outbox;
use serde_json::{json, Value};
use std::time::Instant;

impl Shared {
    pub(super) fn deliver(&self, client: u64, msg: Message) {
        let sink = self.lock().clients.get(&client).cloned();
        if let Some(s) = sink {
            s.deliver(msg);
        }
    }

    /// Routes one message from the child.
    pub(super) fn on_upstream(&self, mut msg: Message, tx: &Outbox) {
        let kind = match msg.kind() {
            Ok(Kind::Response { id }) => id.as_u64().map(Route::Response),
            Ok(Kind::Request { id, method: "ping" }) => {
                tx.send_detached(Message::response(id, json!({})));
                None
            }
            Ok(Kind::Request { id, .. }) => Some(Route::Request(id)),
            Ok(Kind::Notification { method }) => Some(match method {
                "notifications/progress" => Route::Progress,
                "notifications/cancelled" => Route::Cancelled,
                _ => Route::Broadcast,
            }),
            Err(_) => None,
        };
        match kind {
            None => {}
            Some(Route::Response(up)) => {
                let (p, sink) = {
                    let mut i = self.lock();
                    if i.ping.is_some_and(|(id, _)| id == up) {
                        i.ping = None;
                        return;
                    }
                    let Some(p) = i.pending.remove(&up) else {
                        return;
                    };
                    i.by_client.remove(&(p.client, p.orig.clone()));
                    let sink = i.clients.get(&p.client).cloned();
                    (p, sink)
                };
                if p.tool_list {
                    if let (Some(f), Some(r)) = (&self.cfg.tool_filter, msg.result_mut()) {
                        filter_tool_list(f, r);
                    }
                }
                if let Some(a) = p.audit {
                    a.finish(&self.cfg.name, Audit::outcome_of(&msg));
                }
                msg.set_id(&p.orig);
                if let Some(s) = sink {
                    s.deliver(msg);
                }
            }
            Some(Route::Request(up_id)) => {
                let target = {
                    let mut i = self.lock();
                    // The most recent request in flight has the highest upstream id.
                    let client = i
                        .pending
                        .iter()
                        .max_by_key(|(k, _)| **k)
                        .map(|(_, p)| p.client)
                        .or_else(|| i.clients.keys().min().copied());
                    client.map(|c| {
                        let hub_id = i.next_id;
                        i.next_id += 1;
                        i.server_reqs.insert(hub_id, (c, up_id.clone()));
                        (c, hub_id)
                    })
                };
                match target {
                    Some((c, hub_id)) => {
                        msg.set_id(&hub_id.into());
                        self.deliver(c, msg);
                    }
                    None => {
                        let m = msg.method().unwrap_or("").to_string();
                        tx.send_detached(Message::error(
                            Some(up_id),
                            UPSTREAM_ERROR,
                            format!("no client is connected to answer {m}"),
                        ));
                    }
                }
            }
            Some(Route::Progress) => {
                let token = msg
                    .params()
                    .and_then(|p| p.get("progressToken"))
                    .and_then(Value::as_u64);
                let target = token.and_then(|t| {
                    let i = self.lock();
                    let p = i.pending.get(&t)?;
                    Some((p.client, p.progress.clone()?))
                });
                if let Some((c, orig)) = target {
                    if let Some(p) = msg.params_mut() {
                        p.insert("progressToken".into(), orig);
                    }
                    self.deliver(c, msg);
                }
            }
            Some(Route::Cancelled) => {
                let req = msg
                    .params()
                    .and_then(|p| p.get("requestId"))
                    .and_then(Id::from_value);
                let target = req.and_then(|r| {
                    let mut i = self.lock();
                    let hub_id = i
                        .server_reqs
                        .iter()
                        .find(|(_, (_, up))| *up == r)
                        .map(|(h, _)| *h)?;
                    let (c, _) = i.server_reqs.remove(&hub_id)?;
                    Some((c, hub_id))
                });
                if let Some((c, hub_id)) = target {
                    if let Some(p) = msg.params_mut() {
                        p.insert("requestId".into(), hub_id.into());
                    }
                    self.deliver(c, msg);
                }
            }
            Some(Route::Broadcast) => {
                let sinks: Vec<_> = self.lock().clients.values().cloned().collect();
                for s in sinks {
                    s.deliver(msg.clone());
                }
            }
        }
    }

    /// Answers every request in flight with an error (the child died or the hub stops).
    pub(super) fn fail_all(&self, why: &str) {
        let (failed, sinks) = {
            let mut i = self.lock();
            i.tx = None;
            i.by_client.clear();
            i.server_reqs.clear();
            let failed: Vec<_> = i.pending.drain().map(|(_, p)| p).collect();
            (failed, i.clients.clone())
        };
        for p in failed {
            if let Some(a) = p.audit {
                a.finish(&self.cfg.name, "lost");
            }
            if let Some(s) = sinks.get(&p.client) {
                s.deliver(Message::error(
                    Some(p.orig),
                    UPSTREAM_ERROR,
                    format!("{why}; the request was lost"),
                ));
            }
        }
    }

    pub(super) fn sweep_deadlines(&self) {
        let now = Instant::now();
        let (expired, tx) = {
            let mut i = self.lock();
            if i.pending.is_empty() {
                return;
            }
            let ids: Vec<u64> = i
                .pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(k, _)| *k)
                .collect();
            let mut out = Vec::new();
            for up in ids {
                if let Some(p) = i.pending.remove(&up) {
                    i.by_client.remove(&(p.client, p.orig.clone()));
                    let sink = i.clients.get(&p.client).cloned();
                    out.push((up, p, sink));
                }
            }
            (out, i.tx.clone())
        };
        for (up, p, sink) in expired {
            let p = {
                let mut p = p;
                if let Some(a) = p.audit.take() {
                    a.finish(&self.cfg.name, "timeout");
                }
                p
            };
            let secs = self.cfg.request_timeout.as_secs_f64();
            let err = format!(
                "server {:?} did not answer {} within {secs}s",
                self.cfg.name, p.method
            );
            if let Some(s) = sink {
                s.deliver(Message::error(Some(p.orig), TIMEOUT_ERROR, err));
            }
            if let Some(tx) = &tx {
                let params = json!({"requestId": up, "reason": "timed out in mcp-hub"});
                tx.send_detached(Message::notification(
                    "notifications/cancelled",
                    Some(params),
                ));
            }
        }
    }
}

pub(super) enum Route {
    Response(u64),
    Request(Id),
    Progress,
    Cancelled,
    Broadcast,
}
