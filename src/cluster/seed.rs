//! Seeding from ecallmgr: the capitalised channel objects of a
//! `query_channels_resp` with `Fields: "all"` (WIRE.md §4.2) back into channels.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::kapi::envelope::APP_NAME;
use crate::kapi::lenient;
use crate::registry::Channel;
use crate::registry::channel::{ChannelRecord, DEFAULT_PRECEDENCE, Seqs, Text};
use crate::registry::intern::{Interner, Vars};

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
}

fn t(s: Option<String>) -> Option<Text> {
    s.filter(|s| !s.is_empty()).map(Text::from)
}

/// A custom-variables object; the registry shares its values when it merges
/// the channel.
fn object(raw: Option<Box<RawValue>>) -> Option<Vars> {
    Interner::default().vars(&raw?, &[])
}

/// One entry of `Channels` (keyed by call id) as a registry channel.
pub fn channel(call_id: &str, value: &Value) -> Option<Channel> {
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
    }
    .into();
    Some(ch)
}

/// The channels of every ecallmgr reply, ignoring replies from our own kind
/// (another kazoo-channels answering the same query).
pub fn channels(replies: &[Value]) -> Vec<Channel> {
    replies
        .iter()
        .filter(|r| r["App-Name"] != APP_NAME && r["Event-Name"] == "query_channels_resp")
        .filter_map(|r| r["Channels"].as_object())
        .flat_map(|m| m.iter().filter_map(|(id, v)| channel(id, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn ecallmgr_fields_all_reply_becomes_a_channel() {
        let reply = fixture("query_channels_resp.fields-all.from-ecallmgr-4.3.json");
        let chans = channels(std::slice::from_ref(&reply));
        assert_eq!(chans.len(), 1);
        let c = &chans[0];
        assert_eq!(&*c.uuid, "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91");
        assert_eq!(
            c.account_id.as_deref(),
            Some("3a1b2c3d4e5f60718293a4b5c6d7e8f9")
        );
        assert!(c.answered && c.channel_authorized);
        assert_eq!(
            c.other_leg.as_deref(),
            Some("5e0c1c3a-2b7d-4a4f-9a51-0f2e7b7e6c11")
        );
        assert_eq!(c.node.as_deref(), Some("freeswitch@fs1.example.com"));
        assert_eq!(c.switch_hostname.as_deref(), Some("fs1.example.com"));
        assert_eq!(c.timestamp, 63_869_600_000);
        assert_eq!(c.username.as_deref(), Some("user_zu0bf7"));
        assert!(c.custom_channel_vars.is_some());

        let mut ours = reply;
        ours["App-Name"] = Value::String(APP_NAME.into());
        assert!(channels(&[ours]).is_empty(), "our own replies are ignored");
    }
}
