//! What Kazoo 5.x events add to a channel (WIRE-5.md §3): the
//! `Custom-SIP-Headers` every event carries, the `Custom-AUTH-Headers` of
//! CHANNEL_CREATE, and the recordings of the `RECORD_*` events. Most channels
//! have none of them (4.3 and 5.x events carry `"Custom-SIP-Headers": {}`), so
//! they live in a box a channel has only when it has something to keep. Empty
//! headers are not kept: a 4.3 channel shows exactly what 4.3's ecallmgr shows.

use serde_json::value::RawValue;

use super::intern::{Interner, Vars};
use super::recording::{RecordEvent, Recordings};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// Non-empty `Custom-SIP-Headers`.
    pub sip_headers: Option<Vars>,
    pub auth_headers: Option<Vars>,
    pub recordings: Recordings,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.sip_headers.is_none() && self.auth_headers.is_none() && self.recordings.is_empty()
    }
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

/// A channel's extras, created on first need and dropped once empty: an
/// event's `{}` costs no allocation.
pub trait Slot {
    /// The latest event's headers replace the channel's; `{}` clears them.
    fn set_sip_headers(&mut self, v: Vars);
    fn set_auth_headers(&mut self, v: Vars);
    /// Applies a `RECORD_*` event for recording `name`; whether anything changed.
    fn record(&mut self, name: &str, ev: RecordEvent) -> bool;
    fn extra(&mut self) -> &mut Extra;
}

impl Slot for Option<Box<Extra>> {
    fn set_sip_headers(&mut self, v: Vars) {
        set(self, v, |e| &mut e.sip_headers);
    }

    fn set_auth_headers(&mut self, v: Vars) {
        set(self, v, |e| &mut e.auth_headers);
    }

    fn record(&mut self, name: &str, ev: RecordEvent) -> bool {
        let changed = self.extra().recordings.apply(name, ev);
        tidy(self);
        changed
    }

    fn extra(&mut self) -> &mut Extra {
        self.get_or_insert_with(Box::default)
    }
}

fn set(slot: &mut Option<Box<Extra>>, v: Vars, field: fn(&mut Extra) -> &mut Option<Vars>) {
    if !v.is_empty() {
        *field(slot.extra()) = Some(v);
    } else if let Some(e) = slot.as_mut() {
        *field(e) = None;
        tidy(slot);
    }
}

fn tidy(slot: &mut Option<Box<Extra>>) {
    if slot.as_ref().is_some_and(|e| e.is_empty()) {
        *slot = None;
    }
}

#[cfg(test)]
mod tests {
    use crate::kapi::CallEvent;
    use crate::registry::{Channel, ChannelRecord};
    use serde_json::{Value, json};

    fn event(name: &str, patch: Value) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        v.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn create_keeps_the_5x_keys_and_snapshots_carry_them() {
        let body = event("kazoo5.callevt.CHANNEL_CREATE.a-leg.json", json!({}));
        let ch = Channel::from_event(&CallEvent::decode(&body).unwrap(), 0);
        // `<destination>@<realm>`: derived, not kept twice.
        assert_eq!(ch.request().as_deref(), Some("2600@account.realm.com"));
        assert_eq!(
            ch.sip_headers().unwrap().to_json(),
            r#"{"X-Kazoo-Trace":"on","X-Site":"east"}"#
        );
        assert_eq!(ch.auth_headers().unwrap().len(), 2);
        let record: ChannelRecord = ch.clone().into();
        let back: ChannelRecord =
            serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
        let back: Channel = back.into();
        assert_eq!(ChannelRecord::from(back), record);
        assert!(record.sip_headers.is_some() && record.request.is_some());
        // Any other request is kept as it came.
        let body = event(
            "kazoo5.callevt.CHANNEL_CREATE.a-leg.json",
            json!({"Request": "2600@10.26.0.81"}),
        );
        let ch = Channel::from_event(&CallEvent::decode(&body).unwrap(), 0);
        assert_eq!(ch.request().as_deref(), Some("2600@10.26.0.81"));
    }

    #[test]
    fn empty_headers_are_not_kept() {
        // 4.3 and 5.x events alike carry `"Custom-SIP-Headers": {}`.
        let body = event("kazoo43.callevt.CHANNEL_CREATE.a-leg.json", json!({}));
        let ch = Channel::from_event(&CallEvent::decode(&body).unwrap(), 0);
        assert!(ch.sip_headers().is_none() && ch.auth_headers().is_none());
        assert!(ch.recordings().is_none());
        // Later headers replace the earlier; `{}` clears them.
        let body = event(
            "kazoo5.callevt.CHANNEL_CREATE.a-leg.json",
            json!({"Custom-AUTH-Headers": {}}),
        );
        let mut ch = Channel::from_event(&CallEvent::decode(&body).unwrap(), 0);
        assert!(ch.auth_headers().is_none());
        let mut strings = crate::registry::intern::Interner::default();
        let cleared = event(
            "kazoo43.callevt.CHANNEL_ANSWER.a-leg.json",
            json!({"Msg-ID": "1702380900000000"}),
        );
        ch.refresh(
            &CallEvent::decode(&cleared).unwrap(),
            &mut strings,
            &crate::registry::text::NoKeys,
        );
        assert!(ch.sip_headers().is_none());
    }
}
