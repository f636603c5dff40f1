//! The channel record: every field of ecallmgr's channel object (WIRE.md §4.1).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::intern::{Interner, Vars};
use crate::kapi::event::{CallEvent, ccv_bool, ccv_i64, ccv_str};

/// Shared immutable text, one word wide: call ids live in the map and in every
/// index, and most values are shared between channels (see [`Interner`]).
pub type Text = arcstr::ArcStr;

pub const DEFAULT_PRECEDENCE: i64 = 5;
/// Not on the wire; ecallmgr's defaults (WIRE.md §5.3).
pub const DEFAULT_PROFILE: &str = "sipinterface_1";
pub const DEFAULT_CONTEXT: &str = "context_2";
pub const DEFAULT_DIALPLAN: &str = "XML";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub uuid: Text,
    pub direction: Option<Text>,
    pub destination: Option<Text>,
    pub account_id: Option<Text>,
    pub account_billing: Option<Text>,
    pub reseller_id: Option<Text>,
    pub reseller_billing: Option<Text>,
    pub authorizing_id: Option<Text>,
    pub authorizing_type: Option<Text>,
    pub channel_authorized: bool,
    pub owner_id: Option<Text>,
    pub resource_id: Option<Text>,
    pub fetch_id: Option<Text>,
    /// Defaults to the channel's own uuid when the CCVs carry none.
    pub bridge_id: Option<Text>,
    pub callflow_id: Option<Text>,
    pub interaction_id: Option<Text>,
    pub precedence: i64,
    pub presence_id: Option<Text>,
    pub realm: Option<Text>,
    pub username: Option<Text>,
    pub answered: bool,
    pub other_leg: Option<Text>,
    pub is_onhold: bool,
    pub is_loopback: bool,
    pub loopback_leg_name: Option<Text>,
    pub loopback_other_leg: Option<Text>,
    pub to_tag: Option<Text>,
    pub from_tag: Option<Text>,
    /// FreeSWITCH node name; reported as both `node` and `switch_nodename`.
    pub node: Option<Text>,
    pub switch_hostname: Option<Text>,
    pub switch_url: Option<Text>,
    /// Gregorian seconds when the channel was created.
    pub timestamp: u64,
    pub caller_id_name: Option<Text>,
    pub caller_id_number: Option<Text>,
    pub callee_id_name: Option<Text>,
    pub callee_id_number: Option<Text>,
    pub from: Option<Text>,
    pub to: Option<Text>,
    /// The objects as received, values shared (see [`Vars`]); only ever echoed.
    pub custom_channel_vars: Option<Vars>,
    pub custom_application_vars: Option<Vars>,
    /// Event time (Unix µs) of the newest event applied to each aspect, so a late,
    /// older event cannot undo a newer one.
    #[serde(default)]
    pub seq: Seqs,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seqs {
    pub vars: u64,
    pub bridge: u64,
    pub hold: u64,
}

/// Values of this event's fields: shared through the interner, or the call's own.
struct Build<'i> {
    strings: &'i mut Interner,
}

impl Build<'_> {
    /// A value many channels repeat (account, realm, node, a user's ids).
    fn shared(&mut self, slot: &mut Option<Text>, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty())
            && slot.as_deref() != Some(v)
        {
            *slot = Some(self.strings.intern(v));
        }
    }
}

/// A value of this call alone (tags): kept when unchanged, else copied.
fn own(slot: &mut Option<Text>, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty())
        && slot.as_deref() != Some(v)
    {
        *slot = Some(Text::from(v));
    }
}

/// A typed field from a custom variable: the variable's own value when it is a
/// plain string (one copy for both), else read as `lenient::string` reads it.
fn var_text(strings: &mut Interner, val: &Text, raw: bool) -> Option<Text> {
    if !raw && !val.contains('\\') {
        return (!val.is_empty()).then(|| val.clone());
    }
    let json = if raw {
        val.to_string()
    } else {
        format!("\"{val}\"")
    };
    let v = RawValue::from_string(json).ok()?;
    ccv_str(&v).map(|s| strings.intern(&s))
}

/// The variable as its JSON text, for the lenient readers.
fn var_raw(val: &Text, raw: bool) -> Option<Box<RawValue>> {
    RawValue::from_string(if raw {
        val.to_string()
    } else {
        format!("\"{val}\"")
    })
    .ok()
}

/// `Precedence` as `lenient::i64` reads it, without a detour for a plain string.
fn var_i64(val: &Text, raw: bool) -> Option<i64> {
    if !raw && !val.contains('\\') {
        return val.trim().parse().ok();
    }
    ccv_i64(&var_raw(val, raw)?)
}

/// `Channel-Authorized` as a Kazoo boolean, without a detour for the usual forms.
fn var_bool(val: &Text, raw: bool) -> Option<bool> {
    if !val.contains('\\') {
        if val.eq_ignore_ascii_case("true") && (!raw || val.as_str() == "true") {
            return Some(true);
        }
        if val.eq_ignore_ascii_case("false") && (!raw || val.as_str() == "false") {
            return Some(false);
        }
        if !raw {
            return None;
        }
    }
    ccv_bool(&var_raw(val, raw)?)
}

impl Channel {
    /// A channel as ecallmgr inserts it on `CHANNEL_CREATE` (or
    /// `CHANNEL_CONNECTED`), its values its own (no registry to share with).
    /// `now_gregorian` stands in when the event has no `Timestamp`.
    pub fn from_event(ev: &CallEvent<'_>, now_gregorian: u64) -> Self {
        Self::build(ev, now_gregorian, &mut Interner::default(), None)
    }

    /// [`Channel::from_event`] sharing values through `strings`; `peer` is the
    /// registry's copy of the other leg's call id, when it has the other leg.
    pub(crate) fn build(
        ev: &CallEvent<'_>,
        now_gregorian: u64,
        strings: &mut Interner,
        peer: Option<Text>,
    ) -> Self {
        let uuid: Text = Text::from(ev.call_id());
        let mut ch = Channel {
            uuid,
            direction: None,
            destination: None,
            account_id: None,
            account_billing: None,
            reseller_id: None,
            reseller_billing: None,
            authorizing_id: None,
            authorizing_type: None,
            channel_authorized: false,
            owner_id: None,
            resource_id: None,
            fetch_id: None,
            bridge_id: None,
            callflow_id: None,
            interaction_id: None,
            precedence: DEFAULT_PRECEDENCE,
            presence_id: None,
            realm: None,
            username: None,
            answered: ev.answer_state.as_deref() == Some("answered"),
            other_leg: peer.or_else(|| ev.peer().map(Text::from)),
            is_onhold: false,
            is_loopback: ev.is_loopback.unwrap_or(false),
            loopback_leg_name: None,
            loopback_other_leg: ev.loopback_other_leg.as_deref().map(Text::from),
            to_tag: None,
            from_tag: None,
            node: None,
            switch_hostname: None,
            switch_url: None,
            timestamp: ev.timestamp.unwrap_or(now_gregorian),
            caller_id_name: None,
            caller_id_number: None,
            callee_id_name: None,
            callee_id_number: None,
            from: None,
            to: None,
            custom_channel_vars: None,
            custom_application_vars: None,
            seq: Seqs::default(),
        };
        let mut b = Build { strings };
        b.shared(&mut ch.direction, ev.direction.as_deref());
        b.shared(&mut ch.loopback_leg_name, ev.loopback_leg.as_deref());
        b.shared(&mut ch.node, ev.switch_nodename.as_deref());
        b.shared(
            &mut ch.switch_hostname,
            ev.switch_hostname.as_deref().or(ev.media_server.as_deref()),
        );
        b.shared(&mut ch.switch_url, ev.switch_url.as_deref());
        ch.refresh(ev, b.strings);
        ch.seq.bridge = ev.event_micros().unwrap_or(0);
        ch
    }

    /// Takes the newer values an event carries: CCVs (ANSWER brings `Bridge-ID`,
    /// `Channel-Authorized`, `Fetch-ID` that CREATE lacked), tags, caller ids.
    /// Values the event lacks are kept. Called only for events not older than
    /// the newest one applied.
    pub(crate) fn refresh(&mut self, ev: &CallEvent<'_>, strings: &mut Interner) {
        let seq = ev.event_micros().unwrap_or(self.seq.vars);
        if seq < self.seq.vars {
            return;
        }
        self.seq.vars = seq;
        let mut b = Build { strings };
        if let Some(entries) = ev.ccv_entries() {
            let own = [
                Some(&self.uuid),
                self.bridge_id.as_ref(),
                self.interaction_id.as_ref(),
                self.fetch_id.as_ref(),
                self.other_leg.as_ref(),
            ];
            let vars = b
                .strings
                .vars_of(&entries, &own, self.custom_channel_vars.as_ref());
            let mut ccv_presence = None;
            for (key, val, raw) in vars.entries() {
                let slot = match key {
                    "Account-ID" => &mut self.account_id,
                    "Account-Billing" => &mut self.account_billing,
                    "Reseller-ID" => &mut self.reseller_id,
                    "Reseller-Billing" => &mut self.reseller_billing,
                    "Authorizing-ID" => &mut self.authorizing_id,
                    "Authorizing-Type" => &mut self.authorizing_type,
                    "Owner-ID" => &mut self.owner_id,
                    "Resource-ID" => &mut self.resource_id,
                    "Fetch-ID" => &mut self.fetch_id,
                    "Bridge-ID" => &mut self.bridge_id,
                    "CallFlow-ID" => &mut self.callflow_id,
                    "Call-Interaction-ID" => &mut self.interaction_id,
                    "Username" => &mut self.username,
                    "Realm" => &mut self.realm,
                    "Presence-ID" => &mut ccv_presence,
                    "Precedence" => {
                        if let Some(p) = var_i64(val, raw) {
                            self.precedence = p;
                        }
                        continue;
                    }
                    "Channel-Authorized" => {
                        if let Some(a) = var_bool(val, raw) {
                            self.channel_authorized = a;
                        }
                        continue;
                    }
                    _ => continue,
                };
                if let Some(v) = var_text(b.strings, val, raw) {
                    *slot = Some(v);
                }
            }
            if self.presence_id.is_none() {
                self.presence_id = ccv_presence;
            }
            self.custom_channel_vars = Some(vars);
        }
        if let Some(raw) = &ev.cav
            && let Some(vars) = b.strings.vars(raw, &[])
        {
            self.custom_application_vars = Some(vars);
        }
        b.shared(&mut self.presence_id, ev.presence_id.as_deref());
        own(&mut self.to_tag, ev.to_tag.as_deref());
        own(&mut self.from_tag, ev.from_tag.as_deref());
        b.shared(&mut self.caller_id_name, ev.caller_id_name.as_deref());
        b.shared(&mut self.caller_id_number, ev.caller_id_number.as_deref());
        b.shared(&mut self.callee_id_name, ev.callee_id_name.as_deref());
        b.shared(&mut self.callee_id_number, ev.callee_id_number.as_deref());
        b.shared(&mut self.from, ev.from.as_deref());
        b.shared(&mut self.to, ev.to.as_deref());
        if self.destination.is_none() {
            b.shared(&mut self.destination, destination(ev));
        }
        if self.bridge_id.is_none() {
            self.bridge_id = Some(self.uuid.clone());
        }
    }

    /// Re-points a channel built elsewhere (a peer's snapshot, ecallmgr) at the
    /// registry's shared values.
    pub(crate) fn share(&mut self, strings: &mut Interner) {
        for slot in [
            &mut self.direction,
            &mut self.destination,
            &mut self.account_id,
            &mut self.account_billing,
            &mut self.reseller_id,
            &mut self.reseller_billing,
            &mut self.authorizing_id,
            &mut self.authorizing_type,
            &mut self.owner_id,
            &mut self.resource_id,
            &mut self.callflow_id,
            &mut self.presence_id,
            &mut self.realm,
            &mut self.username,
            &mut self.loopback_leg_name,
            &mut self.node,
            &mut self.switch_hostname,
            &mut self.switch_url,
            &mut self.caller_id_name,
            &mut self.caller_id_number,
            &mut self.callee_id_name,
            &mut self.callee_id_number,
            &mut self.from,
            &mut self.to,
        ]
        .into_iter()
        .flatten()
        {
            strings.share(slot);
        }
        if self.bridge_id.as_deref() == Some(&*self.uuid) {
            self.bridge_id = Some(self.uuid.clone());
        }
        for v in [
            &mut self.custom_channel_vars,
            &mut self.custom_application_vars,
        ]
        .into_iter()
        .flatten()
        {
            strings.share_vars(v);
        }
    }

    /// `switch_nodename` is the FreeSWITCH node name, the same value as `node`.
    pub fn switch_nodename(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

/// 5.0 sends `Caller-Destination-Number`; 4.3 does not put it on the bus, and the
/// user part of `Request` is the best stand-in (WIRE.md §5.3).
fn destination<'e>(ev: &'e CallEvent<'_>) -> Option<&'e str> {
    if let Some(d) = ev.destination_number.as_deref().filter(|d| !d.is_empty()) {
        return Some(d);
    }
    let request = ev.request.as_deref()?;
    let request = request.strip_prefix("sip:").unwrap_or(request);
    let user = request.split('@').next().unwrap_or(request);
    (!user.is_empty()).then_some(user)
}
