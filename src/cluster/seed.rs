//! Seeding from ecallmgr: the capitalised channel objects of a
//! `query_channels_resp` with `Fields: "all"` (WIRE.md §4.2) back into
//! channels, read by the form's own reader ([`crate::forms::api::read`]).

use serde_json::Value;

use crate::forms::api;
use crate::kapi::envelope::APP_NAME;
use crate::registry::Channel;

/// The channels of every ecallmgr reply, ignoring replies from our own kind
/// (another kazoo-channels answering the same query).
pub fn channels(replies: &[Value]) -> Vec<Channel> {
    replies
        .iter()
        .filter(|r| r["App-Name"] != APP_NAME && r["Event-Name"] == "query_channels_resp")
        .filter_map(|r| r["Channels"].as_object())
        .flat_map(|m| m.iter().filter_map(|(id, v)| api::read(id, v)))
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
