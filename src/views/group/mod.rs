//! Groups: one MCP endpoint over several servers, `/g/<group>/mcp`
//! (streamable HTTP: 2025 sessions and stateless 2026-07-28) and
//! `/g/<group>/sse` (legacy HTTP+SSE). The registry holds a group as a
//! `hub::GroupEntry` (its config and the roster of its live sessions); this
//! module builds the sessions on it.
//!
//! A client's group session ([`GroupSession`]) holds one ordinary client
//! session per member server, opened through the hub like any other client's,
//! so each member keeps its own session mode (shared or per-client), its
//! limits, its tool filter and its audit log. The group session fans requests
//! out and merges the answers:
//!
//! - `initialize` goes to every member (a per-client member gets the client's
//!   own); the answer merges their capabilities and names the servers in its
//!   instructions, with each member's own instructions after its name.
//! - `tools/list` and `prompts/list` name each item `<server><sep><name>`
//!   (`naming`: shortened when a client would refuse the name); `tools/call`
//!   and `prompts/get` route back by that name, with the member's own name.
//! - `resources/list` and `resources/templates/list` serve URIs as
//!   `mcp-hub://<server>/<percent-encoded URI>`; `resources/read`,
//!   `subscribe` and `unsubscribe` decode them and go to that server, and its
//!   `resources/updated` comes back with the group's URI.
//! - `list_changed` from any member is the group's `list_changed`; so is a
//!   member going down or coming back.
//! - A member that is down (between restarts, failing, or unable to start) is
//!   left out of lists with a log line naming it; a call to one of its tools
//!   gets a JSON-RPC error naming the server. Its tools come back when it does.
//! - A server→client request (sampling, elicitation, roots) a member sends
//!   during a call goes to the client on that call's stream, under an id the
//!   group mints (members' ids may collide), and the client's answer goes back
//!   to that member. Which call it belongs to is the member's session layer's
//!   business, which attributes exactly or refuses, never guesses. Without a
//!   client to ask (the one-shot [`request`]), it is refused with an
//!   error that says so.
//!
//! Per-group `authTokens` decide who reaches the group's routes; each
//! member's own tokens still apply, so a member that does not accept the
//! client's token is not part of that client's view. A group token opens
//! nothing outside the group. The group's `toolFilter` applies to the
//! prefixed names, on top of each member's own filter.
//!
//! For views built on a group (the OpenAPI facade), [`request`] takes
//! one request (`tools/list`, `tools/call`, `resources/*`, `prompts/*`) and
//! returns its answer, through a transient group session: a shared member is
//! one more short session on its upstream; a per-client member starts (and
//! stops) an upstream of its own for the request, as a 2026-07-28 request
//! does on a per-client server.
//!
//! A 2026-07-28 request on a group is a transient group session that
//! `transport::modern` opens and initializes with the request's own client
//! capabilities; the group speaks the 2025 era to its members' sessions, and
//! each member's session speaks its upstream's era.

mod merge;
pub mod naming;
mod session;

pub use session::GroupSession;

use crate::hub::{GroupEntry, Hub};
use crate::jsonrpc::{Message, UPSTREAM_ERROR};
use crate::session::{Downstream, SessionInfo, Token};
use std::sync::Arc;

/// Opens a client's session on a group. Members are reached when the
/// client initializes (or first needs them), not here.
pub fn open(
    group: &Arc<GroupEntry>,
    hub: &Arc<Hub>,
    sink: Arc<dyn Downstream>,
    info: SessionInfo,
) -> GroupSession {
    let s = GroupSession::new(group.clone(), hub.clone(), sink, info, true);
    group.enroll(s.downgrade());
    s
}

/// One request through a transient session, for views built on the
/// group: `tools/list`, `tools/call`, `resources/list`, `resources/read`,
/// `resources/templates/list`, `prompts/list`, `prompts/get`. The answer
/// carries the request's id. `token` is the one the caller came with
/// (checked against the group's tokens by the caller); it decides which
/// members are visible, as for an MCP client. Server→client requests
/// during the call are refused (there is no client to ask).
pub async fn request(
    group: &Arc<GroupEntry>,
    hub: &Arc<Hub>,
    token: Option<Token>,
    msg: Message,
) -> Message {
    struct Quiet;
    impl Downstream for Quiet {
        fn deliver(&self, _: Message) {}
        fn closed(&self, _: &str) {}
    }
    let id = msg.id().cloned().unwrap_or_else(|| 0u64.into());
    let sid = crate::session::new_id();
    // Its one user is the OpenAPI facade.
    let info = SessionInfo::for_token(
        token.as_ref(),
        &sid,
        &group.cfg.token_source,
        crate::metrics::Transport::Openapi,
    );
    let s = GroupSession::new(group.clone(), hub.clone(), Arc::new(Quiet), info, false);
    // A member's question was refused inside the group session already
    // (it cannot ask): this rule only covers the group's own.
    let answer = crate::session::ask(
        &s,
        msg,
        crate::session::OnServerRequest::Refuse(
            crate::jsonrpc::UPSTREAM_ERROR,
            "mcp-hub has no client to ask during this request",
        ),
        None,
        (&group.route, &sid),
    )
    .await
    .unwrap_or_else(|e| {
        Message::error(Some(id), UPSTREAM_ERROR, format!("the group session: {e}"))
    });
    s.close();
    answer
}
