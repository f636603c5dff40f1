//! The registry's base types, below every other file of the registry: shared
//! text, the hashers, slab ids, and what a channel asks of the indexes.

use std::collections::{HashMap, HashSet};

/// Shared immutable text, one word wide: call ids live in the map and in every
/// index, and most values are shared between channels (see `Interner`).
pub type Text = arcstr::ArcStr;

/// Map and set hashers: the keys are our own (call ids, account ids), the
/// lookups are on every event and query, and SipHash was a tenth of the time.
pub type Hashing = foldhash::fast::RandomState;
pub type FastMap<K, V> = HashMap<K, V, Hashing>;
pub type FastSet<K> = HashSet<K, Hashing>;

/// A channel's place in the slab: stable while the channel is held, reused
/// after it is removed.
pub type Id = u32;

/// The copies of indexed values the registry already holds, so a channel
/// built from an event points at them instead of holding its own. The
/// indexes implement it; a channel built outside a registry uses [`NoKeys`].
pub trait KnownKeys {
    /// The key for the value of the custom variable `var` when the variable is
    /// one the indexes are keyed by (the index's own copy when it has the
    /// value, else a new one); `realm` is the channel's, for a username.
    /// `None` for other variables.
    fn known(&self, var: &str, value: &str, realm: Option<&str>) -> Option<Text>;
}

/// No registry to share with: every indexed value is a copy of its own.
pub struct NoKeys;

/// The custom variables the indexes are keyed by.
pub const INDEXED_VARS: [&str; 5] = [
    "Account-ID",
    "Owner-ID",
    "Authorizing-ID",
    "Realm",
    "Username",
];

impl KnownKeys for NoKeys {
    fn known(&self, var: &str, value: &str, _realm: Option<&str>) -> Option<Text> {
        INDEXED_VARS.contains(&var).then(|| Text::from(value))
    }
}
