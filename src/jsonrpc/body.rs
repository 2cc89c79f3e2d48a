//! Reading what arrives: a POST body (one message or a batch) with the
//! error a client gets for a bad one, and the id salvaged from a line that is
//! not JSON, so the request it answers can fail at once.

use super::{Id, Invalid, Message, INVALID_REQUEST, PARSE_ERROR};
use serde_json::value::RawValue;

/// A POST body: one message or a batch (2025-03-26 clients may batch).
#[derive(Debug)]
pub enum Incoming {
    Single(Message),
    Batch(Vec<Message>),
}

/// Why a body could not be read as JSON-RPC, with the response the client should get.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("parse error: {0}")]
    Parse(String),
    #[error("invalid request: {0}")]
    Invalid(#[from] Invalid),
    #[error("invalid request: an empty batch")]
    EmptyBatch,
}

impl BodyError {
    pub fn to_message(&self) -> Message {
        let code = match self {
            BodyError::Parse(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        };
        Message::error(None, code, self.to_string())
    }
}

pub fn parse_body(bytes: &[u8]) -> Result<Incoming, BodyError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<Box<RawValue>> =
            serde_json::from_slice(bytes).map_err(|e| BodyError::Parse(e.to_string()))?;
        if items.is_empty() {
            return Err(BodyError::EmptyBatch);
        }
        let msgs = items
            .iter()
            .map(|r| Message::from_raw(r))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Incoming::Batch(msgs));
    }
    Ok(Incoming::Single(Message::parse(bytes)?))
}

/// For a line that is not valid JSON: the id it seems to answer, when one
/// can be read (`"id":` followed by a number or a plain string), so the
/// request it belonged to can fail at once instead of at its deadline.
pub fn salvage_id(bytes: &[u8]) -> Option<Id> {
    let text = std::str::from_utf8(bytes).ok()?;
    let at = text.find("\"id\"")? + 4;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    if let Some(s) = rest.strip_prefix('"') {
        let end = s.find('"')?;
        let v = &s[..end];
        return (!v.contains('\\')).then(|| Id::Str(v.into()));
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    let n = &rest[..end];
    (!n.is_empty() && n != "-").then(|| Id::Num(n.into()))
}
