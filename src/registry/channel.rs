//! The channel record: every field of ecallmgr's channel object (WIRE.md §4.1).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::kapi::event::{CallEvent, Ccvs};

/// Shared immutable text: call ids live in the map and in every index, and
/// low-cardinality values (account, realm, node) are cheap to clone.
pub type Text = Arc<str>;

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
    /// Stored as received (a JSON object); kept raw because it is only ever echoed.
    pub custom_channel_vars: Option<RawJson>,
    pub custom_application_vars: Option<RawJson>,
    /// Event time (Unix µs) of the newest event applied to each aspect, so a late,
    /// older event cannot undo a newer one.
    #[serde(default)]
    pub seq: Seqs,
}

/// A JSON value kept as its text; compared by text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(pub Box<RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl RawJson {
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seqs {
    pub vars: u64,
    pub bridge: u64,
    pub hold: u64,
}

fn text(s: &Option<String>) -> Option<Text> {
    s.as_deref().filter(|s| !s.is_empty()).map(Text::from)
}

impl Channel {
    /// A channel as ecallmgr inserts it on `CHANNEL_CREATE` (or `CHANNEL_CONNECTED`).
    /// `now_gregorian` stands in when the event has no `Timestamp`.
    pub fn from_event(ev: &CallEvent, now_gregorian: u64) -> Self {
        let uuid: Text = Text::from(ev.call_id());
        let mut ch = Channel {
            uuid: uuid.clone(),
            direction: text(&ev.direction),
            destination: destination(ev),
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
            other_leg: ev.peer().map(Text::from),
            is_onhold: false,
            is_loopback: ev.is_loopback.unwrap_or(false),
            loopback_leg_name: text(&ev.loopback_leg),
            loopback_other_leg: text(&ev.loopback_other_leg),
            to_tag: None,
            from_tag: None,
            node: text(&ev.switch_nodename),
            switch_hostname: text(&ev.switch_hostname).or_else(|| text(&ev.media_server)),
            switch_url: text(&ev.switch_url),
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
        ch.refresh_vars(ev);
        ch.seq.bridge = ev.event_micros().unwrap_or(0);
        ch
    }

    /// Takes the newer values an event carries: CCVs (ANSWER brings `Bridge-ID`,
    /// `Channel-Authorized`, `Fetch-ID` that CREATE lacked), tags, caller ids.
    /// Values the event lacks are kept. Called only for events not older than
    /// the newest one applied.
    pub fn refresh_vars(&mut self, ev: &CallEvent) {
        let seq = ev.event_micros().unwrap_or(self.seq.vars);
        if seq < self.seq.vars {
            return;
        }
        self.seq.vars = seq;
        if let Some(raw) = &ev.ccv {
            let c: Ccvs = ev.ccvs();
            set(&mut self.account_id, &c.account_id);
            set(&mut self.account_billing, &c.account_billing);
            set(&mut self.reseller_id, &c.reseller_id);
            set(&mut self.reseller_billing, &c.reseller_billing);
            set(&mut self.authorizing_id, &c.authorizing_id);
            set(&mut self.authorizing_type, &c.authorizing_type);
            set(&mut self.owner_id, &c.owner_id);
            set(&mut self.resource_id, &c.resource_id);
            set(&mut self.fetch_id, &c.fetch_id);
            set(&mut self.bridge_id, &c.bridge_id);
            set(&mut self.callflow_id, &c.callflow_id);
            set(&mut self.interaction_id, &c.interaction_id);
            set(&mut self.username, &c.username);
            set(&mut self.realm, &c.realm);
            if let Some(p) = c.precedence {
                self.precedence = p;
            }
            if let Some(a) = c.channel_authorized {
                self.channel_authorized = a;
            }
            if self.presence_id.is_none() {
                set(&mut self.presence_id, &c.presence_id);
            }
            if raw.get().starts_with('{') {
                self.custom_channel_vars = Some(RawJson(raw.clone()));
            }
        }
        if let Some(raw) = &ev.cav
            && raw.get().starts_with('{')
        {
            self.custom_application_vars = Some(RawJson(raw.clone()));
        }
        set(&mut self.presence_id, &ev.presence_id);
        set(&mut self.to_tag, &ev.to_tag);
        set(&mut self.from_tag, &ev.from_tag);
        set(&mut self.caller_id_name, &ev.caller_id_name);
        set(&mut self.caller_id_number, &ev.caller_id_number);
        set(&mut self.callee_id_name, &ev.callee_id_name);
        set(&mut self.callee_id_number, &ev.callee_id_number);
        set(&mut self.from, &ev.from);
        set(&mut self.to, &ev.to);
        if self.destination.is_none() {
            self.destination = destination(ev);
        }
        if self.bridge_id.is_none() {
            self.bridge_id = Some(self.uuid.clone());
        }
    }

    /// `switch_nodename` is the FreeSWITCH node name, the same value as `node`.
    pub fn switch_nodename(&self) -> Option<&str> {
        self.node.as_deref()
    }
}

fn set(slot: &mut Option<Text>, value: &Option<String>) {
    if let Some(v) = value.as_deref().filter(|v| !v.is_empty())
        && slot.as_deref() != Some(v)
    {
        *slot = Some(Text::from(v));
    }
}

/// 5.0 sends `Caller-Destination-Number`; 4.3 does not put it on the bus, and the
/// user part of `Request` is the best stand-in (WIRE.md §5.3).
fn destination(ev: &CallEvent) -> Option<Text> {
    if let Some(d) = text(&ev.destination_number) {
        return Some(d);
    }
    let request = ev.request.as_deref()?;
    let request = request.strip_prefix("sip:").unwrap_or(request);
    let user = request.split('@').next().unwrap_or(request);
    (!user.is_empty()).then(|| Text::from(user))
}
