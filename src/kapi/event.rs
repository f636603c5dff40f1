//! Call events from the `callevt` exchange, decoded leniently from both the
//! Kazoo 4.3 and 5.0 shapes (WIRE.md §5).
//!
//! Over 400 lines as one job: one message type, its some thirty keys each with
//! its lenient reader, and the custom-variable readers the registry uses.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::lenient::{self, Str};

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
    /// [5.x] A recording of the call started, stopped, was masked, paused…
    Record(RecordEvent),
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
            other => match RecordEvent::parse(other) {
                Some(r) => Self::Record(r),
                None => Self::Other(other.to_owned()),
            },
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

/// [5.x] The six events that move a recording's state (`ecallmgr_fs_recordings.erl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordEvent {
    Start,
    Stop,
    Mask,
    Unmask,
    Pause,
    Resume,
}

impl RecordEvent {
    pub fn parse(event_name: &str) -> Option<Self> {
        Some(match event_name {
            "RECORD_START" => Self::Start,
            "RECORD_STOP" => Self::Stop,
            "RECORD_MASK" => Self::Mask,
            "RECORD_UNMASK" => Self::Unmask,
            "RECORD_PAUSE" => Self::Pause,
            "RECORD_RESUME" => Self::Resume,
            _ => return None,
        })
    }

    /// The event names the event queue binds (`call.<NAME>.*`).
    pub const NAMES: [&'static str; 6] = [
        "RECORD_START",
        "RECORD_STOP",
        "RECORD_MASK",
        "RECORD_UNMASK",
        "RECORD_PAUSE",
        "RECORD_RESUME",
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
    #[error("no Call-ID, or one that is not a non-empty string")]
    MissingCallId,
}

/// Declares [`CallEvent`] and [`CallEvent::into_owned`] from one list of keys,
/// each with its type and lenient reader, so a new key is one line here.
macro_rules! call_event {
    ($($field:ident: $ty:ty = $key:literal by $reader:literal $(, $borrow:ident)?;)*) => {
        /// The keys of a call event the registry uses; the rest of the body is ignored.
        /// Text borrows from the body where it can: [`CallEvent::into_owned`] for an
        /// event kept longer than its delivery.
        #[derive(Debug, Clone, Default, Deserialize)]
        pub struct CallEvent<'a> {
            #[serde(skip)]
            pub kind: EventKind,
            $(
                #[serde(rename = $key, default, deserialize_with = $reader $(, $borrow)?)]
                pub $field: $ty,
            )*
        }

        impl CallEvent<'_> {
            /// The same event owning its text, to be held past its delivery.
            pub fn into_owned(self) -> CallEvent<'static> {
                CallEvent {
                    kind: self.kind,
                    $($field: Owned::owned(self.$field),)*
                }
            }
        }
    };
}

/// A decoded value that no longer borrows from the message body.
trait Owned {
    type Out;
    fn owned(self) -> Self::Out;
}

impl Owned for Str<'_> {
    type Out = Str<'static>;
    fn owned(self) -> Str<'static> {
        self.map(|s| Cow::Owned(s.into_owned()))
    }
}

impl Owned for Option<Cow<'_, RawValue>> {
    type Out = Option<Cow<'static, RawValue>>;
    fn owned(self) -> Self::Out {
        self.map(|v| Cow::Owned(v.into_owned()))
    }
}

/// Values that never borrow.
macro_rules! owned_as_is {
    ($($t:ty),*) => {$(
        impl Owned for Option<$t> {
            type Out = Self;
            fn owned(self) -> Self {
                self
            }
        }
    )*};
}

owned_as_is!(u64, bool);

call_event! {
    category: Str<'a> = "Event-Category" by "lenient::cow", borrow;
    name: Str<'a> = "Event-Name" by "lenient::cow", borrow;
    msg_id: Str<'a> = "Msg-ID" by "lenient::cow", borrow;
    // Only a string: Kazoo's call ids are, and `12345` is no call of its own.
    call_id: Str<'a> = "Call-ID" by "lenient::only_str", borrow;
    timestamp: Option<u64> = "Timestamp" by "lenient::u64";
    direction: Str<'a> = "Call-Direction" by "lenient::cow", borrow;
    destination_number: Str<'a> = "Caller-Destination-Number" by "lenient::cow", borrow;
    request: Str<'a> = "Request" by "lenient::cow", borrow;
    presence_id: Str<'a> = "Presence-ID" by "lenient::cow", borrow;
    other_leg: Str<'a> = "Other-Leg-Call-ID" by "lenient::cow", borrow;
    bridge_b_unique_id: Str<'a> = "Bridge-B-Unique-ID" by "lenient::cow", borrow;
    answer_state: Str<'a> = "Channel-Answer-State" by "lenient::cow", borrow;
    call_state: Str<'a> = "Channel-Call-State" by "lenient::cow", borrow;
    is_loopback: Option<bool> = "Channel-Is-Loopback" by "lenient::bool";
    loopback_leg: Str<'a> = "Channel-Loopback-Leg" by "lenient::cow", borrow;
    loopback_other_leg: Str<'a> = "Channel-Loopback-Other-Leg-ID" by "lenient::cow", borrow;
    to_tag: Str<'a> = "To-Tag" by "lenient::cow", borrow;
    from_tag: Str<'a> = "From-Tag" by "lenient::cow", borrow;
    switch_nodename: Str<'a> = "Switch-Nodename" by "lenient::cow", borrow;
    switch_hostname: Str<'a> = "Switch-Hostname" by "lenient::cow", borrow;
    switch_url: Str<'a> = "Switch-URL" by "lenient::cow", borrow;
    media_server: Str<'a> = "Media-Server" by "lenient::cow", borrow;
    caller_id_name: Str<'a> = "Caller-ID-Name" by "lenient::cow", borrow;
    caller_id_number: Str<'a> = "Caller-ID-Number" by "lenient::cow", borrow;
    callee_id_name: Str<'a> = "Callee-ID-Name" by "lenient::cow", borrow;
    callee_id_number: Str<'a> = "Callee-ID-Number" by "lenient::cow", borrow;
    from: Str<'a> = "From" by "lenient::cow", borrow;
    to: Str<'a> = "To" by "lenient::cow", borrow;
    ccv: Option<Cow<'a, RawValue>> = "Custom-Channel-Vars" by "lenient::raw", borrow;
    cav: Option<Cow<'a, RawValue>> = "Custom-Application-Vars" by "lenient::raw", borrow;
    // Kazoo 5.x (WIRE-5.md §3): every event; CHANNEL_CREATE; `RECORD_*`'s recording.
    csh: Option<Cow<'a, RawValue>> = "Custom-SIP-Headers" by "lenient::raw", borrow;
    cah: Option<Cow<'a, RawValue>> = "Custom-AUTH-Headers" by "lenient::raw", borrow;
    recording: Option<Cow<'a, RawValue>> = "Recording" by "lenient::raw", borrow;
}

impl<'a> CallEvent<'a> {
    /// Decodes a `callevt` message body. Unknown keys are ignored; a value of the
    /// wrong type reads as absent. Only a body that is not a JSON object, is not a
    /// call event, or has no `Call-ID` is an error.
    pub fn decode(body: &'a [u8]) -> Result<Self, EventError> {
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
            return Err(EventError::WrongCategory(ev.category.map(Cow::into_owned)));
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

    /// The name of the recording a `RECORD_*` event is about: `Recording.Name`
    /// (inferred: `kz_recording:name/1` is not public; ecallmgr sets `Name`
    /// among the recording's variables, `ecallmgr_call_command:record_call_args/3`).
    pub fn recording_name(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Recording {
            #[serde(rename = "Name", default, deserialize_with = "lenient::string")]
            name: Option<String>,
        }
        let r: Recording = serde_json::from_str(self.recording.as_deref()?.get()).ok()?;
        r.name.filter(|n| !n.is_empty())
    }

    /// The members of `Custom-Channel-Vars` in their order, values as their
    /// JSON text; `None` when the key is absent or not an object.
    pub fn ccv_entries(&self) -> Option<Vec<(Cow<'_, str>, &'_ str)>> {
        super::members::members(self.ccv.as_deref()?)
    }
}

/// A CCV value (its JSON text) as text, as `lenient::string` reads it: a
/// string as is, a number or boolean as its text, anything else (or `""`) absent.
pub fn ccv_str(t: &str) -> Option<Cow<'_, str>> {
    match t.as_bytes().first()? {
        b'"' if !t.contains('\\') => Some(Cow::Borrowed(&t[1..t.len() - 1])),
        b'"' => serde_json::from_str::<String>(t).ok().map(Cow::Owned),
        b't' | b'f' => Some(Cow::Borrowed(t)),
        b'-' | b'0'..=b'9' => serde_json::from_str::<serde_json::Number>(t)
            .ok()
            .map(|n| Cow::Owned(n.to_string())),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// A CCV value as an integer (`"5"` or `5`), as `lenient::i64` reads it.
pub fn ccv_i64(t: &str) -> Option<i64> {
    match t.as_bytes().first()? {
        b'"' => ccv_str(t)?.trim().parse().ok(),
        _ => serde_json::from_str::<serde_json::Number>(t).ok()?.as_i64(),
    }
}

/// A CCV value as a Kazoo boolean (`"true"` or `true`).
pub fn ccv_bool(t: &str) -> Option<bool> {
    match t {
        "true" => Some(true),
        "false" => Some(false),
        t if t.starts_with('"') => {
            let s = ccv_str(t)?;
            if s.eq_ignore_ascii_case("true") {
                Some(true)
            } else if s.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The custom channel variables ecallmgr copies into its channel record
/// (WIRE.md §4.1), read leniently.
#[derive(Debug, Clone, Default)]
pub struct Ccvs<'a> {
    pub account_id: Str<'a>,
    pub username: Str<'a>,
    pub realm: Str<'a>,
    pub precedence: Option<i64>,
    pub channel_authorized: Option<bool>,
}

impl CallEvent<'_> {
    /// A few of the custom channel variables, typed (the registry reads them all
    /// from [`CallEvent::ccv_entries`]).
    pub fn ccvs(&self) -> Ccvs<'_> {
        let mut c = Ccvs::default();
        for (k, v) in self.ccv_entries().unwrap_or_default() {
            match &*k {
                "Account-ID" => c.account_id = ccv_str(v),
                "Username" => c.username = ccv_str(v),
                "Realm" => c.realm = ccv_str(v),
                "Precedence" => c.precedence = ccv_i64(v),
                "Channel-Authorized" => c.channel_authorized = ccv_bool(v),
                _ => {}
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture_bytes as fixture;

    #[test]
    fn decodes_43_create() {
        let ev = CallEvent::decode(&fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json"))
            .unwrap()
            .into_owned();
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
        let ev = CallEvent::decode(&fixture("kazoo50.callevt.CHANNEL_CREATE.a-leg.json"))
            .unwrap()
            .into_owned();
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
        .unwrap().into_owned();
        assert_eq!(ev.timestamp, Some(63_869_600_003));
        assert_eq!(ev.ccvs().precedence, Some(7));
        assert_eq!(ev.ccvs().channel_authorized, Some(true));
        assert_eq!(ev.to_tag.as_deref(), Some("5"));
    }
}
