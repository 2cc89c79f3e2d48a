//! The router's side of the upstream's lifecycle: deadlines, a lost or
//! restarted upstream, pings and the hub's own request ids.

use super::*;

impl Router {
    /// Answers every exchange past its deadline and cancels it upstream.
    pub fn expire(&mut self, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        for (up, ex) in self.inflight.expired(now) {
            if let Some(a) = ex.audit {
                a.finish(&self.server, "timeout");
            }
            let secs = self.timeout.as_secs_f64();
            let e = format!(
                "server {:?} did not answer {} within {secs}s",
                self.server, ex.method
            );
            let e = err(ex.orig, TIMEOUT_ERROR, e);
            self.settle(ex.call, &e, true);
            fx.push(Effect::To(self.stream(ex.client, &ex.reply), e));
            fx.push(Effect::Up(cancelled(up, "timed out in mcp-hub")));
        }
        fx
    }

    pub fn soonest_deadline(&self) -> Option<Instant> {
        self.inflight.soonest_deadline()
    }

    /// The upstream is gone: every exchange gets an error naming `why`.
    pub fn fail_all(&mut self, why: &str) -> Vec<Effect> {
        self.server_reqs.clear();
        self.own.clear();
        self.ping = None;
        let mut fx = Vec::new();
        for (_, ex) in self.inflight.drain() {
            if let Some(a) = ex.audit {
                a.finish(&self.server, "lost");
            }
            let e = err(
                ex.orig,
                UPSTREAM_ERROR,
                format!("{why}; the request was lost"),
            );
            self.settle(ex.call, &e, true);
            fx.push(Effect::To(self.stream(ex.client, &ex.reply), e));
        }
        fx
    }

    /// A new upstream session: renew the subscriptions clients hold.
    pub fn resubscribe(&mut self) -> Vec<Effect> {
        // Era: a 2026-07-28 upstream is told the set again by one listen.
        if self.modern_up {
            return self.relisten();
        }
        let uris: Vec<String> = self.subs.keys().cloned().collect();
        uris.into_iter()
            .map(|uri| {
                let id = self.inflight.next_id();
                self.own.insert(id);
                Effect::Up(Message::request(
                    id.into(),
                    "resources/subscribe",
                    json!({ "uri": uri }),
                ))
            })
            .collect()
    }

    /// A liveness ping to send, or why the last one counts as unanswered.
    pub fn ping(&mut self, now: Instant, every: Duration) -> Result<Message, String> {
        if let Some((_, sent)) = self.ping {
            return Err(format!(
                "did not answer an MCP ping within {}s",
                now.duration_since(sent).min(every).as_secs()
            ));
        }
        let id = self.inflight.next_id();
        self.ping = Some((id, now));
        Ok(Message::request(id.into(), "ping", json!({})))
    }

    /// A fresh hub id (the shared upstream's own initialize).
    pub fn next_id(&mut self) -> u64 {
        self.inflight.next_id()
    }

    /// For a line the upstream wrote that is not JSON: fail the request it
    /// seems to answer at once.
    pub fn unparseable(&mut self, id: &Id, why: &str) -> Vec<Effect> {
        let msg = format!(
            "server {:?} answered with a line that is not valid JSON: {why}",
            self.server
        );
        self.fail_one(id, &msg)
    }

    /// Fails one exchange, named by its upstream id, with `msg`.
    pub fn fail_one(&mut self, id: &Id, msg: &str) -> Vec<Effect> {
        let Some(ex) = id.as_u64().and_then(|up| self.inflight.complete(up)) else {
            return vec![];
        };
        if let Some(a) = ex.audit {
            a.finish(&self.server, "error");
        }
        let e = err(ex.orig, UPSTREAM_ERROR, msg);
        self.settle(ex.call, &e, true);
        vec![Effect::To(self.stream(ex.client, &ex.reply), e)]
    }
}
