//! A tool call's body, parsed once and checked in place, within bounds: the
//! parsed tree of a body is many times its bytes (a `1,` in an array is a
//! 2-byte item and a whole `Value`), so before parsing, one pass that
//! allocates nothing counts the body's values and its tree's size is
//! estimated. Trees being checked share one budget ([`TREE_BUDGET`], the
//! whole hub's): a body over it alone is refused with 413, others wait their
//! turn. Parsing and checking a large body run off the async workers, so
//! other requests (`/healthz` among them) are answered meanwhile.
//!
//! Errors are bounded too ([`MAX_ERRORS`] of at most [`MAX_MESSAGE`] bytes):
//! the validator collects every error it finds before handing out the first,
//! so a body of more than [`FULL_CHECK_VALUES`] values is checked for its
//! first error only, which stops at that error.

use super::call::{invalid_input, Reply};
use bytes::Bytes;
use http::StatusCode;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of parsed bodies being checked at once, hub-wide.
pub const TREE_BUDGET: usize = 32 << 20;
/// Errors in one 422 (the last says how many more there were).
pub const MAX_ERRORS: usize = 20;
/// Bytes of one error's message, and of one `loc` segment.
pub const MAX_MESSAGE: usize = 200;
const MAX_LOC: usize = 32;
/// Bodies up to this many values get every error (up to [`MAX_ERRORS`]).
pub const FULL_CHECK_VALUES: u64 = 10_000;
// Bodies above this size are scanned and parsed off the async workers, one
// at a time with the hub's other large messages.
use crate::offload::INLINE;

static BUDGET: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();

fn budget() -> Arc<Semaphore> {
    BUDGET
        .get_or_init(|| Arc::new(Semaphore::new(TREE_BUDGET >> 10)))
        .clone()
}

/// Parsed arguments, with their share of the budget (held until dropped).
pub struct Checked {
    pub args: Value,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Tally {
    values: u64,
    bytes: u64,
}

struct Count<'a>(&'a mut Tally);

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.0.values += 1;
        self.0.bytes += s.len() as u64;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.values += 1;
        while seq.next_element_seed(Count(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.values += 1;
        while map.next_key_seed(Count(self.0))?.is_some() {
            map.next_value_seed(Count(self.0))?;
        }
        Ok(())
    }
}

/// The tree's size once parsed: each value, each key's entry, string bytes.
fn estimate(body: &[u8]) -> Option<Tally> {
    let mut t = Tally::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    Count(&mut t).deserialize(&mut de).ok()?;
    de.end().ok()?;
    t.bytes += t.values * std::mem::size_of::<Value>() as u64 * 3 / 2;
    Some(t)
}

/// Parses the body (an object of arguments) and checks it against `schema`.
pub async fn check(body: Bytes, schema: Option<Arc<str>>) -> Result<Checked, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        let args = Value::Object(Default::default());
        return check_parsed(args, schema.as_deref(), 0).map(|args| Checked {
            args,
            _permit: None,
        });
    }
    // Invalid JSON is left to the parse below, which says where.
    let tally = if body.len() > INLINE {
        let b = body.clone();
        crate::offload::run_caught(move || estimate(&b))
            .await
            .ok()
            .flatten()
    } else {
        estimate(&body)
    }
    .unwrap_or_default();
    let kib = tally.bytes.div_ceil(1024);
    if kib > (TREE_BUDGET >> 10) as u64 {
        return Err(super::call::detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body holds {} JSON values, about {} MiB once parsed: over the {} MiB the OpenAPI facade parses at once to check arguments (fixed)",
                tally.values,
                kib >> 10,
                TREE_BUDGET >> 20
            ),
        ));
    }
    let permit = budget()
        .acquire_many_owned(kib.max(1) as u32)
        .await
        .map_err(|_| super::call::detail(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let large = body.len() > INLINE || body_len_large(&tally);
    let work = move || {
        let args = super::call::arguments_value(&body)?;
        check_parsed(args, schema.as_deref(), tally.values)
    };
    let args = if large {
        crate::offload::run_caught(work).await.unwrap_or_else(|_| {
            Err(super::call::detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "checking the arguments failed",
            ))
        })?
    } else {
        work()?
    };
    Ok(Checked {
        args,
        _permit: Some(permit),
    })
}

fn body_len_large(t: &Tally) -> bool {
    t.bytes as usize > INLINE
}

fn check_parsed(args: Value, schema: Option<&str>, values: u64) -> Result<Value, Reply> {
    let Some(schema) = schema.and_then(|s| serde_json::from_str::<Value>(s).ok()) else {
        return Ok(args);
    };
    // A schema the validator cannot compile (an external `$ref`, a draft it
    // does not know) checks nothing: the server still checks its own input.
    let Ok(validator) = jsonschema::validator_for(&schema) else {
        return Ok(args);
    };
    if validator.is_valid(&args) {
        return Ok(args);
    }
    let mut errors = Vec::new();
    if values > FULL_CHECK_VALUES {
        if let Err(e) = validator.validate(&args) {
            errors.push(entry(&e));
        }
        errors.push(json!({"type": "too_many_errors", "loc": ["body"],
            "msg": format!("the body has {values} values, over {FULL_CHECK_VALUES}: only its first error is shown")}));
    } else {
        let mut all = validator.iter_errors(&args);
        for e in all.by_ref().take(MAX_ERRORS) {
            errors.push(entry(&e));
        }
        let more = all.count();
        if more > 0 {
            errors.pop();
            errors.push(json!({"type": "too_many_errors", "loc": ["body"],
                "msg": format!("{} more errors not shown (at most {MAX_ERRORS} are)", more + 1)}));
        }
    }
    Err(invalid_input(errors))
}

/// Text cut at `cap` bytes; formatting stops there.
struct Capped {
    s: String,
    cap: usize,
}

impl Write for Capped {
    fn write_str(&mut self, t: &str) -> std::fmt::Result {
        let room = self.cap - self.s.len();
        if t.len() <= room {
            self.s.push_str(t);
            return Ok(());
        }
        let mut end = room;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        self.s.push_str(&t[..end]);
        Err(std::fmt::Error)
    }
}

fn capped(v: impl std::fmt::Display) -> String {
    let mut c = Capped {
        s: String::new(),
        cap: MAX_MESSAGE,
    };
    if write!(c, "{v}").is_err() {
        // Room for the ellipsis within the cap.
        while c.s.len() > MAX_MESSAGE - 3 {
            c.s.pop();
        }
        c.s.push('…');
    }
    c.s
}

fn entry(e: &jsonschema::ValidationError<'_>) -> Value {
    let mut loc = vec![json!("body")];
    let path = e.instance_path();
    loc.extend(
        path.as_str()
            .split('/')
            .skip(1)
            .take(MAX_LOC)
            .map(|s| json!(capped(s.replace("~1", "/").replace("~0", "~")))),
    );
    // FastAPI names a missing field in `loc`; so does this.
    if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
        loc.push(match property.as_str() {
            Some(p) => json!(capped(p)),
            None => json!(capped(property)),
        });
    }
    json!({"type": e.kind().keyword(), "loc": loc, "msg": capped(e)})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: String, schema: &str) -> Result<Checked, Reply> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(check(Bytes::from(body), Some(Arc::from(schema))))
    }

    const ARRAY: &str = r#"{"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}"#;

    #[test]
    fn many_wrong_items_give_at_most_twenty_short_errors() {
        for n in [5_000usize, 100_000] {
            let body = format!(r#"{{"items": [{}1]}}"#, "1,".repeat(n - 1));
            let (status, reply) = run(body, ARRAY).err().unwrap();
            assert_eq!(status, 422);
            let errors = reply["detail"].as_array().unwrap();
            assert!(
                !errors.is_empty() && errors.len() <= MAX_ERRORS,
                "{}",
                errors.len()
            );
            assert!(errors
                .iter()
                .all(|e| e["msg"].as_str().unwrap().len() <= MAX_MESSAGE));
            assert!(reply.to_string().len() <= 64 << 10);
            assert_eq!(errors[0]["loc"], json!(["body", "items", "0"]));
        }
    }

    #[test]
    fn a_huge_string_is_cut_in_the_message() {
        let body = format!(r#"{{"items": "{}"}}"#, "é".repeat(100_000));
        let (_, reply) = run(body, ARRAY).err().unwrap();
        let msg = reply["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.len() <= MAX_MESSAGE && msg.ends_with('…'), "{msg}");
    }

    #[test]
    fn a_tree_over_the_budget_is_refused_before_parsing() {
        let body = format!(r#"{{"items": [{}1]}}"#, "1,".repeat(2_000_000));
        let (status, reply) = run(body, ARRAY).err().unwrap();
        assert_eq!(status, 413);
        assert!(reply.to_string().contains("32 MiB"), "{reply}");
        let ok = format!(r#"{{"items": [{}"x"]}}"#, r#""x","#.repeat(100_000));
        assert_eq!(
            run(ok, ARRAY).ok().unwrap().args["items"]
                .as_array()
                .unwrap()
                .len(),
            100_001
        );
    }
}
