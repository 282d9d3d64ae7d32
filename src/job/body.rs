//! Reads a `POST /job` body into just what validation looks at, so that its memory is
//! bounded by the argument limit rather than by what a client sends.
//!
//! `serde_json::Value` costs tens of bytes per element: a 64 KiB array of zeros is
//! megabytes. Here unknown fields are skipped without being kept, nested lists and
//! objects where validation wants a scalar are kept empty (the refusal names their type
//! all the same), and `entrypoint_arguments` keeps one item more than the limit.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::MAX_ARGUMENTS;

/// A request body as validation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody(pub Value);

impl<'de> Deserialize<'de> for RequestBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Read::<Body>::new().deserialize(d).map(RequestBody)
    }
}

/// What one place of the body keeps of a list and of an object. The readers differ only
/// in that: every one keeps a scalar as it is (see [`Read`]).
trait Keep {
    /// Says what the place holds, for serde's error messages.
    const EXPECTING: &'static str;
    fn list<'de, A: SeqAccess<'de>>(seq: A) -> Result<Value, A::Error>;
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Value, A::Error>;
}

/// Reads one value: a scalar as it is, a list or an object as `K` keeps it.
struct Read<K>(PhantomData<K>);

impl<K> Read<K> {
    fn new() -> Self {
        Read(PhantomData)
    }
}

impl<'de, K: Keep> DeserializeSeed<'de> for Read<K> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: Keep> Visitor<'de> for Read<K> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(K::EXPECTING)
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
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        K::list(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        K::object(map)
    }
}

/// Where validation wants a scalar: a list or an object is read through and kept empty
/// (validation refuses it by its type all the same).
enum Shallow {}

impl Keep for Shallow {
    const EXPECTING: &'static str = "any JSON value";
    fn list<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(Vec::new()))
    }
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Object(Map::new()))
    }
}

/// The body: the three fields validation reads; anything else is skipped. Anything but an
/// object is refused by validation; what it held does not matter.
enum Body {}

impl Keep for Body {
    const EXPECTING: &'static str = "a JSON object";
    fn list<'de, A: SeqAccess<'de>>(seq: A) -> Result<Value, A::Error> {
        Shallow::list(seq)
    }
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match key.as_str() {
                "name" | "algorithm" => map.next_value_seed(Read::<Shallow>::new())?,
                "entrypoint_arguments" => map.next_value_seed(Read::<Arguments>::new())?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// `entrypoint_arguments`: up to one item more than the limit, each item an [`Argument`].
enum Arguments {}

impl Keep for Arguments {
    const EXPECTING: &'static str = "a list of arguments";
    fn list<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while items.len() <= MAX_ARGUMENTS {
            match seq.next_element_seed(Read::<Argument>::new())? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Array(items))
    }
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Value, A::Error> {
        Shallow::object(map)
    }
}

/// One argument: its `name` and `value`, shallow; other keys skipped.
enum Argument {}

impl Keep for Argument {
    const EXPECTING: &'static str = "an argument {name, value}";
    fn list<'de, A: SeqAccess<'de>>(seq: A) -> Result<Value, A::Error> {
        Shallow::list(seq)
    }
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "name" || key == "value" {
                let value = map.next_value_seed(Read::<Shallow>::new())?;
                fields.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(fields))
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
