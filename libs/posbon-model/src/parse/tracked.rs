//! The path-tracking JSON reader of the slow path: parses into a
//! [`serde_json::Value`] and, on failure, reports the path where it stopped.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::path::join_path;
use crate::error::{ErrorCode, ValidationErrors};

#[derive(Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Default)]
struct Tracker {
    path: RefCell<Vec<Seg>>,
    duplicate: RefCell<bool>,
}

impl Tracker {
    fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in self.path.borrow().iter() {
            match seg {
                Seg::Key(k) => out = join_path(&out, k),
                Seg::Index(i) => out = format!("{out}[{i}]"),
            }
        }
        out
    }
}

struct ValueSeed<'t>(&'t Tracker);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
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
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            self.0.path.borrow_mut().push(Seg::Index(out.len()));
            match seq.next_element_seed(ValueSeed(self.0))? {
                Some(v) => out.push(v),
                None => {
                    self.0.path.borrow_mut().pop();
                    break;
                }
            }
            self.0.path.borrow_mut().pop();
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let dup = out.contains_key(&key);
            self.0.path.borrow_mut().push(Seg::Key(key.clone()));
            if dup {
                *self.0.duplicate.borrow_mut() = true;
                return Err(de::Error::custom("duplicate field"));
            }
            let v = map.next_value_seed(ValueSeed(self.0))?;
            self.0.path.borrow_mut().pop();
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON into a `Value`, turning a failure into a located error.
pub(super) fn parse_value_tracked(bytes: &[u8]) -> Result<Value, ValidationErrors> {
    let tracker = Tracker::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let res = ValueSeed(&tracker)
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    res.map_err(|e| {
        let text = e.to_string();
        let reason = text.split(" at line ").next().unwrap_or(&text).to_owned();
        let at = format!("line {} column {}", e.line(), e.column());
        let path = tracker.path_string();
        if *tracker.duplicate.borrow() {
            ValidationErrors::single(
                path,
                ErrorCode::DuplicateField,
                format!("field appears more than once (at {at})"),
            )
        } else if reason.starts_with("number out of range") {
            ValidationErrors::single(
                path,
                ErrorCode::NotFinite,
                format!("number overflows a 64-bit float (at {at})"),
            )
        } else {
            let reason = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                "empty payload".to_owned()
            } else {
                reason
            };
            ValidationErrors::single(
                "",
                ErrorCode::MalformedJson,
                format!("malformed json at {at}: {reason}"),
            )
        }
    })
}
