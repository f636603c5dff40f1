//! Channels as ecallmgr writes them: the lower-case object of the list replies
//! (WIRE.md §4.1), the capitalised object of `query_channels_resp` (§4.2) and the
//! keys of `channel_status_resp` (§3.4). Each is written straight from the
//! registry's [`Channel`] into the reply buffer, with no JSON tree in between
//! (see [`super::json`] for why not through serde): an account query can list
//! thousands of channels.
//!
//! Unknown values are omitted, never `null`. The custom variables are echoed as
//! the JSON objects the events carried.

use super::json::{self, Obj};
use super::request::Fields;
use crate::registry::Channel;
use crate::registry::channel::{DEFAULT_CONTEXT, DEFAULT_DIALPLAN, DEFAULT_PROFILE, Text};
use crate::registry::intern::Vars;

fn text(v: &Option<Text>) -> Option<&str> {
    v.as_deref()
}

/// Seconds since the channel was inserted, at answer time.
fn elapsed(ch: &Channel, now_gregorian: u64) -> u64 {
    now_gregorian.saturating_sub(ch.timestamp)
}

/// Writes the members of a channel object after its first, one line per key.
/// Each key is ours, so `,"key":` is one constant copy: an account reply is
/// ten thousand channels of forty-odd members, and per-member work adds up.
macro_rules! members {
    ($out:ident; $($kind:ident $key:literal => $value:expr;)*) => {
        $(members!(@ $kind $out, concat!(",\"", $key, "\":"), $value);)*
    };
    (@ str $out:ident, $head:expr, $v:expr) => {
        if let Some(v) = $v {
            $out.extend_from_slice($head.as_bytes());
            json::string($out, v);
        }
    };
    (@ bool $out:ident, $head:expr, $v:expr) => {
        $out.extend_from_slice($head.as_bytes());
        $out.extend_from_slice(if $v { b"true" } else { b"false" });
    };
    (@ int $out:ident, $head:expr, $v:expr) => {
        $out.extend_from_slice($head.as_bytes());
        json::int($out, $v);
    };
    (@ vars $out:ident, $head:expr, $v:expr) => {
        if let Some(v) = $v {
            $out.extend_from_slice($head.as_bytes());
            v.write($out);
        }
    };
}

/// The lower-case channel object of account, user and auth-id replies (§4.1),
/// keys in the order of that table.
pub fn lower(out: &mut Vec<u8>, ch: &Channel, now_gregorian: u64) {
    out.extend_from_slice(b"{\"uuid\":");
    json::string(out, &ch.uuid);
    members! { out;
        str "direction" => text(&ch.direction);
        str "destination" => ch.destination();
        str "account_id" => text(&ch.account_id);
        str "account_billing" => text(&ch.account_billing);
        str "reseller_id" => text(&ch.reseller_id);
        str "reseller_billing" => text(&ch.reseller_billing);
        str "authorizing_id" => text(&ch.authorizing_id);
        str "authorizing_type" => text(&ch.authorizing_type);
        bool "channel_authorized" => ch.channel_authorized;
        str "owner_id" => text(&ch.owner_id);
        str "resource_id" => text(&ch.resource_id);
        str "fetch_id" => ch.fetch_id();
        str "bridge_id" => ch.bridge_id();
        str "callflow_id" => text(&ch.callflow_id);
        str "interaction_id" => ch.interaction_id();
        int "precedence" => ch.precedence;
        str "presence_id" => ch.presence_id();
        str "realm" => text(&ch.realm);
        str "username" => text(&ch.username);
        bool "answered" => ch.answered;
        str "other_leg" => text(&ch.other_leg);
        bool "is_onhold" => ch.is_onhold;
        bool "is_loopback" => ch.is_loopback;
        str "loopback_leg_name" => text(&ch.loopback_leg_name);
        str "loopback_other_leg" => ch.loopback_other_leg();
        str "to_tag" => ch.to_tag();
        str "from_tag" => ch.from_tag();
        str "node" => ch.switch_nodename();
        str "switch_nodename" => ch.switch_nodename();
        str "switch_url" => text(&ch.switch_url);
    }
    // Constants, and `handling_locally`: whether the answering node controls
    // the call, never true for us.
    out.extend_from_slice(
        concat!(
            ",\"profile\":\"",
            "sipinterface_1",
            "\",\"context\":\"",
            "context_2",
            "\",\"dialplan\":\"",
            "XML",
            "\",\"handling_locally\":false"
        )
        .as_bytes(),
    );
    debug_assert_eq!(
        (DEFAULT_PROFILE, DEFAULT_CONTEXT, DEFAULT_DIALPLAN),
        ("sipinterface_1", "context_2", "XML")
    );
    members! { out;
        int "timestamp" => ch.timestamp;
        int "elapsed_s" => elapsed(ch, now_gregorian);
        vars "custom_application_vars" => &ch.custom_application_vars;
        vars "custom_channel_vars" => &ch.custom_channel_vars;
        str "caller_id_name" => ch.caller_id_name();
        str "caller_id_number" => ch.caller_id_number();
        str "callee_id_name" => ch.callee_id_name();
        str "callee_id_number" => ch.callee_id_number();
    }
    out.push(b'}');
}

/// A JSON array of [`lower`] objects.
pub fn lower_list(out: &mut Vec<u8>, channels: &[&Channel], now_gregorian: u64) {
    out.push(b'[');
    for (i, ch) in channels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let at = out.len();
        lower(out, ch, now_gregorian);
        if i == 0 {
            // One allocation for the whole reply, sized from the first channel:
            // grown by doubling, each step is a large allocation that makes
            // malloc consolidate a heap of a million channels' small chunks.
            out.reserve((out.len() - at + 1) * (channels.len() - 1) * 9 / 8);
        }
    }
    out.push(b']');
}

/// One value of the capitalised form.
enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Vars(&'a Vars),
}

impl Val<'_> {
    fn write(&self, o: &mut Obj<'_>, key: &'static str) {
        match *self {
            Val::Str(v) => o.str(key, v),
            Val::Bool(v) => o.bool(key, v),
            Val::Int(v) => o.int(key, v),
            Val::Uint(v) => o.uint(key, v),
            Val::Vars(v) => v.write(o.key(key)),
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

/// The capitalised channel object (§4.2), restricted to `fields`.
pub fn api(out: &mut Vec<u8>, ch: &Channel, fields: &Fields, now_gregorian: u64) {
    let mut o = Obj::open(out);
    if *fields != Fields::Nothing {
        for (key, value) in api_entries(ch, now_gregorian) {
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
pub fn api_object(out: &mut Vec<u8>, channels: &[&Channel], fields: &Fields, now_gregorian: u64) {
    let mut o = Obj::open(out);
    for ch in channels {
        api(o.data_key(&ch.uuid), ch, fields, now_gregorian);
    }
    o.close();
}

/// What ecallmgr says for a call it does not have.
pub const NO_NODE: &str = "no node found with channel";

/// The keys of `channel_status_resp` besides the envelope (§3.4).
#[derive(Debug, Clone, Copy)]
pub enum Status<'a> {
    Active(&'a Channel),
    /// Unknown call: its id.
    Terminated(&'a str),
}

impl Status<'_> {
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Active(_))
    }

    pub fn write(&self, o: &mut Obj<'_>) {
        match *self {
            Status::Active(ch) => {
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
        let ev = CallEvent::decode(&std::fs::read(path).unwrap())
            .unwrap()
            .into_owned();
        let mut ch = Channel::from_event(&ev, 0);
        ch.answered = true;
        ch
    }

    /// What a writer wrote, parsed back.
    fn written(write: impl FnOnce(&mut Vec<u8>)) -> Value {
        let mut out = Vec::new();
        write(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn lower_case_channel_has_section_4_1_keys_and_values() {
        let ch = channel();
        let v = written(|o| lower(o, &ch, ch.timestamp + 42));
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
        let all = written(|o| api(o, &ch, &Fields::All, now));
        assert_eq!(all["Call-ID"], "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91");
        assert_eq!(all["Media-Node"], "freeswitch@fs1.example.com");
        assert_eq!(all["Elapsed-Seconds"], 7);
        assert_eq!(all["Dialplan"], "XML");
        assert!(all.get("Other-Leg-Call-ID").is_none());
        let only = Fields::Only(vec![
            "Account-ID".into(),
            "Other-Leg-Call-ID".into(),
            "Nope".into(),
        ]);
        let some = written(|o| api(o, &ch, &only, now));
        assert_eq!(
            some,
            json!({"Account-ID": "3a1b2c3d4e5f60718293a4b5c6d7e8f9"})
        );
        let none = written(|o| api_object(o, &[&ch], &Fields::Nothing, now));
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
