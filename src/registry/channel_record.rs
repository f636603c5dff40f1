//! The record form of a channel: every field a value of its own, as
//! snapshots carry it and seeding builds it, converted both ways to the
//! registry's compact [`Channel`], and its compact wire form (values the
//! custom channel variables hold left out).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::channel::{
    BRIDGE_ID, CALLEE_ID_NAME, CALLEE_ID_NUMBER, CALLER_ID_NAME, CALLER_ID_NUMBER, Channel,
    DESTINATION, FETCH_ID, FROM, FROM_TAG, INTERACTION_ID, LOOPBACK_OTHER_LEG, OWN, Own,
    PRESENCE_ID, REQUEST, Seqs, TO, TO_TAG, held_in_ccv, is_at, set,
};
use super::extra::Slot;
use super::intern::Vars;
use super::recording::Recordings;
use super::text::Text;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// A channel with every field a value of its own: the form snapshots carry and
/// seeding builds, converted to and from [`Channel`]. Unknown values are left
/// out of its JSON, which a snapshot carries for every channel.
pub struct ChannelRecord {
    pub uuid: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_billing: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseller_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseller_billing: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizing_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizing_type: Option<Text>,
    pub channel_authorized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_id: Option<Text>,
    /// Defaults to the channel's own uuid when the CCVs carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callflow_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<Text>,
    pub precedence: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<Text>,
    pub answered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_leg: Option<Text>,
    pub is_onhold: bool,
    pub is_loopback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback_leg_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback_other_leg: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_tag: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_tag: Option<Text>,
    /// FreeSWITCH node name; reported as both `node` and `switch_nodename`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_hostname: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch_url: Option<Text>,
    /// Gregorian seconds when the channel was created.
    pub timestamp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id_number: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_id_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_id_number: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Text>,
    /// The objects as received, values shared (see [`Vars`]); only ever echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_channel_vars: Option<Vars>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_application_vars: Option<Vars>,
    /// Event time (Unix µs) of the newest event applied to each aspect, so a late,
    /// older event cannot undo a newer one.
    #[serde(default)]
    pub seq: Seqs,
    /// [5.x] (WIRE-5.md §3); absent from an older peer's snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_headers: Option<Vars>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_headers: Option<Vars>,
    /// What [`ChannelRecord::compact`] left out, to be read back from the
    /// custom channel variables (bit `n`: `FROM_CCV[n]`) or derived
    /// ([`REQUEST_DERIVED`]); 0 in the full form.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub from_ccv: u16,
    #[serde(default, skip_serializing_if = "Recordings::is_empty")]
    pub recordings: Recordings,
}

impl From<ChannelRecord> for Channel {
    fn from(mut r: ChannelRecord) -> Self {
        r.expand();
        let mut own: [Option<Cow<'_, str>>; OWN] = Default::default();
        for (i, v) in [
            (DESTINATION, &r.destination),
            (FETCH_ID, &r.fetch_id),
            (BRIDGE_ID, &r.bridge_id),
            (INTERACTION_ID, &r.interaction_id),
            (PRESENCE_ID, &r.presence_id),
            (LOOPBACK_OTHER_LEG, &r.loopback_other_leg),
            (TO_TAG, &r.to_tag),
            (FROM_TAG, &r.from_tag),
            (CALLER_ID_NAME, &r.caller_id_name),
            (CALLER_ID_NUMBER, &r.caller_id_number),
            (CALLEE_ID_NAME, &r.callee_id_name),
            (CALLEE_ID_NUMBER, &r.callee_id_number),
            (FROM, &r.from),
            (TO, &r.to),
            (REQUEST, &r.request),
        ] {
            set(&mut own[i], v.as_deref());
        }
        if own[BRIDGE_ID].as_deref() == Some(r.uuid.as_str()) {
            own[BRIDGE_ID] = None;
        }
        // Held as compactly as a channel built from events: a snapshot's
        // channel must not cost its newcomer more than its peer.
        let in_ccv = held_in_ccv(&mut own, r.custom_channel_vars.as_ref());
        let request_derived = own[REQUEST]
            .as_deref()
            .is_some_and(|q| is_at(q, own[DESTINATION].as_deref(), r.realm.as_deref()));
        if request_derived {
            own[REQUEST] = None;
        }
        let own = Own::pack(&r.uuid, &own);
        let mut ch = Channel {
            uuid: r.uuid,
            direction: r.direction,
            account_id: r.account_id,
            account_billing: r.account_billing,
            reseller_id: r.reseller_id,
            reseller_billing: r.reseller_billing,
            authorizing_id: r.authorizing_id,
            authorizing_type: r.authorizing_type,
            owner_id: r.owner_id,
            resource_id: r.resource_id,
            callflow_id: r.callflow_id,
            realm: r.realm,
            username: r.username,
            other_leg: r.other_leg,
            loopback_leg_name: r.loopback_leg_name,
            node: r.node,
            switch_hostname: r.switch_hostname,
            switch_url: r.switch_url,
            custom_channel_vars: r.custom_channel_vars,
            custom_application_vars: r.custom_application_vars,
            precedence: r.precedence,
            timestamp: r.timestamp,
            seq: r.seq,
            channel_authorized: r.channel_authorized,
            answered: r.answered,
            is_onhold: r.is_onhold,
            is_loopback: r.is_loopback,
            own,
            in_ccv,
            request_derived,
            extra: None,
        };
        if let Some(v) = r.sip_headers {
            ch.extra.set_sip_headers(v);
        }
        if let Some(v) = r.auth_headers {
            ch.extra.set_auth_headers(v);
        }
        if !r.recordings.is_empty() {
            ch.extra.extra().recordings = r.recordings;
        }
        ch
    }
}

impl From<Channel> for ChannelRecord {
    fn from(c: Channel) -> Self {
        let t = |v: Option<&str>| v.map(Text::from);
        ChannelRecord {
            direction: c.direction.clone(),
            destination: t(c.destination()),
            account_id: c.account_id.clone(),
            account_billing: c.account_billing.clone(),
            reseller_id: c.reseller_id.clone(),
            reseller_billing: c.reseller_billing.clone(),
            authorizing_id: c.authorizing_id.clone(),
            authorizing_type: c.authorizing_type.clone(),
            channel_authorized: c.channel_authorized,
            owner_id: c.owner_id.clone(),
            resource_id: c.resource_id.clone(),
            fetch_id: t(c.fetch_id()),
            bridge_id: t(c.bridge_id()),
            callflow_id: c.callflow_id.clone(),
            interaction_id: t(c.interaction_id()),
            precedence: c.precedence,
            presence_id: t(c.presence_id()),
            realm: c.realm.clone(),
            username: c.username.clone(),
            answered: c.answered,
            other_leg: c.other_leg.clone(),
            is_onhold: c.is_onhold,
            is_loopback: c.is_loopback,
            loopback_leg_name: c.loopback_leg_name.clone(),
            loopback_other_leg: t(c.loopback_other_leg()),
            to_tag: t(c.to_tag()),
            from_tag: t(c.from_tag()),
            node: c.node.clone(),
            switch_hostname: c.switch_hostname.clone(),
            switch_url: c.switch_url.clone(),
            timestamp: c.timestamp,
            caller_id_name: t(c.caller_id_name()),
            caller_id_number: t(c.caller_id_number()),
            callee_id_name: t(c.callee_id_name()),
            callee_id_number: t(c.callee_id_number()),
            from: t(c.from()),
            to: t(c.to()),
            request: c.request().map(|r| Text::from(&*r)),
            sip_headers: c.sip_headers().cloned(),
            auth_headers: c.auth_headers().cloned(),
            recordings: c.recordings().cloned().unwrap_or_default(),
            from_ccv: 0,
            seq: c.seq,
            uuid: c.uuid,
            custom_channel_vars: c.custom_channel_vars,
            custom_application_vars: c.custom_application_vars,
        }
    }
}

/// The record fields the compact form leaves out when the custom channel
/// variables carry them as they are: a channel's ids are mostly its CCVs'.
const FROM_CCV: [&str; 9] = [
    "Account-ID",
    "Authorizing-ID",
    "Owner-ID",
    "Realm",
    "Username",
    "Fetch-ID",
    "Bridge-ID",
    "Call-Interaction-ID",
    "Presence-ID",
];
/// Bit of `ChannelRecord::from_ccv`: `request` is `<destination>@<realm>`.
const REQUEST_DERIVED: u16 = 1 << 15;

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl ChannelRecord {
    fn slots_in_ccv(&mut self) -> [&mut Option<Text>; FROM_CCV.len()] {
        [
            &mut self.account_id,
            &mut self.authorizing_id,
            &mut self.owner_id,
            &mut self.realm,
            &mut self.username,
            &mut self.fetch_id,
            &mut self.bridge_id,
            &mut self.interaction_id,
            &mut self.presence_id,
        ]
    }

    /// The compact form a snapshot carries to a peer that reads it: values
    /// its CCVs hold as they are, a bridge id that is the call's own and a
    /// request that is `<destination>@<realm>` are left out (a third of a
    /// record). [`ChannelRecord::expand`] puts them back.
    pub fn compact(&mut self) {
        if self
            .request
            .as_deref()
            .is_some_and(|q| is_at(q, self.destination.as_deref(), self.realm.as_deref()))
        {
            self.request = None;
            self.from_ccv |= REQUEST_DERIVED;
        }
        let ccv = self.custom_channel_vars.take();
        if let Some(vars) = &ccv {
            let mut bits = 0;
            for (n, slot) in self.slots_in_ccv().into_iter().enumerate() {
                if slot.is_some() && slot.as_deref() == vars.plain(FROM_CCV[n]) {
                    *slot = None;
                    bits |= 1 << n;
                }
            }
            self.from_ccv |= bits;
        }
        self.custom_channel_vars = ccv;
        if self.bridge_id.as_deref() == Some(self.uuid.as_str()) {
            // Read back as the call's own id, in either form.
            self.bridge_id = None;
        }
    }

    /// Undoes [`ChannelRecord::compact`] (nothing to do in the full form).
    pub fn expand(&mut self) {
        let bits = std::mem::take(&mut self.from_ccv);
        if bits == 0 {
            return;
        }
        let ccv = self.custom_channel_vars.take();
        if let Some(vars) = &ccv {
            for (n, slot) in self.slots_in_ccv().into_iter().enumerate() {
                if bits & (1 << n) != 0 {
                    *slot = vars.plain(FROM_CCV[n]).map(Text::from);
                }
            }
        }
        self.custom_channel_vars = ccv;
        if bits & REQUEST_DERIVED != 0
            && let (Some(dest), Some(realm)) = (&self.destination, &self.realm)
        {
            self.request = Some(Text::from(
                format!("{}@{}", dest.as_str(), realm.as_str()).as_str(),
            ));
        }
    }
}

/// A channel is read and written in its record form.
impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ChannelRecord::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ChannelRecord::deserialize(d).map(Into::into)
    }
}
