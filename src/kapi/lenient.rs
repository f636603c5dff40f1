//! Serde helpers for Kazoo's loosely typed values: FreeSWITCH variables travel as
//! strings, and 4.3 and 5.0 disagree on numbers versus strings (WIRE.md §5.3).
//! A value of an unexpected type reads as absent instead of failing the message.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Error, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(crate::kapi::envelope::kazoo_bool(Some(&v)))
}

/// Text borrowed from the message body where it can be (no escapes in it):
/// call events are decoded on every delivery, and most of their keys are
/// never kept, so copying each into a `String` first was most of the decode.
pub type Str<'a> = Option<Cow<'a, str>>;

/// [`string`] without the copy: a string borrows from the body, a number or a
/// boolean reads as its text, anything else (including `""`) as absent.
pub fn cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
    d.deserialize_any(V::<true>)
}

/// [`cow`] for a key that is a string or nothing: a number, a boolean or
/// anything else reads as absent.
pub fn only_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
    d.deserialize_any(V::<false>)
}

/// Text as [`cow`] reads it; `NUMBERS`: a number or a boolean is its text.
struct V<const NUMBERS: bool>;

impl<'de, const NUMBERS: bool> Visitor<'de> for V<NUMBERS> {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok((!v.is_empty()).then_some(Cow::Borrowed(v)))
    }
    fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((!v.is_empty()).then(|| Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: Error>(self, v: String) -> Result<Self::Value, E> {
        Ok((!v.is_empty()).then_some(Cow::Owned(v)))
    }
    fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(NUMBERS.then(|| Cow::Owned(v.to_string())))
    }
    fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(NUMBERS.then(|| Cow::Owned(v.to_string())))
    }
    fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
        // As serde_json writes the number, which is what `string` gives.
        Ok(serde_json::Number::from_f64(v)
            .filter(|_| NUMBERS)
            .map(|n| Cow::Owned(n.to_string())))
    }
    fn visit_bool<E: Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(NUMBERS.then(|| Cow::Owned(v.to_string())))
    }
    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// A JSON value kept as its text, borrowed from the body.
pub fn raw<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, RawValue>>, D::Error> {
    Ok(Option::<&'de RawValue>::deserialize(d)?.map(Cow::Borrowed))
}
