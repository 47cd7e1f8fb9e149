//! JSON objects parsed strictly: a member name may appear only once.
//!
//! `serde_json` keeps the last of two members with the same name, so a header
//! such as `{"alg":"RS256","alg":"none"}` would mean different things to
//! different parsers. This module refuses it at every nesting level.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// Why bytes are not a strict JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not valid UTF-8 JSON, or trailing bytes after the value.
    Syntax,
    /// Valid JSON, but not an object.
    NotObject,
    /// An object, at any depth, names the same member twice.
    DuplicateMember,
}

/// Parses `bytes` as one JSON object with unique member names throughout.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let duplicate = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer);

    let value = match parsed {
        Ok(value) => value,
        Err(_) if duplicate.get() => return Err(JsonError::DuplicateMember),
        Err(_) => return Err(JsonError::Syntax),
    };
    deserializer.end().map_err(|_| JsonError::Syntax)?;

    match value {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotObject),
    }
}

/// A seed that builds a [`Value`] and flags a repeated member name.
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate member"));
            }
            let value = access.next_value_seed(self)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unique_members() {
        let map = parse_object(br#"{"a":1,"b":{"c":[true,null,"x"]}}"#).unwrap();
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn refuses_duplicates_at_any_depth_and_in_any_spelling() {
        let cases: [&[u8]; 3] = [
            br#"{"a":1,"a":2}"#,
            br#"{"b":{"c":1,"c":1}}"#,
            br#"{"a":1,"\u0061":2}"#,
        ];
        for case in cases {
            assert_eq!(parse_object(case), Err(JsonError::DuplicateMember));
        }
    }

    #[test]
    fn refuses_non_objects_and_trailing_bytes() {
        assert_eq!(parse_object(b"[1]"), Err(JsonError::NotObject));
        assert_eq!(parse_object(b"{} x"), Err(JsonError::Syntax));
        assert_eq!(parse_object(b"foo"), Err(JsonError::Syntax));
    }
}
