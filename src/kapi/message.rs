//! Messages as the handlers see them: transport-neutral, so the handlers never
//! see lapin and can be tested with a fake publisher.

use std::future::Future;

use serde::Serialize;
use serde_json::{Map, Value};

use super::exchanges::TARGETED;

/// Where a reply goes on the `targeted` exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAddress {
    pub routing_key: String,
    /// Kazoo 5.0 `pid://PID/QUEUE` addresses: the AMQP header `Deliver-To-PID`.
    pub deliver_to_pid: Option<String>,
}

impl ReplyAddress {
    /// Splits a `Server-ID`. Plain queue names are used verbatim (never escaped); a
    /// `pid://` address splits at its last `/`, as `kz_amqp_util` does.
    pub fn parse(server_id: &str) -> Option<Self> {
        if server_id.is_empty() {
            return None;
        }
        if let Some(rest) = server_id.strip_prefix("pid://")
            && let Some((pid, queue)) = rest.rsplit_once('/')
            && !queue.is_empty()
        {
            return Some(Self {
                routing_key: queue.to_owned(),
                deliver_to_pid: Some(pid.to_owned()),
            });
        }
        Some(Self {
            routing_key: server_id.to_owned(),
            deliver_to_pid: None,
        })
    }
}

/// A delivery from one of our queues.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub routing_key: String,
    pub body: Vec<u8>,
    pub redelivered: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    /// AMQP header-table entries (long strings), e.g. `Deliver-To-PID`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Ask the broker to return the message if nothing is bound for it.
    pub mandatory: bool,
    /// Per-message TTL: the broker drops it if nobody took it in time.
    pub expires_in: Option<std::time::Duration>,
    /// `gzip` for a compressed body (see [`super::compress`]).
    pub content_encoding: Option<&'static str>,
}

impl Outgoing {
    pub fn new(exchange: &str, routing_key: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            exchange: exchange.to_owned(),
            routing_key: routing_key.into(),
            headers: Vec::new(),
            body,
            mandatory: false,
            expires_in: None,
            content_encoding: None,
        }
    }

    pub fn json(exchange: &str, routing_key: impl Into<String>, body: &impl Serialize) -> Self {
        Self::new(
            exchange,
            routing_key,
            serde_json::to_vec(body).expect("our messages serialize"),
        )
    }

    /// A reply to a request's `Server-ID` on `targeted` (WIRE.md §2.3, §2.5).
    pub fn reply(to: &ReplyAddress, body: Vec<u8>) -> Self {
        let mut m = Self::new(TARGETED, to.routing_key.clone(), body);
        if let Some(pid) = &to.deliver_to_pid {
            m.headers.push(("Deliver-To-PID".into(), pid.clone()));
        }
        m
    }

    pub fn reply_json(to: &ReplyAddress, body: &Map<String, Value>) -> Self {
        Self::reply(to, serde_json::to_vec(body).expect("maps serialize"))
    }

    /// A request nobody takes within its requester's wait is worthless: let
    /// the broker drop it rather than have it answered late.
    pub fn expiring(mut self, after: std::time::Duration) -> Self {
        self.expires_in = Some(after);
        self
    }

    pub fn mandatory(mut self) -> Self {
        self.mandatory = true;
        self
    }
}

/// What the broker said about a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Confirmed and routed.
    Confirmed,
    /// A `mandatory` message nothing was bound for (basic.return).
    Returned,
    /// The broker refused it (basic.nack).
    Nacked,
    /// The broker closed the channel on it (a message over its
    /// `max_message_size`, an exchange that does not exist); the channel was
    /// replaced and the session goes on.
    Refused,
}

#[derive(Debug, thiserror::Error)]
#[error("publish failed: {0}")]
pub struct PublishError(pub String);

/// The capability to publish with confirms, as the handlers see it.
pub trait Publish: Send + Sync {
    fn publish(
        &self,
        msg: Outgoing,
    ) -> impl Future<Output = Result<PublishOutcome, PublishError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_server_id_is_verbatim() {
        let a = ReplyAddress::parse("crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e").unwrap();
        assert_eq!(
            a.routing_key,
            "crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e"
        );
        assert_eq!(a.deliver_to_pid, None);
    }

    #[test]
    fn pid_address_splits_at_last_slash() {
        let a = ReplyAddress::parse("pid://<0.5511.0>/ecallmgr@kz1.example.com-<0.900.0>-7e6d5c4b")
            .unwrap();
        assert_eq!(a.routing_key, "ecallmgr@kz1.example.com-<0.900.0>-7e6d5c4b");
        assert_eq!(a.deliver_to_pid.as_deref(), Some("<0.5511.0>"));
        assert!(ReplyAddress::parse("").is_none());
    }
}
