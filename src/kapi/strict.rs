//! The one rule for custom variables (`Custom-Channel-Vars`,
//! `Custom-Application-Vars`) at intake. They are kept as the JSON text they
//! arrived as, and serde_json checks only the grammar of a raw value: a lone
//! UTF-16 surrogate (`"\ud800"`), a number past f64's range (`1e400`) and deep
//! nesting all pass it, yet a strict reader (serde_json's own `Value`, and so
//! a peer reading our snapshot) refuses them, and nesting past its limit made
//! a whole snapshot part unreadable. So, once, where a variable is taken in:
//!
//! - a lone surrogate escape becomes `\ufffd` (U+FFFD), as a lossy UTF-16
//!   decoder reads it;
//! - a value a strict reader still refuses (a number out of range, anywhere
//!   in it) or nested deeper than [`MAX_DEPTH`] is kept as a string of its
//!   JSON text: nothing is lost, and every reader can read it;
//! - a variable longer than [`MAX_BYTES`] (key and value) is dropped, as a
//!   channel's own values past 64 KiB are.
//!
//! Everything the registry stores then parses with serde_json's defaults, so
//! every reply and snapshot part built from it does.

use std::borrow::Cow;

/// Nesting allowed inside one variable's value. Kazoo's variables are flat
/// strings; a snapshot part wraps a value in four more levels, well inside
/// serde_json's limit of 128.
pub const MAX_DEPTH: usize = 32;

/// The most one variable (key and value) may take.
pub const MAX_BYTES: usize = 64 * 1024;

/// What the rule made of one variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept<'a> {
    /// Unchanged: the text as it arrived.
    Same,
    /// This JSON text instead.
    Fixed(Cow<'a, str>),
    /// Left out: too long.
    Dropped,
}

/// How many variables of an object the rule changed or dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub fixed: usize,
    pub dropped: usize,
}

impl Changes {
    pub fn any(&self) -> bool {
        self.fixed + self.dropped > 0
    }
}

/// The rule applied to one variable: `key` is its unescaped key, `text` its
/// value's JSON text, already checked for grammar by serde_json.
pub fn value<'a>(key: &str, text: &'a str) -> Kept<'a> {
    if key.len() + text.len() > MAX_BYTES {
        return Kept::Dropped;
    }
    let b = text.as_bytes();
    match b.first() {
        // The usual value: a string with nothing escaped by code point.
        Some(b'"') if !text.contains("\\u") => Kept::Same,
        Some(b'"') => match fix_surrogates(text) {
            Cow::Borrowed(_) => Kept::Same,
            fixed => Kept::Fixed(fixed),
        },
        Some(b't' | b'f' | b'n') => Kept::Same,
        Some(b'-' | b'0'..=b'9') if in_range(text) => Kept::Same,
        Some(b'-' | b'0'..=b'9') => Kept::Fixed(stringify(text)),
        _ => {
            let fixed = fix_surrogates(text);
            if depth(&fixed) <= MAX_DEPTH && strict(&fixed) {
                match fixed {
                    Cow::Borrowed(_) => Kept::Same,
                    fixed => Kept::Fixed(fixed),
                }
            } else {
                Kept::Fixed(stringify(&fixed))
            }
        }
    }
}

/// An object's members, keys unescaped and values as their JSON text.
pub type Members<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// The members of an object with the rule applied, or `None` when it changes
/// none of them (nearly always: then the caller keeps its own slice).
pub fn members<'a>(entries: &[(Cow<'a, str>, &'a str)]) -> Option<(Members<'a>, Changes)> {
    let first = entries
        .iter()
        .position(|(k, v)| value(k, v) != Kept::Same)?;
    let mut changes = Changes::default();
    let mut out = Vec::with_capacity(entries.len());
    out.extend(
        entries[..first]
            .iter()
            .map(|(k, v)| (k.clone(), Cow::Borrowed(*v))),
    );
    for (k, v) in &entries[first..] {
        match value(k, v) {
            Kept::Same => out.push((k.clone(), Cow::Borrowed(*v))),
            Kept::Fixed(t) => {
                changes.fixed += 1;
                out.push((k.clone(), t));
            }
            Kept::Dropped => changes.dropped += 1,
        }
    }
    Some((out, changes))
}

/// Whether a number's text is one a strict reader takes (inside f64's range).
fn in_range(text: &str) -> bool {
    // Short and without an exponent: at most 10^300, so always in range.
    (text.len() <= 300 && !text.contains(['e', 'E']))
        || serde_json::from_str::<serde_json::Number>(text).is_ok()
}

/// Whether serde_json's strict reader takes the text (surrogates, numbers).
/// Read as a `Value`: skipping it (`IgnoredAny`) checks neither. Only for
/// the rare object or array, and only once its depth is known to be small.
fn strict(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok()
}

/// The deepest nesting of arrays and objects in a JSON text, strings skipped.
/// A scalar is 0, `{}` is 1.
pub fn depth(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// A JSON string holding `text`.
fn stringify(text: &str) -> Cow<'static, str> {
    Cow::Owned(serde_json::to_string(text).expect("a string serializes"))
}

/// `text` with every `\uXXXX` escape that is half of no surrogate pair
/// replaced by `\ufffd`; borrowed when there is none.
pub fn fix_surrogates(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out: Option<String> = None;
    // Bytes of `text` already copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] != b'\\' {
                    i += 1;
                    continue;
                }
                let Some(unit) = escape_unit(b, i) else {
                    i += 2;
                    continue;
                };
                let lone = match unit {
                    0xD800..=0xDBFF => {
                        !escape_unit(b, i + 6).is_some_and(|n| (0xDC00..=0xDFFF).contains(&n))
                    }
                    0xDC00..=0xDFFF => true,
                    _ => false,
                };
                if matches!(unit, 0xD800..=0xDBFF) && !lone {
                    // A pair: both halves stay.
                    i += 12;
                    continue;
                }
                if lone {
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    o.push_str(&text[copied..i]);
                    o.push_str("\\ufffd");
                    copied = i + 6;
                }
                i += 6;
            }
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// The code unit of a `\uXXXX` escape starting at `i`.
fn escape_unit(b: &[u8], i: usize) -> Option<u32> {
    if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
        return None;
    }
    let hex = std::str::from_utf8(b.get(i + 2..i + 6)?).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The value after the rule, parsed by the strict reader.
    fn kept(text: &str) -> Value {
        let t = match value("K", text) {
            Kept::Same => text.to_owned(),
            Kept::Fixed(t) => t.into_owned(),
            Kept::Dropped => panic!("{text} dropped"),
        };
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{text} → {t}: {e}"))
    }

    #[test]
    fn usual_values_are_kept_as_they_are() {
        for t in [
            r#""abc""#,
            r#""a\"b\\u0041""#,
            r#""é \u00e9 \ud83d\ude00""#,
            "5",
            "-1.5e3",
            "true",
            "null",
            r#"{"a":[1,"2",{"b":null}]}"#,
            "[]",
        ] {
            assert_eq!(value("K", t), Kept::Same, "{t}");
        }
    }

    #[test]
    fn lone_surrogates_become_the_replacement_character() {
        assert_eq!(kept(r#""\ud800""#), "\u{fffd}");
        assert_eq!(kept(r#""x\udc00y""#), "x\u{fffd}y");
        assert_eq!(kept(r#""\ud800\ud800\udc00""#), "\u{fffd}\u{10000}");
        assert_eq!(kept(r#""\udc00\ud800""#), "\u{fffd}\u{fffd}");
        // An escaped backslash before `u` is no escape at all.
        assert_eq!(value("K", r#""\\ud800""#), Kept::Same);
        assert_eq!(
            kept(r#"{"\ud800":["\udfff"]}"#),
            serde_json::json!({"\u{fffd}": ["\u{fffd}"]})
        );
    }

    #[test]
    fn what_a_strict_reader_refuses_is_kept_as_its_text() {
        assert_eq!(kept("1e400"), "1e400");
        assert_eq!(kept("-1e400"), "-1e400");
        assert_eq!(kept("[1,1e999]"), "[1,1e999]");
        let big = "9".repeat(400);
        assert_eq!(kept(&big), Value::String(big.clone()));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(kept(&deep), Value::String(deep.clone()));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(value("K", &ok), Kept::Same);
    }

    #[test]
    fn an_oversized_variable_is_dropped() {
        let v = format!("\"{}\"", "x".repeat(MAX_BYTES));
        assert_eq!(value("K", &v), Kept::Dropped);
        let entries = vec![
            (Cow::Borrowed("A"), r#""a""#),
            (Cow::Borrowed("B"), v.as_str()),
            (Cow::Borrowed("C"), "1e400"),
        ];
        let (out, changes) = members(&entries).unwrap();
        assert_eq!(
            changes,
            Changes {
                fixed: 1,
                dropped: 1
            }
        );
        assert_eq!(
            out,
            vec![
                (Cow::Borrowed("A"), Cow::Borrowed(r#""a""#)),
                (Cow::Borrowed("C"), Cow::Borrowed(r#""1e400""#)),
            ]
        );
        assert!(members(&entries[..1]).is_none());
    }

    #[test]
    fn depth_skips_strings() {
        assert_eq!(depth("5"), 0);
        assert_eq!(depth(r#"{"a":"[[[["}"#), 1);
        assert_eq!(depth(r#"[{"a\"":[]}]"#), 3);
    }
}
