//! Channels as ecallmgr writes them: the lower-case object of the list replies
//! (WIRE.md §4.1), the capitalised object of `query_channels_resp` (§4.2) and the
//! keys of `channel_status_resp` (§3.4). Each view borrows the registry's
//! [`Channel`] and serializes straight to bytes, with no JSON tree in between:
//! an account query can list thousands of channels.
//!
//! Unknown values are omitted, never `null`. The custom variables are echoed as
//! the raw JSON objects the events carried.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;

use super::request::Fields;
use crate::registry::Channel;
use crate::registry::channel::{DEFAULT_CONTEXT, DEFAULT_DIALPLAN, DEFAULT_PROFILE, RawJson, Text};

fn text(v: &Option<Text>) -> Option<&str> {
    v.as_deref()
}

fn raw(v: &Option<RawJson>) -> Option<&RawValue> {
    v.as_ref().map(|r| &*r.0)
}

/// Seconds since the channel was inserted, at answer time.
fn elapsed(ch: &Channel, now_gregorian: u64) -> u64 {
    now_gregorian.saturating_sub(ch.timestamp)
}

/// The lower-case channel object of account, user and auth-id replies (§4.1),
/// keys in the order of that table.
#[derive(Debug, Serialize)]
pub struct LowerChannel<'a> {
    uuid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_billing: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reseller_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reseller_billing: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizing_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizing_type: Option<&'a str>,
    channel_authorized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetch_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridge_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callflow_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interaction_id: Option<&'a str>,
    precedence: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    answered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    other_leg: Option<&'a str>,
    is_onhold: bool,
    is_loopback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    loopback_leg_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loopback_other_leg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    switch_nodename: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    switch_url: Option<&'a str>,
    profile: &'static str,
    context: &'static str,
    dialplan: &'static str,
    /// Whether the answering node controls the call: never true for us.
    handling_locally: bool,
    timestamp: u64,
    elapsed_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_application_vars: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_channel_vars: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_id_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller_id_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callee_id_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callee_id_number: Option<&'a str>,
}

impl<'a> LowerChannel<'a> {
    pub fn new(ch: &'a Channel, now_gregorian: u64) -> Self {
        Self {
            uuid: &ch.uuid,
            direction: text(&ch.direction),
            destination: text(&ch.destination),
            account_id: text(&ch.account_id),
            account_billing: text(&ch.account_billing),
            reseller_id: text(&ch.reseller_id),
            reseller_billing: text(&ch.reseller_billing),
            authorizing_id: text(&ch.authorizing_id),
            authorizing_type: text(&ch.authorizing_type),
            channel_authorized: ch.channel_authorized,
            owner_id: text(&ch.owner_id),
            resource_id: text(&ch.resource_id),
            fetch_id: text(&ch.fetch_id),
            bridge_id: text(&ch.bridge_id),
            callflow_id: text(&ch.callflow_id),
            interaction_id: text(&ch.interaction_id),
            precedence: ch.precedence,
            presence_id: text(&ch.presence_id),
            realm: text(&ch.realm),
            username: text(&ch.username),
            answered: ch.answered,
            other_leg: text(&ch.other_leg),
            is_onhold: ch.is_onhold,
            is_loopback: ch.is_loopback,
            loopback_leg_name: text(&ch.loopback_leg_name),
            loopback_other_leg: text(&ch.loopback_other_leg),
            to_tag: text(&ch.to_tag),
            from_tag: text(&ch.from_tag),
            node: ch.switch_nodename(),
            switch_nodename: ch.switch_nodename(),
            switch_url: text(&ch.switch_url),
            profile: DEFAULT_PROFILE,
            context: DEFAULT_CONTEXT,
            dialplan: DEFAULT_DIALPLAN,
            handling_locally: false,
            timestamp: ch.timestamp,
            elapsed_s: elapsed(ch, now_gregorian),
            custom_application_vars: raw(&ch.custom_application_vars),
            custom_channel_vars: raw(&ch.custom_channel_vars),
            caller_id_name: text(&ch.caller_id_name),
            caller_id_number: text(&ch.caller_id_number),
            callee_id_name: text(&ch.callee_id_name),
            callee_id_number: text(&ch.callee_id_number),
        }
    }
}

/// A JSON array of [`LowerChannel`]s.
pub struct LowerList<'a> {
    pub channels: &'a [&'a Channel],
    pub now_gregorian: u64,
}

impl Serialize for LowerList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.channels
                .iter()
                .map(|c| LowerChannel::new(c, self.now_gregorian)),
        )
    }
}

/// One value of the capitalised form.
enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Raw(&'a RawValue),
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Str(v) => s.serialize_str(v),
            Val::Bool(v) => s.serialize_bool(*v),
            Val::Int(v) => s.serialize_i64(*v),
            Val::Uint(v) => s.serialize_u64(*v),
            Val::Raw(v) => v.serialize(s),
        }
    }
}

/// Every key of the capitalised form (§4.2) with its value, `None` when unknown.
/// `Custom-Channel-Vars` is the stored object (5.0's behaviour; 4.3 rebuilt it).
fn api_entries(ch: &Channel, now_gregorian: u64) -> [(&'static str, Option<Val<'_>>); 43] {
    fn s(v: &Option<Text>) -> Option<Val<'_>> {
        v.as_deref().map(Val::Str)
    }
    fn r(v: &Option<RawJson>) -> Option<Val<'_>> {
        raw(v).map(Val::Raw)
    }
    [
        ("Account-Billing", s(&ch.account_billing)),
        ("Account-ID", s(&ch.account_id)),
        ("Answered", Some(Val::Bool(ch.answered))),
        ("Authorizing-ID", s(&ch.authorizing_id)),
        ("Authorizing-Type", s(&ch.authorizing_type)),
        ("Bridge-ID", s(&ch.bridge_id)),
        ("Call-Direction", s(&ch.direction)),
        ("Call-ID", Some(Val::Str(&ch.uuid))),
        ("Call-Interaction-ID", s(&ch.interaction_id)),
        ("CallFlow-ID", s(&ch.callflow_id)),
        ("Callee-ID-Name", s(&ch.callee_id_name)),
        ("Callee-ID-Number", s(&ch.callee_id_number)),
        ("Caller-ID-Name", s(&ch.caller_id_name)),
        ("Caller-ID-Number", s(&ch.caller_id_number)),
        ("Channel-Authorized", Some(Val::Bool(ch.channel_authorized))),
        ("Context", Some(Val::Str(DEFAULT_CONTEXT))),
        ("Custom-Application-Vars", r(&ch.custom_application_vars)),
        ("Custom-Channel-Vars", r(&ch.custom_channel_vars)),
        ("Destination", s(&ch.destination)),
        ("Dialplan", Some(Val::Str(DEFAULT_DIALPLAN))),
        (
            "Elapsed-Seconds",
            Some(Val::Uint(elapsed(ch, now_gregorian))),
        ),
        ("Fetch-ID", s(&ch.fetch_id)),
        ("From", s(&ch.from)),
        ("From-Tag", s(&ch.from_tag)),
        ("Is-Loopback", Some(Val::Bool(ch.is_loopback))),
        ("Is-On-Hold", Some(Val::Bool(ch.is_onhold))),
        ("Loopback-Leg-Name", s(&ch.loopback_leg_name)),
        ("Loopback-Other-Leg", s(&ch.loopback_other_leg)),
        ("Media-Node", s(&ch.node)),
        ("Other-Leg-Call-ID", s(&ch.other_leg)),
        ("Owner-ID", s(&ch.owner_id)),
        ("Precedence", Some(Val::Int(ch.precedence))),
        ("Presence-ID", s(&ch.presence_id)),
        ("Profile", Some(Val::Str(DEFAULT_PROFILE))),
        ("Realm", s(&ch.realm)),
        ("Reseller-Billing", s(&ch.reseller_billing)),
        ("Reseller-ID", s(&ch.reseller_id)),
        ("Resource-ID", s(&ch.resource_id)),
        ("Switch-URL", s(&ch.switch_url)),
        ("Timestamp", Some(Val::Uint(ch.timestamp))),
        ("To", s(&ch.to)),
        ("To-Tag", s(&ch.to_tag)),
        ("Username", s(&ch.username)),
    ]
}

/// The capitalised channel object (§4.2), restricted to `fields`.
pub struct ApiChannel<'a> {
    pub channel: &'a Channel,
    pub fields: &'a Fields,
    pub now_gregorian: u64,
}

impl Serialize for ApiChannel<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if *self.fields != Fields::Nothing {
            for (key, value) in api_entries(self.channel, self.now_gregorian) {
                if let Some(value) = value
                    && self.fields.wants(key)
                {
                    map.serialize_entry(key, &value)?;
                }
            }
        }
        map.end()
    }
}

/// `query_channels_resp`'s `Channels`: an object keyed by call id.
pub struct ApiChannels<'a> {
    pub channels: &'a [&'a Channel],
    pub fields: &'a Fields,
    pub now_gregorian: u64,
}

impl Serialize for ApiChannels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.channels.iter().map(|c| {
            let view = ApiChannel {
                channel: c,
                fields: self.fields,
                now_gregorian: self.now_gregorian,
            };
            (&*c.uuid, view)
        }))
    }
}

/// The keys of `channel_status_resp` besides the envelope (§3.4).
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    #[serde(rename = "Call-ID")]
    call_id: &'a str,
    #[serde(rename = "Status")]
    status: &'static str,
    #[serde(rename = "Error-Msg", skip_serializing_if = "Option::is_none")]
    error_msg: Option<&'static str>,
    #[serde(rename = "Switch-Hostname", skip_serializing_if = "Option::is_none")]
    switch_hostname: Option<&'a str>,
    #[serde(rename = "Switch-Nodename", skip_serializing_if = "Option::is_none")]
    switch_nodename: Option<&'a str>,
    #[serde(rename = "Switch-URL", skip_serializing_if = "Option::is_none")]
    switch_url: Option<&'a str>,
    #[serde(rename = "Other-Leg-Call-ID", skip_serializing_if = "Option::is_none")]
    other_leg: Option<&'a str>,
    #[serde(rename = "Realm", skip_serializing_if = "Option::is_none")]
    realm: Option<&'a str>,
    #[serde(rename = "Username", skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(
        rename = "Custom-Channel-Vars",
        skip_serializing_if = "Option::is_none"
    )]
    custom_channel_vars: Option<&'a RawValue>,
    #[serde(
        rename = "Custom-Application-Vars",
        skip_serializing_if = "Option::is_none"
    )]
    custom_application_vars: Option<&'a RawValue>,
}

/// What ecallmgr says for a call it does not have.
pub const NO_NODE: &str = "no node found with channel";

impl<'a> Status<'a> {
    pub fn active(ch: &'a Channel) -> Self {
        // ecallmgr takes the host from the node name (`freeswitch@HOST`).
        let host = ch
            .switch_nodename()
            .and_then(|n| n.split_once('@'))
            .map(|(_, h)| h)
            .or(text(&ch.switch_hostname));
        Self {
            call_id: &ch.uuid,
            status: "active",
            error_msg: None,
            switch_hostname: host,
            switch_nodename: ch.switch_nodename(),
            switch_url: text(&ch.switch_url),
            other_leg: text(&ch.other_leg),
            realm: text(&ch.realm),
            username: text(&ch.username),
            custom_channel_vars: raw(&ch.custom_channel_vars),
            custom_application_vars: raw(&ch.custom_application_vars),
        }
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    pub fn terminated(call_id: &'a str) -> Self {
        Self {
            call_id,
            status: "terminated",
            error_msg: Some(NO_NODE),
            switch_hostname: None,
            switch_nodename: None,
            switch_url: None,
            other_leg: None,
            realm: None,
            username: None,
            custom_channel_vars: None,
            custom_application_vars: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kapi::CallEvent;
    use serde_json::{Value, json};

    fn channel() -> Channel {
        let path = format!(
            "{}/tests/fixtures/kazoo43.callevt.CHANNEL_ANSWER.a-leg.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let ev = CallEvent::decode(&std::fs::read(path).unwrap()).unwrap();
        let mut ch = Channel::from_event(&ev, 0);
        ch.answered = true;
        ch
    }

    fn to_value(v: &impl Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn lower_case_channel_has_section_4_1_keys_and_values() {
        let ch = channel();
        let v = to_value(&LowerChannel::new(&ch, ch.timestamp + 42));
        assert_eq!(v["uuid"], "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91");
        assert_eq!(v["answered"], true);
        assert_eq!(v["timestamp"], 63_869_600_003u64);
        assert_eq!(v["elapsed_s"], 42);
        assert_eq!(v["precedence"], 5);
        assert_eq!(v["channel_authorized"], true);
        assert_eq!(v["node"], "freeswitch@fs1.example.com");
        assert_eq!(v["switch_nodename"], v["node"]);
        assert_eq!(v["destination"], "2600");
        assert_eq!(v["profile"], "sipinterface_1");
        assert_eq!(v["handling_locally"], false);
        assert_eq!(v["custom_application_vars"], json!({}));
        assert_eq!(
            v["custom_channel_vars"]["Fetch-ID"],
            "2b8f1d2e-9a7c-4e1b-8f3a-5d6c7b8a9e0f"
        );
        assert!(v.get("other_leg").is_none(), "unknown values are omitted");
        assert!(v.as_object().unwrap().values().all(|x| !x.is_null()));
        crate::kapi::schema::schemas()
            .validate(
                "kapi.call.query_account_channels_resp",
                &json!({"App-Name": "a", "App-Version": "1", "Event-Category": "call_event",
                        "Event-Name": "query_account_channels_resp", "Msg-ID": "m", "Channels": [v]}),
                "",
            )
            .unwrap();
    }

    #[test]
    fn capitalised_channel_follows_fields() {
        let ch = channel();
        let now = ch.timestamp + 7;
        let all = to_value(&ApiChannel {
            channel: &ch,
            fields: &Fields::All,
            now_gregorian: now,
        });
        assert_eq!(all["Call-ID"], "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91");
        assert_eq!(all["Media-Node"], "freeswitch@fs1.example.com");
        assert_eq!(all["Elapsed-Seconds"], 7);
        assert_eq!(all["Dialplan"], "XML");
        assert!(all.get("Other-Leg-Call-ID").is_none());
        let some = to_value(&ApiChannel {
            channel: &ch,
            fields: &Fields::Only(vec![
                "Account-ID".into(),
                "Other-Leg-Call-ID".into(),
                "Nope".into(),
            ]),
            now_gregorian: now,
        });
        assert_eq!(
            some,
            json!({"Account-ID": "3a1b2c3d4e5f60718293a4b5c6d7e8f9"})
        );
        let none = to_value(&ApiChannel {
            channel: &ch,
            fields: &Fields::Nothing,
            now_gregorian: now,
        });
        assert_eq!(none, json!({}));
    }

    #[test]
    fn status_views() {
        let ch = channel();
        let v = to_value(&Status::active(&ch));
        assert_eq!(v["Status"], "active");
        assert_eq!(v["Switch-Hostname"], "fs1.example.com");
        assert_eq!(v["Switch-Nodename"], "freeswitch@fs1.example.com");
        assert_eq!(v["Username"], "user_zu0bf7");
        assert!(v.get("Error-Msg").is_none());
        let v = to_value(&Status::terminated("x@y"));
        assert_eq!(
            v,
            json!({"Call-ID": "x@y", "Status": "terminated", "Error-Msg": NO_NODE})
        );
    }
}
