//! The capitalised channel object of `query_channels_resp` (WIRE.md §4.2), the
//! keys of `channel_status_resp` (§3.4), and the capitalised object read back
//! into a channel (what seeding from ecallmgr reads). Written straight from
//! the registry's [`Channel`] into the reply buffer; unknown values are omitted.
//!
//! Over 400 lines as one job: one form, written and read back, its key list
//! half of the file.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::Obj;
use super::{elapsed, text};
use crate::kapi::{Dialect, lenient};
use crate::registry::Channel;
use crate::registry::ChannelRecord;
use crate::registry::Text;
use crate::registry::channel::{
    DEFAULT_CONTEXT, DEFAULT_DIALPLAN, DEFAULT_PRECEDENCE, DEFAULT_PROFILE, Seqs,
};
use crate::registry::intern::{Interner, Vars};
use crate::registry::recording::Recordings;

/// `Fields` of `query_channels_req` (WIRE.md §3.3): which keys of this form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fields {
    /// Absent: each channel is `{}`.
    Nothing,
    /// `"all"`: the whole capitalised channel.
    All,
    /// Only these capitalised keys, sorted, each once ([`Fields::only`]).
    Only(Vec<String>),
}

impl Fields {
    /// Only these keys: sorted and each once, so that [`Fields::wants`] is a
    /// binary search (100,000 of them, looked through per key per channel,
    /// took seconds under the registry's lock).
    pub fn only(mut keys: Vec<String>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        Fields::Only(keys)
    }

    pub fn wants(&self, key: &str) -> bool {
        match self {
            Fields::Nothing => false,
            Fields::All => true,
            Fields::Only(keys) => keys.binary_search_by(|k| k.as_str().cmp(key)).is_ok(),
        }
    }
}

/// One value of the capitalised form.
enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Vars(&'a Vars),
    Recordings(&'a Recordings),
    Text(std::borrow::Cow<'a, str>),
}

impl Val<'_> {
    fn write(&self, o: &mut Obj<'_>, key: &'static str) {
        match *self {
            Val::Str(v) => o.str(key, v),
            Val::Bool(v) => o.bool(key, v),
            Val::Int(v) => o.int(key, v),
            Val::Uint(v) => o.uint(key, v),
            Val::Vars(v) => v.write(o.key(key)),
            Val::Recordings(r) => r.write(o.key(key)),
            Val::Text(ref v) => o.str(key, v),
        }
    }
}

/// Every key of the capitalised form (§4.2) with its value, `None` when unknown.
/// `Custom-Channel-Vars` is the stored object (5.0's behaviour; 4.3 rebuilt it).
fn api_entries(ch: &Channel, now_gregorian: u64) -> [(&'static str, Option<Val<'_>>); 43] {
    fn s(v: &Option<Text>) -> Option<Val<'_>> {
        v.as_deref().map(Val::Str)
    }
    fn r(v: &Option<Vars>) -> Option<Val<'_>> {
        v.as_ref().map(Val::Vars)
    }
    [
        ("Account-Billing", s(&ch.account_billing)),
        ("Account-ID", s(&ch.account_id)),
        ("Answered", Some(Val::Bool(ch.answered))),
        ("Authorizing-ID", s(&ch.authorizing_id)),
        ("Authorizing-Type", s(&ch.authorizing_type)),
        ("Bridge-ID", ch.bridge_id().map(Val::Str)),
        ("Call-Direction", s(&ch.direction)),
        ("Call-ID", Some(Val::Str(&ch.uuid))),
        ("Call-Interaction-ID", ch.interaction_id().map(Val::Str)),
        ("CallFlow-ID", s(&ch.callflow_id)),
        ("Callee-ID-Name", ch.callee_id_name().map(Val::Str)),
        ("Callee-ID-Number", ch.callee_id_number().map(Val::Str)),
        ("Caller-ID-Name", ch.caller_id_name().map(Val::Str)),
        ("Caller-ID-Number", ch.caller_id_number().map(Val::Str)),
        ("Channel-Authorized", Some(Val::Bool(ch.channel_authorized))),
        ("Context", Some(Val::Str(DEFAULT_CONTEXT))),
        ("Custom-Application-Vars", r(&ch.custom_application_vars)),
        ("Custom-Channel-Vars", r(&ch.custom_channel_vars)),
        ("Destination", ch.destination().map(Val::Str)),
        ("Dialplan", Some(Val::Str(DEFAULT_DIALPLAN))),
        (
            "Elapsed-Seconds",
            Some(Val::Uint(elapsed(ch, now_gregorian))),
        ),
        ("Fetch-ID", ch.fetch_id().map(Val::Str)),
        ("From", ch.from().map(Val::Str)),
        ("From-Tag", ch.from_tag().map(Val::Str)),
        ("Is-Loopback", Some(Val::Bool(ch.is_loopback))),
        ("Is-On-Hold", Some(Val::Bool(ch.is_onhold))),
        ("Loopback-Leg-Name", s(&ch.loopback_leg_name)),
        ("Loopback-Other-Leg", ch.loopback_other_leg().map(Val::Str)),
        ("Media-Node", s(&ch.node)),
        ("Other-Leg-Call-ID", s(&ch.other_leg)),
        ("Owner-ID", s(&ch.owner_id)),
        ("Precedence", Some(Val::Int(ch.precedence))),
        ("Presence-ID", ch.presence_id().map(Val::Str)),
        ("Profile", Some(Val::Str(DEFAULT_PROFILE))),
        ("Realm", s(&ch.realm)),
        ("Reseller-Billing", s(&ch.reseller_billing)),
        ("Reseller-ID", s(&ch.reseller_id)),
        ("Resource-ID", s(&ch.resource_id)),
        ("Switch-URL", s(&ch.switch_url)),
        ("Timestamp", Some(Val::Uint(ch.timestamp))),
        ("To", ch.to().map(Val::Str)),
        ("To-Tag", ch.to_tag().map(Val::Str)),
        ("Username", s(&ch.username)),
    ]
}

/// The keys Kazoo 5.x's `to_api_props/1` adds (WIRE-5.md §3), when known.
fn api_entries5(ch: &Channel) -> [(&'static str, Option<Val<'_>>); 4] {
    [
        ("Custom-SIP-Headers", ch.sip_headers().map(Val::Vars)),
        ("Custom-AUTH-Headers", ch.auth_headers().map(Val::Vars)),
        ("Request", ch.request().map(Val::Text)),
        ("Recording-Status", ch.recordings().map(Val::Recordings)),
    ]
}

/// The capitalised channel object (§4.2), restricted to `fields`, in the form
/// of `dialect`'s ecallmgr.
pub fn api(out: &mut Vec<u8>, ch: &Channel, fields: &Fields, now_gregorian: u64, dialect: Dialect) {
    let mut o = Obj::open(out);
    if *fields != Fields::Nothing {
        let five = (dialect == Dialect::Kazoo5).then(|| api_entries5(ch));
        for (key, value) in api_entries(ch, now_gregorian)
            .into_iter()
            .chain(five.into_iter().flatten())
        {
            if let Some(value) = value
                && fields.wants(key)
            {
                value.write(&mut o, key);
            }
        }
    }
    o.close();
}

/// `query_channels_resp`'s `Channels`: an object keyed by call id.
pub fn api_object(
    out: &mut Vec<u8>,
    channels: &[&Channel],
    fields: &Fields,
    now_gregorian: u64,
    dialect: Dialect,
) {
    let mut o = Obj::open(out);
    for ch in channels {
        api(o.data_key(&ch.uuid), ch, fields, now_gregorian, dialect);
    }
    o.close();
}

/// What ecallmgr says for a call it does not have.
pub const NO_NODE: &str = "no node found with channel";

/// The keys of `channel_status_resp` besides the envelope (§3.4; WIRE-5.md §2).
#[derive(Debug, Clone, Copy)]
pub enum Status<'a, C = &'a Channel> {
    Active(C),
    /// [5.x, `channel` category] [`Status::Active`]'s keys, `Custom-SIP-Headers`
    /// and `Custom-AUTH-Headers` always (`{}` when none, as ecallmgr 5.x), and
    /// `Answered`, one of `kapi_call:channel_status_extended_headers()`
    /// (Kamailio 5.x reads it beside `Other-Leg-Call-ID`).
    Active5(C),
    /// [5.x] `Channel-Record: true`: only `Call-ID`, `Status` and the whole
    /// capitalised channel, at this Gregorian time.
    Record(C, u64),
    /// Unknown call: its id.
    Terminated(&'a str),
}

impl<C> Status<'_, C> {
    pub fn is_active(&self) -> bool {
        !matches!(self, Status::Terminated(_))
    }
}

impl<C: std::borrow::Borrow<Channel>> Status<'_, C> {
    pub fn write(&self, o: &mut Obj<'_>) {
        match self {
            Status::Record(ch, now_gregorian) => {
                let ch = ch.borrow();
                o.str("Call-ID", &ch.uuid);
                o.str("Status", "active");
                api(
                    o.key("Channel-Record"),
                    ch,
                    &Fields::All,
                    *now_gregorian,
                    Dialect::Kazoo5,
                );
            }
            Status::Active5(ch) => {
                let ch = ch.borrow();
                Status::Active(ch).write(o);
                for (key, vars) in [
                    ("Custom-SIP-Headers", ch.sip_headers()),
                    ("Custom-AUTH-Headers", ch.auth_headers()),
                ] {
                    match vars {
                        Some(v) => v.write(o.key(key)),
                        None => o.key(key).extend_from_slice(b"{}"),
                    }
                }
                o.bool("Answered", ch.answered);
            }
            Status::Active(ch) => {
                let ch = ch.borrow();
                // ecallmgr takes the host from the node name (`freeswitch@HOST`).
                let host = ch
                    .switch_nodename()
                    .and_then(|n| n.split_once('@'))
                    .map(|(_, h)| h)
                    .or(text(&ch.switch_hostname));
                o.str("Call-ID", &ch.uuid);
                o.str("Status", "active");
                o.opt_str("Switch-Hostname", host);
                o.opt_str("Switch-Nodename", ch.switch_nodename());
                o.opt_str("Switch-URL", text(&ch.switch_url));
                o.opt_str("Other-Leg-Call-ID", text(&ch.other_leg));
                o.opt_str("Realm", text(&ch.realm));
                o.opt_str("Username", text(&ch.username));
                for (key, vars) in [
                    ("Custom-Channel-Vars", &ch.custom_channel_vars),
                    ("Custom-Application-Vars", &ch.custom_application_vars),
                ] {
                    if let Some(v) = vars {
                        v.write(o.key(key));
                    }
                }
            }
            Status::Terminated(call_id) => {
                o.str("Call-ID", call_id);
                o.str("Status", "terminated");
                o.str("Error-Msg", NO_NODE);
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ApiChannel {
    #[serde(rename = "Call-ID", default, deserialize_with = "lenient::string")]
    call_id: Option<String>,
    #[serde(
        rename = "Call-Direction",
        default,
        deserialize_with = "lenient::string"
    )]
    direction: Option<String>,
    #[serde(rename = "Destination", default, deserialize_with = "lenient::string")]
    destination: Option<String>,
    #[serde(rename = "Account-ID", default, deserialize_with = "lenient::string")]
    account_id: Option<String>,
    #[serde(
        rename = "Account-Billing",
        default,
        deserialize_with = "lenient::string"
    )]
    account_billing: Option<String>,
    #[serde(rename = "Reseller-ID", default, deserialize_with = "lenient::string")]
    reseller_id: Option<String>,
    #[serde(
        rename = "Reseller-Billing",
        default,
        deserialize_with = "lenient::string"
    )]
    reseller_billing: Option<String>,
    #[serde(
        rename = "Authorizing-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    authorizing_id: Option<String>,
    #[serde(
        rename = "Authorizing-Type",
        default,
        deserialize_with = "lenient::string"
    )]
    authorizing_type: Option<String>,
    #[serde(
        rename = "Channel-Authorized",
        default,
        deserialize_with = "lenient::bool"
    )]
    channel_authorized: Option<bool>,
    #[serde(rename = "Owner-ID", default, deserialize_with = "lenient::string")]
    owner_id: Option<String>,
    #[serde(rename = "Resource-ID", default, deserialize_with = "lenient::string")]
    resource_id: Option<String>,
    #[serde(rename = "Fetch-ID", default, deserialize_with = "lenient::string")]
    fetch_id: Option<String>,
    #[serde(rename = "Bridge-ID", default, deserialize_with = "lenient::string")]
    bridge_id: Option<String>,
    #[serde(rename = "CallFlow-ID", default, deserialize_with = "lenient::string")]
    callflow_id: Option<String>,
    #[serde(
        rename = "Call-Interaction-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    interaction_id: Option<String>,
    #[serde(rename = "Precedence", default, deserialize_with = "lenient::i64")]
    precedence: Option<i64>,
    #[serde(rename = "Presence-ID", default, deserialize_with = "lenient::string")]
    presence_id: Option<String>,
    #[serde(rename = "Realm", default, deserialize_with = "lenient::string")]
    realm: Option<String>,
    #[serde(rename = "Username", default, deserialize_with = "lenient::string")]
    username: Option<String>,
    #[serde(rename = "Answered", default, deserialize_with = "lenient::bool")]
    answered: Option<bool>,
    #[serde(
        rename = "Other-Leg-Call-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    other_leg: Option<String>,
    #[serde(rename = "Is-On-Hold", default, deserialize_with = "lenient::bool")]
    is_onhold: Option<bool>,
    #[serde(rename = "Is-Loopback", default, deserialize_with = "lenient::bool")]
    is_loopback: Option<bool>,
    #[serde(
        rename = "Loopback-Leg-Name",
        default,
        deserialize_with = "lenient::string"
    )]
    loopback_leg_name: Option<String>,
    #[serde(
        rename = "Loopback-Other-Leg",
        default,
        deserialize_with = "lenient::string"
    )]
    loopback_other_leg: Option<String>,
    #[serde(rename = "To-Tag", default, deserialize_with = "lenient::string")]
    to_tag: Option<String>,
    #[serde(rename = "From-Tag", default, deserialize_with = "lenient::string")]
    from_tag: Option<String>,
    #[serde(rename = "Media-Node", default, deserialize_with = "lenient::string")]
    media_node: Option<String>,
    #[serde(rename = "Switch-URL", default, deserialize_with = "lenient::string")]
    switch_url: Option<String>,
    #[serde(rename = "Timestamp", default, deserialize_with = "lenient::u64")]
    timestamp: Option<u64>,
    #[serde(
        rename = "Caller-ID-Name",
        default,
        deserialize_with = "lenient::string"
    )]
    caller_id_name: Option<String>,
    #[serde(
        rename = "Caller-ID-Number",
        default,
        deserialize_with = "lenient::string"
    )]
    caller_id_number: Option<String>,
    #[serde(
        rename = "Callee-ID-Name",
        default,
        deserialize_with = "lenient::string"
    )]
    callee_id_name: Option<String>,
    #[serde(
        rename = "Callee-ID-Number",
        default,
        deserialize_with = "lenient::string"
    )]
    callee_id_number: Option<String>,
    #[serde(rename = "From", default, deserialize_with = "lenient::string")]
    from: Option<String>,
    #[serde(rename = "To", default, deserialize_with = "lenient::string")]
    to: Option<String>,
    #[serde(rename = "Custom-Channel-Vars", default)]
    ccv: Option<Box<RawValue>>,
    #[serde(rename = "Custom-Application-Vars", default)]
    cav: Option<Box<RawValue>>,
    #[serde(rename = "Request", default, deserialize_with = "lenient::string")]
    request: Option<String>,
    #[serde(rename = "Custom-SIP-Headers", default)]
    csh: Option<Box<RawValue>>,
    #[serde(rename = "Custom-AUTH-Headers", default)]
    cah: Option<Box<RawValue>>,
}

fn t(s: Option<String>) -> Option<Text> {
    s.filter(|s| !s.is_empty()).map(Text::from)
}

/// A custom-variables object; the registry shares its values when it merges
/// the channel.
fn object(raw: Option<Box<RawValue>>) -> Option<Vars> {
    Interner::default().vars(&raw?, &[])
}

/// One entry of `Channels` (keyed by call id) read back as a registry channel.
pub fn read(call_id: &str, value: &Value) -> Option<Channel> {
    let a: ApiChannel = serde_json::from_value(value.clone()).ok()?;
    let uuid = Text::from(a.call_id.as_deref().unwrap_or(call_id));
    if uuid.is_empty() {
        return None;
    }
    let ch: Channel = ChannelRecord {
        bridge_id: t(a.bridge_id).or_else(|| Some(uuid.clone())),
        uuid,
        direction: t(a.direction),
        destination: t(a.destination),
        account_id: t(a.account_id),
        account_billing: t(a.account_billing),
        reseller_id: t(a.reseller_id),
        reseller_billing: t(a.reseller_billing),
        authorizing_id: t(a.authorizing_id),
        authorizing_type: t(a.authorizing_type),
        channel_authorized: a.channel_authorized.unwrap_or(false),
        owner_id: t(a.owner_id),
        resource_id: t(a.resource_id),
        fetch_id: t(a.fetch_id),
        callflow_id: t(a.callflow_id),
        interaction_id: t(a.interaction_id),
        precedence: a.precedence.unwrap_or(DEFAULT_PRECEDENCE),
        presence_id: t(a.presence_id),
        realm: t(a.realm),
        username: t(a.username),
        answered: a.answered.unwrap_or(false),
        other_leg: t(a.other_leg),
        is_onhold: a.is_onhold.unwrap_or(false),
        is_loopback: a.is_loopback.unwrap_or(false),
        loopback_leg_name: t(a.loopback_leg_name),
        loopback_other_leg: t(a.loopback_other_leg),
        to_tag: t(a.to_tag),
        from_tag: t(a.from_tag),
        switch_hostname: a
            .media_node
            .as_deref()
            .and_then(|n| n.split_once('@'))
            .map(|(_, h)| Text::from(h)),
        node: t(a.media_node),
        switch_url: t(a.switch_url),
        timestamp: a
            .timestamp
            .unwrap_or_else(crate::kapi::time::gregorian_now_secs),
        caller_id_name: t(a.caller_id_name),
        caller_id_number: t(a.caller_id_number),
        callee_id_name: t(a.callee_id_name),
        callee_id_number: t(a.callee_id_number),
        from: t(a.from),
        to: t(a.to),
        custom_channel_vars: object(a.ccv),
        custom_application_vars: object(a.cav),
        seq: Seqs::default(),
        request: t(a.request),
        sip_headers: object(a.csh),
        auth_headers: object(a.cah),
        recordings: Default::default(),
        from_ccv: 0,
    }
    .into();
    Some(ch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::json::Obj;
    use crate::test_support::{answered_channel as channel, written};
    use serde_json::json;

    #[test]
    fn capitalised_channel_follows_fields() {
        let ch = channel();
        let now = ch.timestamp + 7;
        let all = written(|o| api(o, &ch, &Fields::All, now, Dialect::Kazoo4));
        assert_eq!(all["Call-ID"], "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91");
        assert_eq!(all["Media-Node"], "freeswitch@fs1.example.com");
        assert_eq!(all["Elapsed-Seconds"], 7);
        assert_eq!(all["Dialplan"], "XML");
        assert!(all.get("Other-Leg-Call-ID").is_none());
        let only = Fields::only(vec![
            "Account-ID".into(),
            "Other-Leg-Call-ID".into(),
            "Nope".into(),
        ]);
        let some = written(|o| api(o, &ch, &only, now, Dialect::Kazoo4));
        assert_eq!(
            some,
            json!({"Account-ID": "3a1b2c3d4e5f60718293a4b5c6d7e8f9"})
        );
        let none = written(|o| api_object(o, &[&ch], &Fields::Nothing, now, Dialect::Kazoo4));
        assert_eq!(none, json!({"a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91": {}}));
    }

    #[test]
    fn status_views() {
        let ch = channel();
        let status = |s: Status<'_>| {
            written(|out| {
                let mut o = Obj::open(out);
                s.write(&mut o);
                o.close();
            })
        };
        let v = status(Status::Active(&ch));
        assert_eq!(v["Status"], "active");
        assert_eq!(v["Switch-Hostname"], "fs1.example.com");
        assert_eq!(v["Switch-Nodename"], "freeswitch@fs1.example.com");
        assert_eq!(v["Username"], "user_zu0bf7");
        assert!(v.get("Error-Msg").is_none());
        let v = status(Status::Terminated("x@y"));
        assert_eq!(
            v,
            json!({"Call-ID": "x@y", "Status": "terminated", "Error-Msg": NO_NODE})
        );
    }
}
