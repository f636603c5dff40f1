//! The lower-case channel object of the account, user and auth-id replies
//! (WIRE.md §4.1), written straight from the registry's [`Channel`] into the
//! reply buffer, keys in the order of that table. Unknown values are omitted,
//! never `null`; the custom variables are echoed as the events carried them.

use super::json;
use super::{elapsed, text};
use crate::kapi::Dialect;
use crate::registry::Channel;
use crate::registry::channel::{DEFAULT_CONTEXT, DEFAULT_DIALPLAN, DEFAULT_PROFILE};

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
/// keys in the order of that table; in Kazoo 5.x's form (`dialect`) also the
/// keys 5.x's `to_props/1` adds, when known (WIRE-5.md §3).
pub fn lower(out: &mut Vec<u8>, ch: &Channel, now_gregorian: u64, dialect: Dialect) {
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
    if dialect == Dialect::Kazoo5 {
        members! { out;
            vars "custom_sip_headers" => ch.sip_headers();
            vars "custom_auth_headers" => ch.auth_headers();
            str "request" => ch.request().as_deref();
            vars "recording_status" => ch.recordings();
        }
    }
    out.push(b'}');
}

/// A JSON array of [`lower`] objects.
pub fn lower_list(out: &mut Vec<u8>, channels: &[&Channel], now_gregorian: u64, dialect: Dialect) {
    out.push(b'[');
    for (i, ch) in channels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let at = out.len();
        lower(out, ch, now_gregorian, dialect);
        if i == 0 {
            // One allocation for the whole reply, sized from the first channel:
            // grown by doubling, each step is a large allocation that makes
            // malloc consolidate a heap of a million channels' small chunks.
            out.reserve((out.len() - at + 1) * (channels.len() - 1) * 9 / 8);
        }
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{answered_channel as channel, written};
    use serde_json::json;

    #[test]
    fn lower_case_channel_has_section_4_1_keys_and_values() {
        let ch = channel();
        let v = written(|o| lower(o, &ch, ch.timestamp + 42, Dialect::Kazoo4));
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
}
