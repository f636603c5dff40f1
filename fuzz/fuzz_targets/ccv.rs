//! The custom-variables scanner against serde_json on the same text
//! (differential): the same members in the same order, and every value we
//! keep parses as strict JSON.
#![no_main]

use std::borrow::Cow;

use kazoo_channels::kapi::members::members;
use kazoo_channels::kapi::strict::{self, Kept};
use libfuzzer_sys::fuzz_target;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// serde_json's own split of an object: keys unescaped, values as text.
fn reference(text: &str) -> Option<Vec<(String, String)>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                let v = m.next_value::<&'de RawValue>()?;
                out.push((k.into_owned(), v.get().to_owned()));
            }
            Ok(out)
        }
    }
    if !text.starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = serde::Deserializer::deserialize_map(&mut de, V).ok()?;
    de.end().ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The scanner only ever sees text serde_json checked (a RawValue).
    let Ok(raw) = serde_json::from_str::<Box<RawValue>>(text) else {
        return;
    };
    let ours: Option<Vec<(String, String)>> = members(&raw).map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.into_owned(), v.to_owned()))
            .collect()
    });
    let theirs = reference(raw.get());
    match (&ours, &theirs) {
        (Some(a), Some(b)) => assert_eq!(a, b, "{text}"),
        // A key serde refuses to unescape (a lone surrogate) may not be split.
        (None, Some(_)) | (None, None) => {}
        (Some(_), None) => panic!("the scanner split what serde_json refuses: {text}"),
    }
    // Every value the custom-variable rule keeps is one a strict reader takes.
    for (key, text) in ours.unwrap_or_default() {
        let kept = match strict::value(&key, &text) {
            Kept::Same => text.clone(),
            Kept::Fixed(t) => t.into_owned(),
            Kept::Dropped => continue,
        };
        if let Err(e) = serde_json::from_str::<Value>(&kept) {
            panic!("kept {kept:?} (from {text:?}) is not strict JSON: {e}");
        }
        assert!(strict::depth(&kept) <= strict::MAX_DEPTH, "{kept}");
    }
});
