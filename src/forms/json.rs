//! A small JSON object writer for the reply hot path.
//!
//! An account reply is mostly short ASCII strings (ids, names, tags): about 1.5 KB
//! per channel, ten thousand channels for a big account. serde_json escapes every
//! string byte by byte through a lookup table, which profiling showed to be half
//! the cost of such a reply. Here a string is first checked in one branch-free
//! (vectorizable) pass and copied as is when nothing in it needs escaping; keys
//! are our own constants and are copied as is. Anything else (a quote, a
//! backslash, a control character) goes through serde_json, so the output is
//! always what serde_json would write.

/// True when `s` can go between quotes unchanged.
#[inline]
fn is_plain(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 {
        // Padded with a plain byte, so a short value takes the same one-word path.
        let mut w = [b'a'; 8];
        w[..b.len()].copy_from_slice(b);
        return needs_escape(u64::from_le_bytes(w)) == 0;
    }
    // A word at a time (values are mostly 10 to 40 bytes, too short for a
    // vector loop to pay): the last word overlaps the one before rather than
    // leaving bytes to look at one by one.
    let mut bad = 0;
    for c in b.chunks_exact(8) {
        bad |= needs_escape(u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let last = &b[b.len() - 8..];
    bad |= needs_escape(u64::from_le_bytes(last.try_into().expect("8 bytes")));
    bad == 0
}

/// Nonzero when a byte of `w` is a control character, `"` or `\` (the usual
/// exact any-byte tests: no byte is flagged unless one of them matches).
#[inline(always)]
fn needs_escape(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')))
}

/// Appends `s` as a JSON string.
#[inline]
pub fn string(out: &mut Vec<u8>, s: &str) {
    if is_plain(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        escaped(out, s);
    }
}

/// The rare string with something to escape: serde_json's escaping.
#[cold]
fn escaped(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

/// Appends an integer, as serde_json writes it (through the same `itoa`).
#[inline]
pub fn int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// The members of one JSON object, written as they come.
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Obj<'a> {
    pub fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Continues the complete, non-empty object at the end of `out` (an
    /// envelope serialized by serde_json).
    pub fn extend(out: &'a mut Vec<u8>) -> Self {
        debug_assert!(out.ends_with(b"}") && !out.ends_with(b"{}"));
        out.pop();
        Self { out, empty: false }
    }

    #[inline]
    fn separate(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    /// Writes `"key":` and returns the buffer for the value.
    #[inline]
    pub fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(is_plain(key), "keys are our constants");
        self.out.reserve(key.len() + 4);
        self.separate();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// Writes a key that is data (a call id), escaped as needed.
    pub fn data_key(&mut self, key: &str) -> &mut Vec<u8> {
        self.separate();
        string(self.out, key);
        self.out.push(b':');
        self.out
    }

    #[inline]
    pub fn str(&mut self, key: &'static str, value: &str) {
        string(self.key(key), value);
    }

    /// Unknown values are omitted, never `null`.
    #[inline]
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    #[inline]
    pub fn bool(&mut self, key: &'static str, value: bool) {
        let v: &[u8] = if value { b"true" } else { b"false" };
        self.key(key).extend_from_slice(v);
    }

    pub fn int(&mut self, key: &'static str, value: i64) {
        int(self.key(key), value);
    }

    pub fn uint(&mut self, key: &'static str, value: u64) {
        int(self.key(key), value);
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn strings_match_serde_json() {
        for s in [
            "",
            "plain-id_0123@10.26.0.91",
            "quote\"inside",
            "back\\slash",
            "tab\tand\nnewline\u{1}",
            "ünïcödé ✓ and / slash",
            "\u{7f}del",
        ] {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn plain_is_nothing_to_escape_at_any_length_and_place() {
        let naive = |s: &str| !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
        for len in 0..40 {
            let base: String = "ab\u{e9}\u{7f}\u{2028}x"
                .chars()
                .cycle()
                .take(len)
                .collect();
            assert!(is_plain(&base) && naive(&base), "{base:?}");
            for at in 0..=base.len() {
                if !base.is_char_boundary(at) {
                    continue;
                }
                for bad in ["\"", "\\", "\n", "\u{1f}", "\u{0}"] {
                    let s = format!("{}{bad}{}", &base[..at], &base[at..]);
                    assert_eq!(is_plain(&s), naive(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn objects_are_valid_json() {
        let mut out = Vec::new();
        let mut o = Obj::open(&mut out);
        o.str("a", "x\"y");
        o.opt_str("absent", None);
        o.bool("b", false);
        o.int("i", -5);
        o.uint("u", 63_869_600_000);
        o.key("r").extend_from_slice(br#"{"K":"v"}"#);
        o.data_key("call@id\"x").extend_from_slice(b"{}");
        o.close();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"a": "x\"y", "b": false, "i": -5, "u": 63_869_600_000u64, "r": {"K": "v"}, "call@id\"x": {}})
        );
        let mut env = serde_json::to_vec(&json!({"App-Name": "x"})).unwrap();
        let mut o = Obj::extend(&mut env);
        o.key("Channels").extend_from_slice(b"[]");
        o.close();
        let v: Value = serde_json::from_slice(&env).unwrap();
        assert_eq!(v, json!({"App-Name": "x", "Channels": []}));
        let mut empty = Vec::new();
        Obj::open(&mut empty).close();
        assert_eq!(empty, b"{}");
    }
}
