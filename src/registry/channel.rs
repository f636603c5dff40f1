//! The live channel: every field of ecallmgr's channel object (WIRE.md §4.1),
//! built from and refreshed by call events. Its record form (snapshots,
//! seeding) is `channel_record.rs`.
//!
//! Over 400 lines as one job: building a channel from an event and
//! refreshing it share the packing of its own values and the custom-variable
//! readers, which are this file's.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::extra::{self, Extra, Slot};
use super::intern::{Interner, Vars};
use super::recording::{RecordEvent, Recordings};
use super::text::{KnownKeys, NoKeys, Text};
use crate::kapi::event::{CallEvent, ccv_bool, ccv_i64, ccv_str};

/// Accessors for values kept in the channel's packed allocation.
macro_rules! own_values {
    ($($name:ident => $slot:ident,)*) => {
        $(pub fn $name(&self) -> Option<&str> {
            self.own.get($slot)
        })*
    };
}

pub const DEFAULT_PRECEDENCE: i64 = 5;
/// Not on the wire; ecallmgr's defaults (WIRE.md §5.3).
pub const DEFAULT_PROFILE: &str = "sipinterface_1";
pub const DEFAULT_CONTEXT: &str = "context_2";
pub const DEFAULT_DIALPLAN: &str = "XML";

/// Which of a channel's values are its own (see [`Own`]).
pub(super) const DESTINATION: usize = 0;
pub(super) const FETCH_ID: usize = 1;
pub(super) const BRIDGE_ID: usize = 2;
pub(super) const INTERACTION_ID: usize = 3;
pub(super) const PRESENCE_ID: usize = 4;
pub(super) const LOOPBACK_OTHER_LEG: usize = 5;
pub(super) const TO_TAG: usize = 6;
pub(super) const FROM_TAG: usize = 7;
pub(super) const CALLER_ID_NAME: usize = 8;
pub(super) const CALLER_ID_NUMBER: usize = 9;
pub(super) const CALLEE_ID_NAME: usize = 10;
pub(super) const CALLEE_ID_NUMBER: usize = 11;
pub(super) const FROM: usize = 12;
pub(super) const TO: usize = 13;
pub(super) const REQUEST: usize = 14;
pub(super) const OWN: usize = 15;

/// The values of one call alone, or of its user and few others (tags, ids of
/// the call, caller ids, presence), packed in one allocation. At a million
/// channels a shared string of its own (an allocation, an interner slot and a
/// lookup that misses the cache at every event) cost more than a copy here, and
/// a query reads them from one place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Own {
    text: Box<str>,
    /// Where each value ends in `text`; a value is empty (absent) when it ends
    /// where the previous one did.
    ends: [u16; OWN],
}

impl Own {
    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize;
        (end > start).then(|| &self.text[start..end])
    }

    /// Ecallmgr's values are tens of bytes; one past the 64 KiB a channel's
    /// own text can hold is dropped (and logged) rather than widen every
    /// channel's offsets.
    pub(super) fn pack(call_id: &str, vals: &[Option<Cow<'_, str>>; OWN]) -> Self {
        let total: usize = vals.iter().flatten().map(|v| v.len()).sum();
        let mut text = String::with_capacity(total.min(u16::MAX as usize));
        let mut ends = [0; OWN];
        for (end, v) in ends.iter_mut().zip(vals) {
            match v {
                Some(v) if text.len() + v.len() <= u16::MAX as usize => text.push_str(v),
                Some(v) => tracing::warn!(
                    call_id,
                    bytes = v.len(),
                    "a channel value past the 64 KiB a channel keeps of its own was dropped"
                ),
                None => {}
            }
            *end = text.len() as u16;
        }
        Self {
            text: text.into_boxed_str(),
            ends,
        }
    }

    fn values(&self) -> [Option<Cow<'_, str>>; OWN] {
        std::array::from_fn(|i| self.get(i).map(Cow::Borrowed))
    }
}

/// A channel as the registry holds it: values shared with other channels
/// (account, realm, node, a user's indexed ids) as [`Text`], its own values
/// packed (read through the methods of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub uuid: Text,
    pub direction: Option<Text>,
    pub account_id: Option<Text>,
    pub account_billing: Option<Text>,
    pub reseller_id: Option<Text>,
    pub reseller_billing: Option<Text>,
    pub authorizing_id: Option<Text>,
    pub authorizing_type: Option<Text>,
    pub owner_id: Option<Text>,
    pub resource_id: Option<Text>,
    pub callflow_id: Option<Text>,
    pub realm: Option<Text>,
    pub username: Option<Text>,
    pub other_leg: Option<Text>,
    pub loopback_leg_name: Option<Text>,
    /// FreeSWITCH node name; reported as both `node` and `switch_nodename`.
    pub node: Option<Text>,
    pub switch_hostname: Option<Text>,
    pub switch_url: Option<Text>,
    /// The objects as received, values shared (see [`Vars`]); only ever echoed.
    pub custom_channel_vars: Option<Vars>,
    pub custom_application_vars: Option<Vars>,
    pub precedence: i64,
    /// Gregorian seconds when the channel was created.
    pub timestamp: u64,
    /// Event time (Unix µs) of the newest event applied to each aspect, so a late,
    /// older event cannot undo a newer one.
    pub seq: Seqs,
    pub channel_authorized: bool,
    pub answered: bool,
    pub is_onhold: bool,
    pub is_loopback: bool,
    pub(super) own: Own,
    /// [5.x] What Kazoo 5.x events add, when there is any (see [`Extra`]).
    pub(super) extra: Option<Box<Extra>>,
    /// Bit `n`: the own value `COPIED[n]` is the CCV's, not kept in `own`.
    pub(super) in_ccv: u8,
    /// The event's `Request` is `<destination>@<realm>`, as it mostly is: not
    /// kept twice (a fifth of a channel's own text).
    pub(super) request_derived: bool,
}

/// The own values the CCVs carry too, in the order of [`super::intern::Shape::COPIED`].
const COPIED: [usize; 4] = [FETCH_ID, BRIDGE_ID, INTERACTION_ID, PRESENCE_ID];

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
    /// A value many channels repeat (account, realm, node).
    fn shared(&mut self, slot: &mut Option<Text>, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty())
            && slot.as_deref() != Some(v)
        {
            *slot = Some(self.strings.intern(v));
        }
    }
}

/// An own value from the event: taken when present, else the old one kept.
pub(super) fn set<'a>(slot: &mut Option<Cow<'a, str>>, value: Option<&'a str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        *slot = Some(Cow::Borrowed(v));
    }
}

/// A typed field from a custom variable: the variable's own value when it is a
/// plain string (one copy for both), else read as `lenient::string` reads it.
fn var_text(strings: &mut Interner, val: &Text, raw: bool) -> Option<Text> {
    if !raw && !val.contains('\\') {
        return (!val.is_empty()).then(|| val.clone());
    }
    let v = var_raw(val, raw);
    ccv_str(&v).map(|s| strings.intern(&s))
}

/// [`var_text`] for a value the channel keeps as its own.
fn var_str(val: &Text, raw: bool) -> Option<Cow<'_, str>> {
    if !raw && !val.contains('\\') {
        return (!val.is_empty()).then_some(Cow::Borrowed(val.as_str()));
    }
    let v = var_raw(val, raw);
    ccv_str(&v).map(|s| Cow::Owned(s.into_owned()))
}

/// The variable as its JSON text, for the lenient readers (a string's value
/// is kept with its escapes, so quoting it gives back its JSON).
fn var_raw(val: &Text, raw: bool) -> Cow<'_, str> {
    if raw {
        Cow::Borrowed(val.as_str())
    } else {
        Cow::Owned(format!("\"{val}\""))
    }
}

/// `Precedence` as `lenient::i64` reads it, without a detour for a plain string.
fn var_i64(val: &Text, raw: bool) -> Option<i64> {
    if !raw && !val.contains('\\') {
        return val.trim().parse().ok();
    }
    ccv_i64(&var_raw(val, raw))
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
    ccv_bool(&var_raw(val, raw))
}

impl Channel {
    /// A channel as ecallmgr inserts it on `CHANNEL_CREATE` (or
    /// `CHANNEL_CONNECTED`), its values its own (no registry to share with).
    /// `now_gregorian` stands in when the event has no `Timestamp`.
    pub fn from_event(ev: &CallEvent<'_>, now_gregorian: u64) -> Self {
        Self::build(ev, now_gregorian, &mut Interner::default(), &NoKeys, None)
    }

    /// [`Channel::from_event`] sharing values through `strings` and the keys
    /// of `keys`; `peer` is the registry's copy of the other leg's call id,
    /// when it has the other leg.
    pub(crate) fn build(
        ev: &CallEvent<'_>,
        now_gregorian: u64,
        strings: &mut Interner,
        keys: &impl KnownKeys,
        peer: Option<Text>,
    ) -> Self {
        let uuid: Text = Text::from(ev.call_id());
        let mut own: [Option<Cow<'_, str>>; OWN] = Default::default();
        set(
            &mut own[LOOPBACK_OTHER_LEG],
            ev.loopback_other_leg.as_deref(),
        );
        let mut ch = Channel {
            uuid,
            direction: None,
            account_id: None,
            account_billing: None,
            reseller_id: None,
            reseller_billing: None,
            authorizing_id: None,
            authorizing_type: None,
            channel_authorized: false,
            owner_id: None,
            resource_id: None,
            callflow_id: None,
            precedence: DEFAULT_PRECEDENCE,
            realm: None,
            username: None,
            answered: ev.answer_state.as_deref() == Some("answered"),
            other_leg: peer.or_else(|| ev.peer().map(Text::from)),
            is_onhold: false,
            is_loopback: ev.is_loopback.unwrap_or(false),
            loopback_leg_name: None,
            node: None,
            switch_hostname: None,
            switch_url: None,
            timestamp: ev.timestamp.unwrap_or(now_gregorian),
            custom_channel_vars: None,
            custom_application_vars: None,
            seq: Seqs::default(),
            own: Own::pack(ev.call_id(), &own),
            in_ccv: 0,
            request_derived: false,
            extra: None,
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
        ch.refresh(ev, b.strings, keys);
        // A CREATE carries no bridge state, except an originated B-leg's
        // peer: only then does it date the bridge. Otherwise a BRIDGE held
        // for it, stamped a little earlier (another ecallmgr's clock), would
        // look stale when it is applied.
        if ch.other_leg.is_some() {
            ch.seq.bridge = ev.event_micros().unwrap_or(0);
        }
        ch
    }

    /// Takes the newer values an event carries: CCVs (ANSWER brings `Bridge-ID`,
    /// `Channel-Authorized`, `Fetch-ID` that CREATE lacked), tags, caller ids.
    /// Values the event lacks are kept. Called only for events not older than
    /// the newest one applied.
    pub(crate) fn refresh(
        &mut self,
        ev: &CallEvent<'_>,
        strings: &mut Interner,
        keys: &impl KnownKeys,
    ) {
        let seq = ev.event_micros().unwrap_or(self.seq.vars);
        if seq < self.seq.vars {
            return;
        }
        self.seq.vars = seq;
        let b = Build { strings };
        let fresh = ev.ccv.as_deref().and_then(|raw| {
            b.strings.with_members(raw, |strings, entries| {
                // Indexed values are the index's keys: found there in the lookup
                // the index needs anyway, and not in the interner at all.
                let mut realm = self.realm.clone();
                let mut keyed = |var: &str, value: &str| {
                    let t = keys.known(var, value, realm.as_deref());
                    if var == "Realm" {
                        realm = t.clone();
                    }
                    t
                };
                strings.vars_update(
                    entries,
                    &[Some(&self.uuid), self.other_leg.as_ref()],
                    self.custom_channel_vars.as_ref(),
                    &mut keyed,
                )
            })
        });
        // `Some(None)`: the event repeats the variables the channel holds,
        // whose values are read again all the same.
        let seen = fresh.is_some();
        let vars = fresh.flatten();
        let old = std::mem::take(&mut self.own);
        let old_in_ccv = self.in_ccv;
        let mut own = old.values();
        for (n, &i) in COPIED.iter().enumerate() {
            if old_in_ccv & (1 << n) != 0 {
                own[i] = self
                    .custom_channel_vars
                    .as_ref()
                    .and_then(|v| v.copied(n))
                    .map(Cow::Borrowed);
            }
        }
        let read = match &vars {
            Some(v) => Some(v),
            None if seen => self.custom_channel_vars.as_ref(),
            None => None,
        };
        if let Some(vars) = read {
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
                    "CallFlow-ID" => &mut self.callflow_id,
                    "Username" => &mut self.username,
                    "Realm" => &mut self.realm,
                    "Fetch-ID" | "Bridge-ID" | "Call-Interaction-ID" | "Presence-ID" => {
                        let Some(v) = var_str(val, raw) else {
                            continue;
                        };
                        match key {
                            "Fetch-ID" => own[FETCH_ID] = Some(v),
                            "Bridge-ID" => own[BRIDGE_ID] = Some(v),
                            "Call-Interaction-ID" => own[INTERACTION_ID] = Some(v),
                            _ => ccv_presence = Some(v),
                        }
                        continue;
                    }
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
            if own[PRESENCE_ID].is_none() {
                own[PRESENCE_ID] = ccv_presence;
            }
        }
        // Against the last event's, as the CCVs: mostly the same object.
        if let Some(raw) = ev.cav.as_deref()
            && let Some(Some(vars)) = b.strings.with_members(raw, |strings, entries| {
                strings.vars_update(
                    entries,
                    &[],
                    self.custom_application_vars.as_ref(),
                    &mut |_, _| None,
                )
            })
        {
            self.custom_application_vars = Some(vars);
        }
        let changes = b.strings.take_changes();
        if changes.any() {
            tracing::warn!(
                call_id = %self.uuid,
                msg_id = ev.msg_id.as_deref().unwrap_or_default(),
                fixed = changes.fixed,
                dropped = changes.dropped,
                "custom variables a strict JSON reader refuses were normalised (kept as text), or dropped (over 64 KiB)"
            );
        }
        set(&mut own[PRESENCE_ID], ev.presence_id.as_deref());
        set(&mut own[TO_TAG], ev.to_tag.as_deref());
        set(&mut own[FROM_TAG], ev.from_tag.as_deref());
        set(&mut own[CALLER_ID_NAME], ev.caller_id_name.as_deref());
        set(&mut own[CALLER_ID_NUMBER], ev.caller_id_number.as_deref());
        set(&mut own[CALLEE_ID_NAME], ev.callee_id_name.as_deref());
        set(&mut own[CALLEE_ID_NUMBER], ev.callee_id_number.as_deref());
        set(&mut own[FROM], ev.from.as_deref());
        set(&mut own[TO], ev.to.as_deref());
        set(&mut own[REQUEST], ev.request.as_deref());
        if own[DESTINATION].is_none() {
            set(&mut own[DESTINATION], destination(ev));
        }
        // The usual bridge id is the call's own id, held once as `uuid`.
        if own[BRIDGE_ID].as_deref() == Some(self.uuid.as_str()) {
            own[BRIDGE_ID] = None;
        }
        // (Derived against the realm of now: a realm that changed mid-call would
        // show in the request too. Kazoo sets the Realm variable once, at auth.)
        if let Some(r) = own[REQUEST].as_deref() {
            self.request_derived = is_at(r, own[DESTINATION].as_deref(), self.realm.as_deref());
            if self.request_derived {
                own[REQUEST] = None;
            }
        }
        let in_ccv = held_in_ccv(
            &mut own,
            vars.as_ref().or(self.custom_channel_vars.as_ref()),
        );
        let packed = (own != old.values()).then(|| Own::pack(&self.uuid, &own));
        drop(own);
        self.own = packed.unwrap_or(old);
        self.in_ccv = in_ccv;
        if let Some(vars) = vars {
            self.custom_channel_vars = Some(vars);
        }
        self.refresh_headers(ev, b.strings);
    }

    /// Re-points a channel built elsewhere (a peer's snapshot, ecallmgr) at the
    /// registry's shared values and index keys.
    pub(crate) fn share(&mut self, strings: &mut Interner, keys: &impl KnownKeys) {
        for slot in [
            &mut self.direction,
            &mut self.account_billing,
            &mut self.reseller_billing,
            &mut self.reseller_id,
            &mut self.authorizing_type,
            &mut self.resource_id,
            &mut self.callflow_id,
            &mut self.loopback_leg_name,
            &mut self.node,
            &mut self.switch_hostname,
            &mut self.switch_url,
        ]
        .into_iter()
        .flatten()
        {
            strings.share(slot);
        }
        let realm = self.realm.clone();
        for (var, slot) in [
            ("Account-ID", &mut self.account_id),
            ("Authorizing-ID", &mut self.authorizing_id),
            ("Owner-ID", &mut self.owner_id),
            ("Realm", &mut self.realm),
            ("Username", &mut self.username),
        ] {
            if let Some(t) = slot
                && let Some(k) = keys.known(var, t.as_str(), realm.as_deref())
            {
                *t = k;
            }
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
        if let Some(e) = self.extra.as_mut() {
            for v in [&mut e.sip_headers, &mut e.auth_headers]
                .into_iter()
                .flatten()
            {
                strings.share_vars(v);
            }
        }
    }

    /// [5.x] The headers objects an event carries, kept when they changed.
    fn refresh_headers(&mut self, ev: &CallEvent<'_>, strings: &mut Interner) {
        if let Some(raw) = ev.csh.as_deref()
            && let Some(v) = extra::headers(strings, raw, self.sip_headers())
        {
            self.extra.set_sip_headers(v);
        }
        if let Some(raw) = ev.cah.as_deref()
            && let Some(v) = extra::headers(strings, raw, self.auth_headers())
        {
            self.extra.set_auth_headers(v);
        }
    }

    /// [5.x] A `RECORD_*` event for the recording `name`; whether anything changed.
    pub(crate) fn record(&mut self, name: &str, ev: RecordEvent) -> bool {
        self.extra.record(name, ev)
    }

    /// [5.x] `Custom-SIP-Headers`, when the events carried any.
    pub fn sip_headers(&self) -> Option<&Vars> {
        self.extra.as_ref()?.sip_headers.as_ref()
    }

    /// [5.x] `Custom-AUTH-Headers`, when CHANNEL_CREATE carried any.
    pub fn auth_headers(&self) -> Option<&Vars> {
        self.extra.as_ref()?.auth_headers.as_ref()
    }

    /// [5.x] The recordings, once a `RECORD_*` event was seen.
    pub fn recordings(&self) -> Option<&Recordings> {
        self.extra
            .as_ref()
            .map(|e| &e.recordings)
            .filter(|r| !r.is_empty())
    }

    /// `switch_nodename` is the FreeSWITCH node name, the same value as `node`.
    pub fn switch_nodename(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// An own value that may be the CCVs' copy.
    #[inline]
    fn copy(&self, i: usize) -> Option<&str> {
        match COPIED.iter().position(|&c| c == i) {
            // Set only where `copied(n)` gave the value, with these variables.
            Some(n) if self.in_ccv & (1 << n) != 0 => self
                .custom_channel_vars
                .as_ref()
                .and_then(|v| v.copied_again(n)),
            _ => self.own.get(i),
        }
    }

    pub fn destination(&self) -> Option<&str> {
        self.own.get(DESTINATION)
    }
    pub fn fetch_id(&self) -> Option<&str> {
        self.copy(FETCH_ID)
    }
    /// Defaults to the channel's own uuid when the CCVs carry none.
    pub fn bridge_id(&self) -> Option<&str> {
        self.copy(BRIDGE_ID).or(Some(self.uuid.as_str()))
    }
    pub fn interaction_id(&self) -> Option<&str> {
        self.copy(INTERACTION_ID)
    }
    pub fn presence_id(&self) -> Option<&str> {
        self.copy(PRESENCE_ID)
    }
    /// [5.x] The events' `Request`.
    pub fn request(&self) -> Option<Cow<'_, str>> {
        if self.request_derived {
            let (dest, realm) = (self.destination()?, self.realm.as_deref()?);
            return Some(Cow::Owned(format!("{dest}@{realm}")));
        }
        self.own.get(REQUEST).map(Cow::Borrowed)
    }

    own_values! {
        loopback_other_leg => LOOPBACK_OTHER_LEG,
        to_tag => TO_TAG,
        from_tag => FROM_TAG,
        caller_id_name => CALLER_ID_NAME,
        caller_id_number => CALLER_ID_NUMBER,
        callee_id_name => CALLEE_ID_NAME,
        callee_id_number => CALLEE_ID_NUMBER,
        from => FROM,
        to => TO,
    }
}

/// Drops the values of `COPIED` that the CCVs carry as they are, so they are
/// read from there; the bits of `Channel::in_ccv` for what was dropped.
pub(super) fn held_in_ccv(own: &mut [Option<Cow<'_, str>>; OWN], ccv: Option<&Vars>) -> u8 {
    let mut in_ccv = 0;
    for (n, &i) in COPIED.iter().enumerate() {
        if let Some(v) = &own[i]
            && ccv.and_then(|c| c.copied(n)) == Some(&**v)
        {
            in_ccv |= 1 << n;
            own[i] = None;
        }
    }
    in_ccv
}

/// Whether `request` is `<destination>@<realm>`.
pub(super) fn is_at(request: &str, destination: Option<&str>, realm: Option<&str>) -> bool {
    let (Some(dest), Some(realm)) = (destination, realm) else {
        return false;
    };
    request.len() == dest.len() + 1 + realm.len()
        && request.starts_with(dest)
        && request.ends_with(realm)
        && request.as_bytes()[dest.len()] == b'@'
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
