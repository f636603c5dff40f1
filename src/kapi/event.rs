//! Call events from the `callevt` exchange, decoded leniently from both the
//! Kazoo 4.3 and 5.0 shapes (WIRE.md §5).

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::lenient;

/// The lifecycle events the registry acts on; anything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Create,
    Answer,
    Bridge,
    Unbridge,
    Hold,
    Unhold,
    Destroy,
    Disconnected,
    Connected,
    Other(String),
}

impl Default for EventKind {
    fn default() -> Self {
        Self::Other(String::new())
    }
}

impl EventKind {
    pub fn parse(name: &str) -> Self {
        match name {
            "CHANNEL_CREATE" => Self::Create,
            "CHANNEL_ANSWER" => Self::Answer,
            "CHANNEL_BRIDGE" => Self::Bridge,
            "CHANNEL_UNBRIDGE" => Self::Unbridge,
            "CHANNEL_HOLD" => Self::Hold,
            "CHANNEL_UNHOLD" => Self::Unhold,
            "CHANNEL_DESTROY" => Self::Destroy,
            "CHANNEL_DISCONNECTED" => Self::Disconnected,
            "CHANNEL_CONNECTED" => Self::Connected,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The names the event queue binds (`call.<NAME>.*`).
    pub const LIFECYCLE: [&'static str; 9] = [
        "CHANNEL_CREATE",
        "CHANNEL_ANSWER",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_HOLD",
        "CHANNEL_UNHOLD",
        "CHANNEL_DESTROY",
        "CHANNEL_DISCONNECTED",
        "CHANNEL_CONNECTED",
    ];
}

#[derive(Debug, Error)]
pub enum EventError {
    #[error("body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("Event-Category is {0:?}, not call_event")]
    WrongCategory(Option<String>),
    #[error("no Event-Name")]
    MissingEventName,
    #[error("no Call-ID")]
    MissingCallId,
}

/// The keys of a call event the registry uses; the rest of the body is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallEvent {
    #[serde(skip)]
    pub kind: EventKind,
    #[serde(
        rename = "Event-Category",
        default,
        deserialize_with = "lenient::string"
    )]
    pub category: Option<String>,
    #[serde(rename = "Event-Name", default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(rename = "Msg-ID", default, deserialize_with = "lenient::string")]
    pub msg_id: Option<String>,
    #[serde(rename = "Call-ID", default, deserialize_with = "lenient::string")]
    pub call_id: Option<String>,
    #[serde(rename = "Timestamp", default, deserialize_with = "lenient::u64")]
    pub timestamp: Option<u64>,
    #[serde(
        rename = "Call-Direction",
        default,
        deserialize_with = "lenient::string"
    )]
    pub direction: Option<String>,
    #[serde(
        rename = "Caller-Destination-Number",
        default,
        deserialize_with = "lenient::string"
    )]
    pub destination_number: Option<String>,
    #[serde(rename = "Request", default, deserialize_with = "lenient::string")]
    pub request: Option<String>,
    #[serde(rename = "Presence-ID", default, deserialize_with = "lenient::string")]
    pub presence_id: Option<String>,
    #[serde(
        rename = "Other-Leg-Call-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    pub other_leg: Option<String>,
    #[serde(
        rename = "Bridge-B-Unique-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    pub bridge_b_unique_id: Option<String>,
    #[serde(
        rename = "Channel-Answer-State",
        default,
        deserialize_with = "lenient::string"
    )]
    pub answer_state: Option<String>,
    #[serde(
        rename = "Channel-Call-State",
        default,
        deserialize_with = "lenient::string"
    )]
    pub call_state: Option<String>,
    #[serde(
        rename = "Channel-Is-Loopback",
        default,
        deserialize_with = "lenient::bool"
    )]
    pub is_loopback: Option<bool>,
    #[serde(
        rename = "Channel-Loopback-Leg",
        default,
        deserialize_with = "lenient::string"
    )]
    pub loopback_leg: Option<String>,
    #[serde(
        rename = "Channel-Loopback-Other-Leg-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    pub loopback_other_leg: Option<String>,
    #[serde(rename = "To-Tag", default, deserialize_with = "lenient::string")]
    pub to_tag: Option<String>,
    #[serde(rename = "From-Tag", default, deserialize_with = "lenient::string")]
    pub from_tag: Option<String>,
    #[serde(
        rename = "Switch-Nodename",
        default,
        deserialize_with = "lenient::string"
    )]
    pub switch_nodename: Option<String>,
    #[serde(
        rename = "Switch-Hostname",
        default,
        deserialize_with = "lenient::string"
    )]
    pub switch_hostname: Option<String>,
    #[serde(rename = "Switch-URL", default, deserialize_with = "lenient::string")]
    pub switch_url: Option<String>,
    #[serde(rename = "Media-Server", default, deserialize_with = "lenient::string")]
    pub media_server: Option<String>,
    #[serde(
        rename = "Caller-ID-Name",
        default,
        deserialize_with = "lenient::string"
    )]
    pub caller_id_name: Option<String>,
    #[serde(
        rename = "Caller-ID-Number",
        default,
        deserialize_with = "lenient::string"
    )]
    pub caller_id_number: Option<String>,
    #[serde(
        rename = "Callee-ID-Name",
        default,
        deserialize_with = "lenient::string"
    )]
    pub callee_id_name: Option<String>,
    #[serde(
        rename = "Callee-ID-Number",
        default,
        deserialize_with = "lenient::string"
    )]
    pub callee_id_number: Option<String>,
    #[serde(rename = "From", default, deserialize_with = "lenient::string")]
    pub from: Option<String>,
    #[serde(rename = "To", default, deserialize_with = "lenient::string")]
    pub to: Option<String>,
    #[serde(rename = "Custom-Channel-Vars", default)]
    pub ccv: Option<Box<RawValue>>,
    #[serde(rename = "Custom-Application-Vars", default)]
    pub cav: Option<Box<RawValue>>,
}

impl CallEvent {
    /// Decodes a `callevt` message body. Unknown keys are ignored; a value of the
    /// wrong type reads as absent. Only a body that is not a JSON object, is not a
    /// call event, or has no `Call-ID` is an error.
    pub fn decode(body: &[u8]) -> Result<Self, EventError> {
        // serde would read a struct from an array too; Kazoo only sends objects.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Err(e) => EventError::NotJson(e),
                    Ok(_) => EventError::NotObject,
                },
            );
        }
        let mut ev: CallEvent = serde_json::from_slice(body)?;
        if ev.category.as_deref() != Some("call_event") {
            return Err(EventError::WrongCategory(ev.category));
        }
        let name = ev.name.as_deref().ok_or(EventError::MissingEventName)?;
        ev.kind = EventKind::parse(name);
        if ev.call_id.is_none() {
            return Err(EventError::MissingCallId);
        }
        Ok(ev)
    }

    pub fn call_id(&self) -> &str {
        self.call_id.as_deref().unwrap_or_default()
    }

    /// The event's own time in Unix microseconds: a call event's `Msg-ID` is the
    /// FreeSWITCH event time (WIRE.md §5.3), which orders events of one call.
    pub fn event_micros(&self) -> Option<u64> {
        self.msg_id.as_deref()?.parse().ok()
    }

    /// The peer leg this event names, from `Other-Leg-Call-ID` or (5.0) `Bridge-B-Unique-ID`.
    pub fn peer(&self) -> Option<&str> {
        self.other_leg
            .as_deref()
            .or(self.bridge_b_unique_id.as_deref())
            .filter(|p| *p != self.call_id())
    }

    /// The custom channel variables we index and report, parsed leniently.
    pub fn ccvs(&self) -> Ccvs {
        self.ccv
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default()
    }
}

/// The custom channel variables ecallmgr copies into its channel record (WIRE.md §4.1).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ccvs {
    #[serde(rename = "Account-ID", default, deserialize_with = "lenient::string")]
    pub account_id: Option<String>,
    #[serde(
        rename = "Account-Billing",
        default,
        deserialize_with = "lenient::string"
    )]
    pub account_billing: Option<String>,
    #[serde(rename = "Reseller-ID", default, deserialize_with = "lenient::string")]
    pub reseller_id: Option<String>,
    #[serde(
        rename = "Reseller-Billing",
        default,
        deserialize_with = "lenient::string"
    )]
    pub reseller_billing: Option<String>,
    #[serde(
        rename = "Authorizing-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    pub authorizing_id: Option<String>,
    #[serde(
        rename = "Authorizing-Type",
        default,
        deserialize_with = "lenient::string"
    )]
    pub authorizing_type: Option<String>,
    #[serde(rename = "Owner-ID", default, deserialize_with = "lenient::string")]
    pub owner_id: Option<String>,
    #[serde(rename = "Resource-ID", default, deserialize_with = "lenient::string")]
    pub resource_id: Option<String>,
    #[serde(rename = "Fetch-ID", default, deserialize_with = "lenient::string")]
    pub fetch_id: Option<String>,
    #[serde(rename = "Bridge-ID", default, deserialize_with = "lenient::string")]
    pub bridge_id: Option<String>,
    #[serde(rename = "CallFlow-ID", default, deserialize_with = "lenient::string")]
    pub callflow_id: Option<String>,
    #[serde(
        rename = "Call-Interaction-ID",
        default,
        deserialize_with = "lenient::string"
    )]
    pub interaction_id: Option<String>,
    #[serde(rename = "Precedence", default, deserialize_with = "lenient::i64")]
    pub precedence: Option<i64>,
    #[serde(
        rename = "Channel-Authorized",
        default,
        deserialize_with = "lenient::bool"
    )]
    pub channel_authorized: Option<bool>,
    #[serde(rename = "Username", default, deserialize_with = "lenient::string")]
    pub username: Option<String>,
    #[serde(rename = "Realm", default, deserialize_with = "lenient::string")]
    pub realm: Option<String>,
    #[serde(rename = "Presence-ID", default, deserialize_with = "lenient::string")]
    pub presence_id: Option<String>,
    #[serde(
        rename = "Ecallmgr-Node",
        default,
        deserialize_with = "lenient::string"
    )]
    pub ecallmgr_node: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture_bytes as fixture;

    #[test]
    fn decodes_43_create() {
        let ev = CallEvent::decode(&fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json")).unwrap();
        assert_eq!(ev.kind, EventKind::Create);
        assert_eq!(ev.call_id(), "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91");
        assert_eq!(ev.timestamp, Some(63_869_600_000));
        assert_eq!(ev.event_micros(), Some(1_702_380_800_123_456));
        let ccv = ev.ccvs();
        assert_eq!(
            ccv.account_id.as_deref(),
            Some("3a1b2c3d4e5f60718293a4b5c6d7e8f9")
        );
        assert_eq!(ccv.username.as_deref(), Some("user_zu0bf7"));
        assert_eq!(ccv.channel_authorized, None);
    }

    #[test]
    fn decodes_50_create_with_string_created_time() {
        let ev = CallEvent::decode(&fixture("kazoo50.callevt.CHANNEL_CREATE.a-leg.json")).unwrap();
        assert_eq!(ev.destination_number.as_deref(), Some("2600"));
        assert_eq!(ev.answer_state.as_deref(), Some("ringing"));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!(matches!(
            CallEvent::decode(b"not json"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(
            CallEvent::decode(b"[1]"),
            Err(EventError::NotObject)
        ));
        assert!(matches!(
            CallEvent::decode(br#"{"Event-Category":"call_event","Event-Name":"CHANNEL_CREATE"}"#),
            Err(EventError::MissingCallId)
        ));
        assert!(matches!(
            CallEvent::decode(
                br#"{"Event-Category":"error","Event-Name":"dialplan","Call-ID":"x"}"#
            ),
            Err(EventError::WrongCategory(_))
        ));
        // Wrong types read as absent, never fail the whole event.
        let ev = CallEvent::decode(
            br#"{"Event-Category":"call_event","Event-Name":"CHANNEL_ANSWER","Call-ID":"x","Timestamp":"63869600003","Custom-Channel-Vars":{"Precedence":"7","Channel-Authorized":"true"},"To-Tag":5}"#,
        )
        .unwrap();
        assert_eq!(ev.timestamp, Some(63_869_600_003));
        assert_eq!(ev.ccvs().precedence, Some(7));
        assert_eq!(ev.ccvs().channel_authorized, Some(true));
        assert_eq!(ev.to_tag.as_deref(), Some("5"));
    }
}
