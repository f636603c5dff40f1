//! The envelope of a request we answer: who to reply to and with which `Msg-ID`.

use serde_json::{Map, Value};
use thiserror::Error;

use super::envelope::{Identity, ReplyAddress};
use super::message::{Incoming, Outgoing};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("body is not a JSON object")]
    NotObject,
    #[error("no Msg-ID")]
    NoMsgId,
    #[error("no Server-ID to reply to")]
    NoServerId,
}

/// A decoded request body with its reply address.
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
        let msg_id = body
            .get("Msg-ID")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(EnvelopeError::NoMsgId)?
            .to_owned();
        let reply_to = body
            .get("Server-ID")
            .and_then(Value::as_str)
            .and_then(ReplyAddress::parse);
        Ok(Self {
            body,
            msg_id,
            reply_to,
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

    fn msg(body: &str) -> Incoming {
        Incoming {
            routing_key: "rk".into(),
            body: body.as_bytes().to_vec(),
            redelivered: false,
        }
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
