//! Sharing the text that channels repeat. At a million channels most values
//! (account, realm, node, reseller, a user's ids, every custom variable but a
//! few per call) recur across many channels; held once and pointed to, a
//! channel costs a fraction of what its own copies did. Custom variables keep
//! their key order in a [`Shape`] shared by every channel whose variables have
//! the same keys.
//!
//! Over 400 lines as one job: the string set, the variable shapes and the
//! values a channel keeps of them are one sharing scheme, tested together.

use std::borrow::Cow;
use std::cell::RefCell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::text::{FastMap, FastSet, Text};
use crate::kapi::members::{members, members_into};
use crate::kapi::strict;

/// Custom variables whose values are one call's (or one user's) own: shared
/// by a channel or two at most, so not worth a place in the interner.
const PER_CALL_VARS: [&str; 5] = [
    "Bridge-ID",
    "Call-Interaction-ID",
    "Fetch-ID",
    "Origination-Call-ID",
    "Presence-ID",
];

/// The registry's shared strings and variable shapes.
#[derive(Debug, Default)]
pub struct Interner {
    strings: FastSet<Text>,
    shapes: FastMap<u64, Vec<Arc<Shape>>>,
    /// Channels dropped since the last sweep.
    released: usize,
    /// Buffers an event's variables are gathered in, kept between events so
    /// applying one allocates only what the channel keeps.
    vals: Vec<Text>,
    entries: Vec<(Cow<'static, str>, &'static str)>,
    /// What the custom-variable rule changed since [`Interner::take_changes`].
    changes: strict::Changes,
}

/// Old keys past which a key not found a few places ahead is looked up in
/// an index of them instead of searched for: the walk alongside is linear
/// only while the keys come in the old order, and a later event with
/// thousands of new keys made it old × new.
const WALK: usize = 64;

/// An empty buffer of `v`'s, for members of another lifetime: the allocation
/// is kept (an empty vector's items are never made, and the layouts match).
fn recycle<'a, 'b>(mut v: Vec<(Cow<'a, str>, &'a str)>) -> Vec<(Cow<'b, str>, &'b str)> {
    v.clear();
    v.into_iter().map(|_| unreachable!("cleared")).collect()
}

impl Interner {
    /// The shared copy of `s`.
    pub fn intern(&mut self, s: &str) -> Text {
        if let Some(t) = self.strings.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.strings.insert(t.clone());
        t
    }

    /// Re-points `t` at the shared copy of its value.
    pub fn share(&mut self, t: &mut Text) {
        *t = self.intern(t);
    }

    /// Counts a dropped channel. Once as many channels were dropped as there
    /// are strings, forgets the strings and shapes no channel uses any more:
    /// linear in the interner, so constant per dropped channel.
    pub fn released(&mut self) {
        self.released += 1;
        if self.released > self.strings.len().max(4096) {
            self.sweep();
        }
    }

    fn sweep(&mut self) {
        self.released = 0;
        self.strings
            .retain(|t| Text::strong_count(t).is_none_or(|n| n > 1));
        self.shapes.retain(|_, v| {
            v.retain(|s| Arc::strong_count(s) > 1);
            !v.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// The shape of these keys with these kinds of value (`true`: raw JSON).
    fn shape(&mut self, keys: &[(Cow<'_, str>, bool)]) -> Arc<Shape> {
        self.shape_of(keys.len(), |i| (&keys[i].0, keys[i].1), || keys.to_vec())
    }

    /// [`Interner::shape`] of the `n` keys `key` gives: a shape is found
    /// without the keys gathered first, `all` is only called for a new one.
    fn shape_of<'k>(
        &mut self,
        n: usize,
        key: impl Fn(usize) -> (&'k str, bool),
        all: impl FnOnce() -> Vec<(Cow<'k, str>, bool)>,
    ) -> Arc<Shape> {
        let mut h = self.shapes.hasher().build_hasher();
        for i in 0..n {
            let (k, raw) = key(i);
            k.hash(&mut h);
            raw.hash(&mut h);
        }
        let bucket = self.shapes.entry(h.finish()).or_default();
        let same = |s: &Shape| {
            s.keys.len() == n
                && (0..n).all(|i| {
                    let (k, raw) = key(i);
                    *s.keys[i] == *k && s.raw[i] == raw
                })
        };
        if let Some(s) = bucket.iter().find(|s| same(s)) {
            return s.clone();
        }
        let s = Arc::new(Shape::new(&all()));
        bucket.push(s.clone());
        s
    }

    /// Custom variables (a JSON object) in their shared form. `own` are the
    /// channel's per-call values already held (its call id, bridge id…): a
    /// per-call variable equal to one of them points at it instead of a copy.
    /// `None` for anything but an object.
    pub fn vars(&mut self, raw: &RawValue, own: &[Option<&Text>]) -> Option<Vars> {
        let entries = members(raw)?;
        Some(self.vars_of(&entries, own, None, &mut |_, _| None))
    }

    /// [`Interner::vars`] from the members; `old` are the variables the channel
    /// had, whose values are taken where unchanged. A later event of a call
    /// mostly repeats them, and a lookup in a large interner is a cache miss.
    /// `keyed` gives the value of a variable kept elsewhere (an index's key),
    /// `None` for a variable it does not keep.
    pub fn vars_of(
        &mut self,
        entries: &[(Cow<'_, str>, &str)],
        own: &[Option<&Text>],
        old: Option<&Vars>,
        keyed: &mut dyn FnMut(&str, &str) -> Option<Text>,
    ) -> Vars {
        match self.vars_update(entries, own, old, keyed) {
            Some(v) => v,
            None => old.expect("unchanged only against old variables").clone(),
        }
    }

    /// The members of the JSON object `raw` into the buffer `f` is given
    /// (empty for `{}`), or `None` for anything but an object.
    pub fn with_members<'r, R>(
        &mut self,
        raw: &'r RawValue,
        f: impl FnOnce(&mut Self, &[(Cow<'r, str>, &'r str)]) -> R,
    ) -> Option<R> {
        let mut entries = recycle(std::mem::take(&mut self.entries));
        let out = members_into(raw, &mut entries).then(|| f(self, &entries));
        self.entries = recycle(entries);
        out
    }

    /// What the custom-variable rule ([`strict`]) changed in the variables
    /// taken in since the last call, for the caller to log with its call id.
    pub fn take_changes(&mut self) -> strict::Changes {
        std::mem::take(&mut self.changes)
    }

    /// [`Interner::vars_of`], `None` when the variables are `old`'s as they
    /// were: the channel keeps those, and an event repeating them costs no
    /// allocation. Every value passes the custom-variable rule ([`strict`])
    /// first: this is where variables are taken in, from events, snapshots
    /// and seeding alike.
    pub fn vars_update(
        &mut self,
        entries: &[(Cow<'_, str>, &str)],
        own: &[Option<&Text>],
        old: Option<&Vars>,
        keyed: &mut dyn FnMut(&str, &str) -> Option<Text>,
    ) -> Option<Vars> {
        match strict::members(entries) {
            None => self.vars_checked(entries, own, old, keyed),
            Some((fixed, changes)) => {
                self.changes.fixed += changes.fixed;
                self.changes.dropped += changes.dropped;
                let entries: Vec<(Cow<'_, str>, &str)> =
                    fixed.iter().map(|(k, v)| (k.clone(), &**v)).collect();
                self.vars_checked(&entries, own, old, keyed)
            }
        }
    }

    /// [`Interner::vars_update`] of variables that passed the rule.
    fn vars_checked(
        &mut self,
        entries: &[(Cow<'_, str>, &str)],
        own: &[Option<&Text>],
        old: Option<&Vars>,
        keyed: &mut dyn FnMut(&str, &str) -> Option<Text>,
    ) -> Option<Vars> {
        let (okeys, oraw, ovals): (&[Box<str>], &[bool], &[Text]) = old
            .map(|o| (&o.shape.keys[..], &o.shape.raw[..], &o.vals[..]))
            .unwrap_or_default();
        // The old keys' places, made the first time a key is not found a
        // few places ahead in many old keys.
        let mut places: Option<FastMap<&str, usize>> = None;
        let mut j = 0;
        // A later event of a call mostly has the keys its last one had: then
        // the old shape is the new one, found without hashing every key.
        let mut same_shape = old.is_some() && okeys.len() == entries.len();
        let mut same_vals = same_shape;
        let mut vals = std::mem::take(&mut self.vals);
        vals.clear();
        for (n, (k, v)) in entries.iter().enumerate() {
            let text = *v;
            // A string keeps its JSON body (escapes and all): written back
            // between quotes as is, with nothing to check.
            let (raw, body) = match text.strip_prefix('"') {
                Some(s) => (false, &s[..s.len() - 1]),
                None => (true, text),
            };
            // Kazoo sends the variables in one order (sorted), so the old
            // ones are walked once alongside.
            let rest = &okeys[j.min(okeys.len())..];
            let ahead = if rest.len() <= WALK { rest.len() } else { 8 };
            let found = match rest[..ahead].iter().position(|ok| **ok == **k) {
                Some(at) => Some(j + at),
                None if ahead == rest.len() => None,
                None => places
                    .get_or_insert_with(|| {
                        let mut m = FastMap::default();
                        for (i, ok) in okeys.iter().enumerate() {
                            m.entry(&**ok).or_insert(i);
                        }
                        m
                    })
                    .get(&**k)
                    .copied(),
            };
            let kept = found.and_then(|i| {
                j = i + 1;
                let same = oraw[i] == raw && ovals[i].as_str() == body;
                same_vals = same_vals && same && i == n;
                same.then(|| ovals[i].clone())
            });
            if kept.is_none() {
                same_vals = false;
            }
            let val = if let Some(v) = kept {
                v
            } else if !raw && PER_CALL_VARS.contains(&&**k) {
                own.iter()
                    .flatten()
                    .find(|t| t.as_str() == body)
                    .map(|t| (*t).clone())
                    .unwrap_or_else(|| Text::from(body))
            } else if let Some(t) = (!raw).then(|| keyed(k, body)).flatten() {
                t
            } else {
                self.intern(body)
            };
            same_shape = same_shape && *okeys[n] == **k && oraw[n] == raw;
            vals.push(val);
        }
        if same_vals {
            vals.clear();
            self.vals = vals;
            return None;
        }
        let boxed: Box<[Text]> = vals.drain(..).collect();
        self.vals = vals;
        let shape = match old {
            Some(o) if same_shape => o.shape.clone(),
            _ => self.shape_of(
                entries.len(),
                |i| (&*entries[i].0, !entries[i].1.starts_with('"')),
                || {
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), !v.starts_with('"')))
                        .collect()
                },
            ),
        };
        Some(Vars { shape, vals: boxed })
    }

    /// Re-points custom variables built elsewhere (a snapshot) at shared values.
    pub fn share_vars(&mut self, v: &mut Vars) {
        let keys: Vec<(Cow<'_, str>, bool)> = v
            .shape
            .keys
            .iter()
            .zip(&v.shape.raw)
            .map(|(k, r)| (Cow::Borrowed(&**k), *r))
            .collect();
        let shape = self.shape(&keys);
        for (val, k) in v.vals.iter_mut().zip(&v.shape.keys) {
            if !PER_CALL_VARS.contains(&&**k) {
                self.share(val);
            }
        }
        v.shape = shape;
    }
}

/// The keys of a custom-variables object, in order, with how each value is
/// kept, and the bytes written before each value.
#[derive(Debug)]
pub struct Shape {
    keys: Box<[Box<str>]>,
    /// The value is raw JSON (not a string).
    raw: Box<[bool]>,
    /// `{"Key":` for the first, `,"Key":` after, then `"` for a string value.
    heads: Box<[Box<[u8]>]>,
    /// Where each of [`Shape::COPIED`] is, when it is a string.
    at: [Option<u8>; 4],
}

impl Shape {
    fn new(keys: &[(Cow<'_, str>, bool)]) -> Self {
        let heads = keys
            .iter()
            .enumerate()
            .map(|(i, (k, raw))| {
                let mut h = vec![if i == 0 { b'{' } else { b',' }];
                serde_json::to_writer(&mut h, k).expect("writing to a Vec cannot fail");
                h.push(b':');
                if !raw {
                    h.push(b'"');
                }
                h.into_boxed_slice()
            })
            .collect();
        Self {
            keys: keys.iter().map(|(k, _)| Box::from(&**k)).collect(),
            raw: keys.iter().map(|(_, r)| *r).collect(),
            heads,
            at: Self::COPIED.map(|c| {
                keys.iter()
                    .position(|(k, raw)| !raw && k == c)
                    .and_then(|i| u8::try_from(i).ok())
            }),
        }
    }

    /// Variables a channel also keeps as fields of its own (see
    /// [`Vars::copied`]).
    pub const COPIED: [&'static str; 4] = [
        "Fetch-ID",
        "Bridge-ID",
        "Call-Interaction-ID",
        "Presence-ID",
    ];
}

/// A custom-variables object (CCVs or CAVs) as the channel holds it: values
/// shared, keys in a shared [`Shape`]. Serialized as the JSON object it was.
#[derive(Debug, Clone)]
pub struct Vars {
    shape: Arc<Shape>,
    /// A string's JSON body (between the quotes, escapes kept) or a raw value.
    vals: Box<[Text]>,
}

impl Vars {
    /// Appends the object as JSON.
    #[inline]
    pub fn write(&self, out: &mut Vec<u8>) {
        if self.vals.is_empty() {
            out.extend_from_slice(b"{}");
            return;
        }
        for ((head, raw), val) in self.shape.heads.iter().zip(&self.shape.raw).zip(&self.vals) {
            out.extend_from_slice(head);
            out.extend_from_slice(val.as_bytes());
            if !raw {
                out.push(b'"');
            }
        }
        out.push(b'}');
    }

    /// The object as JSON text.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64 * self.vals.len() + 2);
        self.write(&mut out);
        String::from_utf8(out).expect("keys and values are UTF-8")
    }

    /// The members: key, value's JSON body (for a string, between the quotes)
    /// and whether it is raw JSON rather than a string.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Text, bool)> {
        self.shape
            .keys
            .iter()
            .zip(&self.shape.raw)
            .zip(&self.vals)
            .map(|((k, r), v)| (&**k, v, *r))
    }

    pub fn len(&self) -> usize {
        self.vals.len()
    }

    /// The value of the `n`th of [`Shape::COPIED`] when it is a string with
    /// nothing to unescape: a channel's field equal to it is not kept twice.
    #[inline]
    pub fn copied(&self, n: usize) -> Option<&str> {
        let v = self.vals.get(usize::from(self.shape.at[n]?))?;
        (!v.is_empty() && !v.contains('\\')).then_some(v.as_str())
    }

    /// The string variable `key` when its JSON text is its value (no
    /// escapes), as [`Vars::copied`] is for the variables a channel copies.
    pub fn plain(&self, key: &str) -> Option<&str> {
        self.entries()
            .find(|(k, _, raw)| *k == key && !raw)
            .map(|(_, v, _)| v.as_str())
            .filter(|v| !v.contains('\\'))
    }

    /// [`Vars::copied`] once it gave a value: the variables do not change,
    /// so a channel that kept its field as the variable's copy reads it back
    /// without looking through the value for escapes at every query.
    #[inline]
    pub fn copied_again(&self, n: usize) -> Option<&str> {
        let v = self.vals.get(usize::from(self.shape.at[n]?))?;
        Some(v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }
}

impl PartialEq for Vars {
    fn eq(&self, other: &Self) -> bool {
        (Arc::ptr_eq(&self.shape, &other.shape)
            || (self.shape.keys == other.shape.keys && self.shape.raw == other.shape.raw))
            && self.vals == other.vals
    }
}

impl Serialize for Vars {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_json()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

thread_local! {
    /// The interner [`Interner::lend`] lends to [`Vars`] read on this thread.
    static LENT: RefCell<Option<Interner>> = const { RefCell::new(None) };
}

impl Interner {
    /// Runs `f` with this interner lent to every [`Vars`] deserialized on this
    /// thread meanwhile: a snapshot part's thousands of custom-variable
    /// objects then take the registry's shapes and values as they are read,
    /// instead of each building a shape and copies of its own that are shared
    /// and dropped right after (garbage that fragments the heap a million
    /// channels live in).
    pub fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        struct Back<'a>(&'a mut Interner);
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let Some(lent) = LENT.with(|l| l.borrow_mut().take()) {
                    *self.0 = lent;
                }
            }
        }
        LENT.with(|l| *l.borrow_mut() = Some(std::mem::take(self)));
        let _back = Back(self);
        f()
    }
}

impl<'de> Deserialize<'de> for Vars {
    /// With no interner lent ([`Interner::lend`]) the values are the object's
    /// own until [`Interner::share_vars`].
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let lent = LENT.with(|l| l.borrow_mut().as_mut().map(|i| i.vars(&raw, &[])));
        lent.unwrap_or_else(|| Interner::default().vars(&raw, &[]))
            .ok_or_else(|| D::Error::custom("custom variables are not a JSON object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    #[test]
    fn a_lent_interner_shares_what_is_read_and_comes_back() {
        let mut i = Interner::default();
        let account = i.intern("acct-1");
        let read = |i: &mut Interner| -> Vars {
            i.lend(|| serde_json::from_str(r#"{"Account-ID":"acct-1","Fetch-ID":"f1"}"#).unwrap())
        };
        let (a, b) = (read(&mut i), read(&mut i));
        assert!(Arc::ptr_eq(&a.shape, &b.shape), "one shape for both");
        let value = |v: &Vars, key: &str| v.entries().find(|e| e.0 == key).unwrap().1.clone();
        assert!(
            Text::ptr_eq(&value(&a, "Account-ID"), &account),
            "the registry's copy"
        );
        assert!(
            !Text::ptr_eq(&value(&a, "Fetch-ID"), &value(&b, "Fetch-ID")),
            "per-call values stay own"
        );
        assert!(i.strings.contains("acct-1"), "the interner came back");
        // Not lent: a shape of its own.
        let c: Vars = serde_json::from_str(r#"{"Account-ID":"acct-1","Fetch-ID":"f1"}"#).unwrap();
        assert!(!Arc::ptr_eq(&a.shape, &c.shape));
        assert_eq!(a, c);
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            i.lend(|| panic!("a decoder that panics"))
        }));
        assert!(failed.is_err());
        assert!(i.strings.contains("acct-1"), "back after a panic too");
    }

    #[test]
    fn vars_write_back_the_object_they_were() {
        let v = json!({"Account-ID": "a", "Quote": "x\"y\\u00e9", "N": 5, "B": true,
                       "O": {"k": [1, "2"]}, "Fetch-ID": "f"});
        let mut i = Interner::default();
        let vars = i.vars(&raw(&v), &[]).unwrap();
        let back: Value = serde_json::from_str(&vars.to_json()).unwrap();
        assert_eq!(back, v);
        assert_eq!(serde_json::to_value(&vars).unwrap(), v);
        let again: Vars = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(again, vars);
        let empty = i.vars(&raw(&json!({})), &[]).unwrap();
        assert_eq!(empty.to_json(), "{}");
        assert!(i.vars(&raw(&json!("{}")), &[]).is_none());
    }

    #[test]
    fn values_and_shapes_are_shared_and_swept() {
        let mut i = Interner::default();
        let own = Text::from("call-1");
        let a = i
            .vars(
                &raw(&json!({"Account-ID": "acct", "Bridge-ID": "call-1"})),
                &[Some(&own)],
            )
            .unwrap();
        let b = i
            .vars(
                &raw(&json!({"Account-ID": "acct", "Bridge-ID": "call-2"})),
                &[],
            )
            .unwrap();
        assert!(Arc::ptr_eq(&a.shape, &b.shape));
        assert!(std::ptr::eq(a.vals[0].as_ptr(), b.vals[0].as_ptr()));
        assert!(
            std::ptr::eq(a.vals[1].as_ptr(), own.as_ptr()),
            "per-call value reused"
        );
        assert_eq!(i.len(), 1, "per-call values stay out of the interner");
        drop((a, b));
        i.sweep();
        assert!(i.is_empty() && i.shapes.is_empty());
    }
}
