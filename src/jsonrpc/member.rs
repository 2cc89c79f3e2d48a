//! One member of a raw JSON object, found without building a map of its
//! keys: a `_meta` of 200,000 keys cost about 25 MiB and hundreds of
//! milliseconds of an async worker each time a map of it was built to read
//! one key (`progressToken`), and that per request in flight. And what the
//! hub reads of every request's `params` (its `name`, its progress token),
//! found in one pass.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The value of `key` in the JSON object `obj` (the last one when it is
/// written twice, as a map would keep), borrowed; `None` when `obj` is not
/// an object or has no such key.
pub fn member<'a>(obj: &'a str, key: &str) -> Option<&'a RawValue> {
    let mut de = serde_json::Deserializer::from_str(obj);
    let found = Find(key).deserialize(&mut de).ok()?;
    de.end().ok()?;
    found
}

/// `params.name` and `params._meta.progressToken` (the last of each, as a
/// map would keep), in one pass over `params`.
pub fn name_and_progress(params: &str) -> (Option<&RawValue>, Option<&RawValue>) {
    let mut de = serde_json::Deserializer::from_str(params);
    match NameAndProgress.deserialize(&mut de) {
        Ok(found) if de.end().is_ok() => found,
        _ => (None, None),
    }
}

/// Finds one key of an object; any other value is skipped and finds nothing.
struct Find<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        // Keys are borrowed unless escaped; other values are skipped unread.
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            if k == self.0 {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

struct NameAndProgress;

type Found<'de> = (Option<&'de RawValue>, Option<&'de RawValue>);

impl<'de> DeserializeSeed<'de> for NameAndProgress {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NameAndProgress {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut name, mut progress) = (None, None);
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            match &*k {
                "name" => name = Some(map.next_value::<&'de RawValue>()?),
                // The last `_meta` is the one read, with or without a token.
                "_meta" => progress = map.next_value_seed(Find("progressToken"))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((name, progress))
    }
}

#[cfg(test)]
mod tests {
    use super::member;

    #[test]
    fn finds_the_last_of_a_key_and_nothing_in_a_non_object() {
        let get = |o: &str, k: &str| member(o, k).map(|r| r.get().to_string());
        assert_eq!(
            get(r#"{"a": 1, "b": {"c": [2]}}"#, "b").as_deref(),
            Some(r#"{"c": [2]}"#)
        );
        assert_eq!(get(r#"{"a": 1, "a": "x"}"#, "a").as_deref(), Some(r#""x""#));
        assert_eq!(get(r#"{"\u0061": true}"#, "a").as_deref(), Some("true"));
        assert_eq!(get(r#"{"a": 1}"#, "b"), None);
        assert_eq!(get("[1, 2]", "a"), None);
        assert_eq!(get(r#"{"a": 1} x"#, "a"), None);
    }

    #[test]
    fn name_and_progress_in_one_pass() {
        let get = |p: &str| {
            let (n, t) = super::name_and_progress(p);
            (
                n.map(|r| r.get().to_string()),
                t.map(|r| r.get().to_string()),
            )
        };
        let p =
            r#"{"name": "a", "_meta": {"x": [1, {"y": 2}], "progressToken": 7}, "arguments": {}}"#;
        assert_eq!(get(p), (Some(r#""a""#.into()), Some("7".into())));
        // A `_meta` that is not an object hides no name.
        assert_eq!(
            get(r#"{"_meta": [1], "name": "b"}"#),
            (Some(r#""b""#.into()), None)
        );
        assert_eq!(
            get(r#"{"_meta": {"progressToken": 1}, "_meta": {}}"#),
            (None, None)
        );
        assert_eq!(get("[]"), (None, None));
    }
}
