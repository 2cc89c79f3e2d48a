//! What a held modern call runs on, for the session layer's table of held
//! calls (`session::hold`).

use super::ClientSession;
use crate::jsonrpc::Message;

/// The table of held calls, as the transports keep it.
pub type Table = crate::session::hold::Table<Carrier>;
/// One held call.
pub type Held = crate::session::hold::Held<Carrier>;
pub use crate::session::hold::{binding_of, is_handle};

/// What a modern call runs on: a stateless exchange on a shared upstream,
/// or a transient session (a per-client upstream, a group).
// The exchange is the common case and is held in place; a session costs an
// allocation of its own anyway.
#[allow(clippy::large_enum_variant)]
pub enum Carrier {
    Exchange(crate::session::stateless::Stateless),
    Session(ClientSession),
}

impl Carrier {
    /// The client's answer to a question the server asked during the call.
    pub async fn answer(&self, msg: Message) {
        match self {
            Carrier::Exchange(e) => e.answer(msg).await,
            Carrier::Session(s) => s.notify(msg).await,
        }
    }

    /// The client went away: the call is cancelled upstream.
    pub async fn cancel(self, id: &crate::jsonrpc::Id, reason: &str) {
        match self {
            // Dropping the exchange cancels what is still in flight.
            Carrier::Exchange(e) => drop(e),
            Carrier::Session(s) => {
                s.notify(Message::notification(
                    "notifications/cancelled",
                    Some(serde_json::json!({"requestId": id.to_value(), "reason": reason})),
                ))
                .await
            }
        }
    }
}
