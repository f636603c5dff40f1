//! What Kazoo 5.x events add to a channel (WIRE-5.md §3): the
//! `Custom-SIP-Headers` every event carries, the `Custom-AUTH-Headers` of
//! CHANNEL_CREATE, and the recordings of the `RECORD_*` events. A 4.3 channel
//! has none of them, and most 5.x ones only empty SIP headers, so they live in a
//! box a channel has only when it has something to keep; empty SIP headers are
//! a flag of the channel.

use std::sync::LazyLock;

use serde_json::value::RawValue;

use super::intern::{Interner, Vars};
use super::recording::{RecordEvent, Recordings};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// Non-empty `Custom-SIP-Headers` (empty ones are the channel's flag).
    pub sip_headers: Option<Vars>,
    pub auth_headers: Option<Vars>,
    pub recordings: Recordings,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.sip_headers.is_none() && self.auth_headers.is_none() && self.recordings.is_empty()
    }
}

/// `{}`: what a channel flagged with empty SIP headers shows.
pub fn empty_vars() -> &'static Vars {
    static EMPTY: LazyLock<Vars> = LazyLock::new(|| {
        let raw = RawValue::from_string("{}".into()).expect("{} is JSON");
        Interner::default()
            .vars(&raw, &[])
            .expect("{} is an object")
    });
    &EMPTY
}

/// The new headers object `raw` brings, against the channel's `old`: `None`
/// when `raw` is not an object or repeats `old` as it was.
pub fn headers(strings: &mut Interner, raw: &RawValue, old: Option<&Vars>) -> Option<Vars> {
    strings
        .with_members(raw, |strings, entries| {
            strings.vars_update(entries, &[], old, &mut |_, _| None)
        })
        .flatten()
}

/// Where a channel keeps its extras: `slot` and its empty-SIP-headers `flag`.
pub struct Slot<'c> {
    pub slot: &'c mut Option<Box<Extra>>,
    pub sip_empty: &'c mut bool,
}

impl Slot<'_> {
    fn extra(&mut self) -> &mut Extra {
        self.slot.get_or_insert_with(Box::default)
    }

    /// Drops the box once it holds nothing.
    fn tidy(&mut self) {
        if self.slot.as_ref().is_some_and(|e| e.is_empty()) {
            *self.slot = None;
        }
    }

    pub fn set_sip_headers(&mut self, v: Vars) {
        *self.sip_empty = v.is_empty();
        if v.is_empty() {
            if let Some(e) = self.slot.as_mut() {
                e.sip_headers = None;
            }
            self.tidy();
        } else {
            self.extra().sip_headers = Some(v);
        }
    }

    pub fn set_auth_headers(&mut self, v: Vars) {
        self.extra().auth_headers = Some(v);
    }

    /// Applies a `RECORD_*` event for recording `name`; whether anything changed.
    pub fn record(&mut self, name: &str, ev: RecordEvent) -> bool {
        let changed = self.extra().recordings.apply(name, ev);
        self.tidy();
        changed
    }
}
