//! A client session's side of a shared upstream: its requests go up with
//! hub-owned ids, its `initialize` is answered from the cache, its cancellations
//! and its answers to server→client requests are translated back.

use super::{Pending, Shared};
use crate::jsonrpc::{Id, Kind, Message, UPSTREAM_ERROR};
use crate::session::{blocked_call, PROTOCOL_VERSIONS};
use crate::session::{Audit, SessionInfo};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// One client session's handle on a shared upstream.
pub struct Client {
    pub(super) id: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) info: Arc<SessionInfo>,
}

impl Client {
    pub async fn send(&self, mut msg: Message) {
        let sh = &self.shared;
        let kind = match msg.kind() {
            Ok(Kind::Request { id, method }) => Some((Some(id), method.to_string())),
            Ok(Kind::Notification { method }) => Some((None, method.to_string())),
            Ok(Kind::Response { id }) => {
                let target = id.as_u64().and_then(|h| {
                    let mut i = sh.lock();
                    match i.server_reqs.get(&h) {
                        Some((c, _)) if *c == self.id => {
                            let (_, up) = i.server_reqs.remove(&h)?;
                            Some((up, i.tx.clone()?))
                        }
                        _ => None,
                    }
                });
                if let Some((up, tx)) = target {
                    msg.set_id(&up);
                    let _ = tx.send(&msg).await;
                }
                return;
            }
            Err(_) => None,
        };
        let Some((id, method)) = kind else { return };
        match (id, method.as_str()) {
            (Some(id), "initialize") => {
                let reply = match sh.ensure_ready().await {
                    Ok(()) => {
                        let mut result = sh.lock().init_result.clone().unwrap_or(Value::Null);
                        let asked = msg
                            .params()
                            .and_then(|p| p.get("protocolVersion"))
                            .and_then(Value::as_str);
                        if let (Some(v), Some(obj)) = (asked, result.as_object_mut()) {
                            if PROTOCOL_VERSIONS.contains(&v) {
                                obj.insert("protocolVersion".into(), v.into());
                            }
                        }
                        Message::response(id, result)
                    }
                    Err(e) => Message::error(Some(id), UPSTREAM_ERROR, e),
                };
                sh.deliver(self.id, reply);
            }
            (Some(id), "ping") => sh.deliver(self.id, Message::response(id, json!({}))),
            (Some(id), _) => {
                if let Some(err) = blocked_call(sh.cfg.tool_filter.as_ref(), &id, &msg) {
                    sh.deliver(self.id, err);
                    return;
                }
                if let Err(e) = sh.ensure_ready().await {
                    sh.deliver(self.id, Message::error(Some(id), UPSTREAM_ERROR, e));
                    return;
                }
                let progress = msg.progress_token().cloned();
                let sent = {
                    let mut i = sh.lock();
                    match i.tx.clone() {
                        None => None,
                        Some(tx) => {
                            let up = i.next_id;
                            i.next_id += 1;
                            i.by_client.insert((self.id, id.clone()), up);
                            i.pending.insert(
                                up,
                                Pending {
                                    client: self.id,
                                    orig: id.clone(),
                                    progress: progress.clone(),
                                    tool_list: method == "tools/list",
                                    method: method.clone(),
                                    deadline: Instant::now() + sh.cfg.request_timeout,
                                    audit: Audit::start(&sh.cfg, &msg, &self.info),
                                },
                            );
                            Some((up, tx))
                        }
                    }
                };
                let Some((up, tx)) = sent else {
                    let e = format!("server {:?} is restarting; try again", sh.cfg.name);
                    sh.deliver(self.id, Message::error(Some(id), UPSTREAM_ERROR, e));
                    return;
                };
                msg.set_id(&up.into());
                if progress.is_some() {
                    msg.set_progress_token(up.into());
                }
                if tx.send(&msg).await.is_err() {
                    let lost = sh.lock().pending.remove(&up);
                    if lost.is_some() {
                        let e = format!(
                            "server {:?} went away before the request was sent",
                            sh.cfg.name
                        );
                        sh.deliver(self.id, Message::error(Some(id), UPSTREAM_ERROR, e));
                    }
                }
            }
            (None, "notifications/initialized") => {}
            (None, "notifications/cancelled") => {
                let req = msg
                    .params()
                    .and_then(|p| p.get("requestId"))
                    .and_then(Id::from_value);
                let target = req.and_then(|r| {
                    let mut i = sh.lock();
                    let up = i.by_client.remove(&(self.id, r))?;
                    i.pending.remove(&up);
                    Some((up, i.tx.clone()?))
                });
                if let Some((up, tx)) = target {
                    if let Some(p) = msg.params_mut() {
                        p.insert("requestId".into(), up.into());
                    }
                    let _ = tx.send(&msg).await;
                }
            }
            (None, _) => {
                let tx = sh.lock().tx.clone();
                if let Some(tx) = tx {
                    let _ = tx.send(&msg).await;
                }
            }
        }
    }

    pub fn close(&self) {
        let sh = &self.shared;
        let (cancel, tx) = {
            let mut i = sh.lock();
            if i.clients.remove(&self.id).is_none() {
                return;
            }
            let mine: Vec<u64> = i
                .pending
                .iter()
                .filter(|(_, p)| p.client == self.id)
                .map(|(k, _)| *k)
                .collect();
            for up in &mine {
                if let Some(p) = i.pending.remove(up) {
                    i.by_client.remove(&(self.id, p.orig));
                }
            }
            i.server_reqs.retain(|_, (c, _)| *c != self.id);
            if i.clients.is_empty() {
                i.last_session_end = Instant::now();
            }
            (mine, i.tx.clone())
        };
        if let Some(tx) = tx {
            for up in cancel {
                let params = json!({"requestId": up, "reason": "client session ended"});
                tx.send_detached(Message::notification(
                    "notifications/cancelled",
                    Some(params),
                ));
            }
        }
        sh.sup.session_closed();
        sh.wake.notify_one();
    }
}
