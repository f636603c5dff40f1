//! The Kazoo envelope: default keys every message carries, reply addressing
//! (WIRE.md §2.2, §2.3, §2.5), and the one reader of a request's envelope that
//! queries, commands, status and snapshots share.

use serde_json::{Map, Value};
use thiserror::Error;

use super::message::{AddressError, Incoming, Outgoing, ReplyAddress, RoutingKeyError};

pub const APP_NAME: &str = "kazoo-channels";
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who we are on the bus: stamped into every message we send.
#[derive(Debug, Clone)]
pub struct Identity {
    pub app_name: String,
    pub app_version: String,
    /// Unique per instance, so an operator can tell which instance answered.
    pub node: String,
}

impl Identity {
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            app_name: APP_NAME.to_owned(),
            app_version: APP_VERSION.to_owned(),
            node: node.into(),
        }
    }

    /// Adds the default keys to `body`. Keys the caller already set win, except the
    /// identity keys, which are always ours.
    pub fn stamp(&self, body: &mut Map<String, Value>, category: &str, name: &str, msg_id: &str) {
        body.insert("App-Name".into(), Value::String(self.app_name.clone()));
        body.insert(
            "App-Version".into(),
            Value::String(self.app_version.clone()),
        );
        body.insert("Node".into(), Value::String(self.node.clone()));
        body.insert("Event-Category".into(), Value::String(category.to_owned()));
        body.insert("Event-Name".into(), Value::String(name.to_owned()));
        body.insert("Msg-ID".into(), Value::String(msg_id.to_owned()));
    }
}

/// A fresh `Msg-ID`: 32 lower-case hex characters, as Kazoo generates them.
pub fn new_msg_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `Msg-ID` of a body not otherwise read, for a log line (a request
/// dropped before its handler ran).
pub fn msg_id_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Only {
        #[serde(rename = "Msg-ID")]
        msg_id: Option<String>,
    }
    serde_json::from_slice::<Only>(body).ok()?.msg_id
}

/// Kazoo booleans arrive as JSON booleans or as the strings "true"/"false" (WIRE.md §2.2).
pub fn kazoo_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Why a request cannot be answered, whatever it asks.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("body is not a JSON object")]
    NotObject,
    #[error("no Msg-ID, so no reply could be matched")]
    NoMsgId,
    #[error("no Server-ID, so nowhere to reply")]
    NoServerId,
    #[error("the Server-ID is no reply address: {0}")]
    Unroutable(RoutingKeyError),
}

/// The keys that correlate and address a reply, read leniently: a key of the
/// wrong type, or empty, reads as absent, so even a bad request can be answered
/// when these two are right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub msg_id: Option<String>,
    pub reply_to: Option<ReplyAddress>,
    /// A `Server-ID` no routing key can hold: the request is refused, not
    /// carried out without a reply.
    pub unroutable: Option<RoutingKeyError>,
}

impl Envelope {
    /// From the values of `Msg-ID` and `Server-ID`.
    pub fn from_keys(msg_id: Option<&Value>, server_id: Option<&Value>) -> Self {
        fn text(v: Option<&Value>) -> Option<&str> {
            v.and_then(Value::as_str).filter(|s| !s.is_empty())
        }
        let reply_to = text(server_id).map(ReplyAddress::read);
        Self {
            msg_id: text(msg_id).map(str::to_owned),
            unroutable: match &reply_to {
                Some(Err(AddressError::Unroutable(e))) => Some(e.clone()),
                _ => None,
            },
            reply_to: reply_to.and_then(Result::ok),
        }
    }

    pub fn read(body: &Map<String, Value>) -> Self {
        Self::from_keys(body.get("Msg-ID"), body.get("Server-ID"))
    }

    /// Refuses a request whose `Server-ID` no routing key can hold.
    pub fn refuse_unroutable(&self) -> Result<(), EnvelopeError> {
        match &self.unroutable {
            Some(e) => Err(EnvelopeError::Unroutable(e.clone())),
            None => Ok(()),
        }
    }

    /// The `Msg-ID` and reply address of a request that is only worth a reply,
    /// checked in that order.
    pub fn addressed(self) -> Result<(String, ReplyAddress), EnvelopeError> {
        if self.msg_id.is_some() {
            self.refuse_unroutable()?;
        }
        let msg_id = self.msg_id.ok_or(EnvelopeError::NoMsgId)?;
        let to = self.reply_to.ok_or(EnvelopeError::NoServerId)?;
        Ok((msg_id, to))
    }
}

/// A decoded request body with its reply address: our own requests (status,
/// snapshots), read as a JSON object.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Map<String, Value>,
    pub msg_id: String,
    pub reply_to: Option<ReplyAddress>,
}

impl Request {
    /// Parses a JSON-object body. A missing `Server-ID` is not an error here:
    /// some requests are carried out without a reply.
    pub fn parse(msg: &Incoming) -> Result<Self, EnvelopeError> {
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&msg.body) else {
            return Err(EnvelopeError::NotObject);
        };
        let env = Envelope::read(&body);
        env.refuse_unroutable()?;
        Ok(Self {
            msg_id: env.msg_id.ok_or(EnvelopeError::NoMsgId)?,
            reply_to: env.reply_to,
            body,
        })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    pub fn app_name(&self) -> &str {
        self.str("App-Name").unwrap_or_default()
    }

    /// The reply address, required by requests that are only worth a reply.
    pub fn reply_address(&self) -> Result<&ReplyAddress, EnvelopeError> {
        self.reply_to.as_ref().ok_or(EnvelopeError::NoServerId)
    }

    /// A reply with our default keys and this request's `Msg-ID`.
    pub fn reply(
        &self,
        identity: &Identity,
        category: &str,
        name: &str,
        mut body: Map<String, Value>,
    ) -> Result<Outgoing, EnvelopeError> {
        let to = self.reply_address()?;
        identity.stamp(&mut body, category, name, &self.msg_id);
        Ok(Outgoing::reply_json(to, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stamp_sets_default_keys() {
        let id = Identity::new("kazoo-channels@host-1");
        let mut m = Map::new();
        id.stamp(&mut m, "call_event", "query_channels_resp", "abc");
        assert_eq!(m["App-Name"], "kazoo-channels");
        assert_eq!(m["Msg-ID"], "abc");
        assert_eq!(m["Node"], "kazoo-channels@host-1");
        assert_eq!(new_msg_id().len(), 32);
    }

    #[test]
    fn booleans_are_lenient() {
        assert_eq!(kazoo_bool(Some(&json!(true))), Some(true));
        assert_eq!(kazoo_bool(Some(&json!("true"))), Some(true));
        assert_eq!(kazoo_bool(Some(&json!("false"))), Some(false));
        assert_eq!(kazoo_bool(Some(&json!(1))), None);
        assert_eq!(kazoo_bool(None), None);
    }

    fn msg(body: &str) -> Incoming {
        Incoming::new("rk", body.as_bytes().to_vec())
    }

    #[test]
    fn parses_and_replies() {
        let r = Request::parse(&msg(
            r#"{"Msg-ID":"m1","Server-ID":"pid://<0.1.0>/q1","App-Name":"crossbar"}"#,
        ))
        .unwrap();
        assert_eq!(r.app_name(), "crossbar");
        let out = r
            .reply(&Identity::new("n"), "channels", "status_resp", Map::new())
            .unwrap();
        assert_eq!(out.routing_key, "q1");
        assert_eq!(
            out.headers,
            vec![("Deliver-To-PID".into(), "<0.1.0>".into())]
        );
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["Msg-ID"], "m1");
    }

    #[test]
    fn refuses_what_cannot_be_answered() {
        assert_eq!(
            Request::parse(&msg("[]")).unwrap_err(),
            EnvelopeError::NotObject
        );
        assert_eq!(
            Request::parse(&msg("{}")).unwrap_err(),
            EnvelopeError::NoMsgId
        );
        let r = Request::parse(&msg(r#"{"Msg-ID":"m"}"#)).unwrap();
        assert_eq!(r.reply_address().unwrap_err(), EnvelopeError::NoServerId);
    }
}
