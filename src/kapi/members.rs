//! The members of a JSON object already checked by serde_json (a `RawValue`),
//! found by scanning its text. The registry splits the custom variables of
//! every event it applies; through serde's visitor that was a sixth of the
//! time an event took, all of it re-checking what the decode had checked.

use std::borrow::Cow;

use serde_json::value::RawValue;

/// Keys unescaped (borrowed where they need no unescaping), values as their
/// JSON text; `None` for anything but an object. Same members, in the same
/// order, as serde_json's parser finds them (the tests compare the two).
pub fn members(raw: &RawValue) -> Option<Vec<(Cow<'_, str>, &'_ str)>> {
    let mut out = Vec::new();
    members_into(raw, &mut out).then_some(out)
}

/// [`members`] into `out` (cleared first), so a caller splitting an object
/// per event reuses one buffer; `false` for anything but an object.
pub fn members_into<'r>(raw: &'r RawValue, out: &mut Vec<(Cow<'r, str>, &'r str)>) -> bool {
    out.clear();
    let text = raw.get();
    let b = text.as_bytes();
    if b.first() != Some(&b'{') {
        return false;
    }
    let mut i = ws(b, 1);
    // Most events' application variables are `{}`: no allocation for those.
    if b.get(i) == Some(&b'"') {
        out.reserve(16);
    }
    while b.get(i) == Some(&b'"') {
        let Some(end) = string_end(b, i) else {
            return false;
        };
        let key = &text[i + 1..end - 1];
        let key = if key.contains('\\') {
            match serde_json::from_str::<String>(&text[i..end]) {
                Ok(k) => Cow::Owned(k),
                Err(_) => return false,
            }
        } else {
            Cow::Borrowed(key)
        };
        i = ws(b, end);
        if b.get(i) != Some(&b':') {
            return false;
        }
        i = ws(b, i + 1);
        let Some(end) = value_end(b, i) else {
            return false;
        };
        out.push((key, &text[i..end]));
        i = ws(b, end);
        if b.get(i) == Some(&b',') {
            i = ws(b, i + 1);
        }
    }
    b.get(i) == Some(&b'}')
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Past the closing quote of the string opening at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Past the value starting at `i`.
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(
                b.get(i),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kapi::lenient;
    use serde::Deserialize;

    /// The reference: the same split through serde_json's own parser.
    fn object_entries(raw: &RawValue) -> Option<Vec<(Cow<'_, str>, &'_ RawValue)>> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Option<Vec<(Cow<'de, str>, &'de RawValue)>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
                    out.push((k, m.next_value::<&'de RawValue>()?));
                }
                Ok(Some(out))
            }
        }
        if !raw.get().starts_with('{') {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(raw.get());
        serde::Deserializer::deserialize_map(&mut de, V)
            .ok()
            .flatten()
    }

    /// An object key, borrowed unless it had escapes (serde's own `Cow` always copies).
    struct Key<'a>(Cow<'a, str>);

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Key(lenient::cow(d)?.unwrap_or_default()))
        }
    }

    #[test]
    fn members_are_serde_json_s() {
        for text in [
            "{}",
            "{ }",
            r#"{"a":"b"}"#,
            r#"{"Account-ID":"x","N":5,"F":-1.5e3,"T":true,"Z":null,"E":""}"#,
            r#"{ "a" : "b\"}," ,	"c":{"d":[1,"]}",{"e":"\\"}]},
               "k\u00e9y\"":"v\\\"" , "l":[] }"#,
            r#"{"nested":{"a":{"b":{}}},"s":"{[\"","x":[[],[{}]]}"#,
        ] {
            let raw = RawValue::from_string(text.to_string()).unwrap();
            let ours = members(&raw).unwrap();
            let theirs: Vec<(Cow<'_, str>, &str)> = object_entries(&raw)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, v.get()))
                .collect();
            assert_eq!(ours, theirs, "{text}");
        }
        for text in [r#""{}""#, "[1]", "5"] {
            let raw = RawValue::from_string(text.to_string()).unwrap();
            assert!(members(&raw).is_none(), "{text}");
        }
    }
}
