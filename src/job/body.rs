//! Reads a `POST /job` body into just what validation looks at, so that its memory is
//! bounded by the argument limit rather than by what a client sends.
//!
//! `serde_json::Value` costs tens of bytes per element: a 64 KiB array of zeros is
//! megabytes. Here unknown fields are skipped without being kept, nested lists and
//! objects where validation wants a scalar are kept empty (the refusal names their type
//! all the same), and `entrypoint_arguments` keeps one item more than the limit.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::MAX_ARGUMENTS;

/// A request body as validation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody(pub Value);

impl<'de> Deserialize<'de> for RequestBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Top).map(RequestBody)
    }
}

/// Scalars as they are; a list or an object emptied (validation refuses it by its type).
struct Shallow;

impl<'de> DeserializeSeed<'de> for Shallow {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shallow {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Object(Map::new()))
    }
}

/// The body: the three fields validation reads; anything else is skipped.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" | "algorithm" => {
                    let value = map.next_value_seed(Shallow)?;
                    fields.insert(key, value);
                }
                "entrypoint_arguments" => {
                    let value = map.next_value_seed(Arguments)?;
                    fields.insert(key, value);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(fields))
    }
    // Anything but an object is refused by validation; what it held does not matter.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Shallow.visit_seq(seq)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Shallow.visit_f64(v)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Ok(Value::String(String::new()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// `entrypoint_arguments`: up to one item more than the limit, each item shallow.
struct Arguments;

impl<'de> DeserializeSeed<'de> for Arguments {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Arguments {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of arguments")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while items.len() <= MAX_ARGUMENTS {
            match seq.next_element_seed(Argument)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Shallow.visit_map(map)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Shallow.visit_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Shallow.visit_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Shallow.visit_u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Shallow.visit_f64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Shallow.visit_str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// One argument: its `name` and `value`, shallow; other keys skipped.
struct Argument;

impl<'de> DeserializeSeed<'de> for Argument {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Argument {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an argument {name, value}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "name" || key == "value" {
                let value = map.next_value_seed(Shallow)?;
                fields.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Shallow.visit_seq(seq)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Shallow.visit_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Shallow.visit_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Shallow.visit_u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Shallow.visit_f64(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Shallow.visit_str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: &Value) -> Value {
        serde_json::from_str::<RequestBody>(&v.to_string())
            .unwrap()
            .0
    }

    #[test]
    fn a_multiomix_body_reads_as_it_is() {
        let body = json!({"name": "BreastCancerBBHA", "algorithm": 1,
            "entrypoint_arguments": [
                {"name": "app-name", "value": "exp-42-app"},
                {"name": "n-stars", "value": 15},
                {"name": "flag", "value": true},
                {"name": "ratio", "value": -0.5}]});
        assert_eq!(read(&body), body);
    }

    #[test]
    fn what_validation_does_not_read_is_dropped_or_emptied() {
        let body = json!({"extra": [1, 2, 3], "name": {"a": 1}, "algorithm": [1],
            "entrypoint_arguments": [{"name": "x", "value": [0, 0], "other": "y"}, 5, [1]]});
        assert_eq!(
            read(&body),
            json!({"name": {}, "algorithm": [],
                   "entrypoint_arguments": [{"name": "x", "value": []}, 5, []]})
        );
        for other in [json!([1, 2]), json!("text"), json!(null), json!(3)] {
            assert!(!read(&other).is_object());
        }
    }

    #[test]
    fn the_arguments_stop_one_past_the_limit() {
        let args: Vec<Value> = (0..MAX_ARGUMENTS * 3)
            .map(|i| json!({"name": format!("a{i}"), "value": i}))
            .collect();
        let read = read(&json!({ "entrypoint_arguments": args }));
        assert_eq!(
            read["entrypoint_arguments"].as_array().unwrap().len(),
            MAX_ARGUMENTS + 1
        );
    }
}
