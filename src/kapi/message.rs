//! Messages as the handlers see them: transport-neutral, so the handlers never
//! see lapin and can be tested with a fake publisher.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::exchanges::TARGETED;
use super::time::gregorian_now_micros;

/// Where a reply goes on the `targeted` exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAddress {
    pub routing_key: String,
    /// Kazoo 5.0 `pid://PID/QUEUE` addresses: the AMQP header `Deliver-To-PID`.
    pub deliver_to_pid: Option<String>,
}

/// Why a `Server-ID` is no address to reply to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no Server-ID, so nowhere to reply")]
    Empty,
    #[error(transparent)]
    Unroutable(#[from] RoutingKeyError),
}

/// A name AMQP cannot carry: its short strings (routing keys, exchange and
/// header names) hold at most 255 bytes, and lapin panics on a longer one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} of {len} bytes is longer than an AMQP short string (255)")]
pub struct RoutingKeyError {
    pub what: &'static str,
    pub len: usize,
}

/// The most bytes an AMQP short string holds.
pub const MAX_SHORT_STRING: usize = 255;

fn short_string(what: &'static str, s: &str) -> Result<(), RoutingKeyError> {
    match s.len() {
        len if len > MAX_SHORT_STRING => Err(RoutingKeyError { what, len }),
        _ => Ok(()),
    }
}

impl ReplyAddress {
    /// Splits a `Server-ID`. Plain queue names are used verbatim (never escaped); a
    /// `pid://` address splits at its last `/`, as `kz_amqp_util` does.
    pub fn parse(server_id: &str) -> Option<Self> {
        Self::read(server_id).ok()
    }

    /// [`ReplyAddress::parse`], saying why an address is none: empty, or a
    /// queue name longer than a routing key can be.
    pub fn read(server_id: &str) -> Result<Self, AddressError> {
        if server_id.is_empty() {
            return Err(AddressError::Empty);
        }
        let (routing_key, deliver_to_pid) = match server_id.strip_prefix("pid://") {
            Some(rest) => match rest.rsplit_once('/') {
                Some((pid, queue)) if !queue.is_empty() => (queue, Some(pid.to_owned())),
                _ => (server_id, None),
            },
            None => (server_id, None),
        };
        short_string("the Server-ID's queue name", routing_key)?;
        Ok(Self {
            routing_key: routing_key.to_owned(),
            deliver_to_pid,
        })
    }
}

/// A delivery from one of our queues.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub routing_key: String,
    pub body: Vec<u8>,
    pub redelivered: bool,
    /// The AMQP `timestamp` property, when the sender set one: Kazoo (and
    /// our own publisher) put Gregorian microseconds there (WIRE.md §2.1).
    pub sent_at: Option<u64>,
    /// The AMQP `expiration` property: how long its sender waits for it (our
    /// own requester sets it; Kazoo never does).
    pub expires_in: Option<Duration>,
    /// When it reached us.
    pub received: Instant,
}

/// Gregorian microseconds between 1964 and 2091: a timestamp outside is not
/// Kazoo's (AMQP's own convention is Unix seconds), so it dates nothing.
const PLAUSIBLE_GREGORIAN_MICROS: std::ops::Range<u64> =
    62_000_000_000_000_000..66_000_000_000_000_000;

impl Incoming {
    /// A delivery received now, without a timestamp (tests, held events).
    pub fn new(routing_key: impl Into<String>, body: Vec<u8>) -> Self {
        Self {
            routing_key: routing_key.into(),
            body,
            redelivered: false,
            sent_at: None,
            expires_in: None,
            received: Instant::now(),
        }
    }

    /// How long ago it was sent: from its Gregorian `timestamp` when it has
    /// one (so time spent in the broker's queue and in our prefetch buffer
    /// counts, a stall of this process included), else since it reached us.
    pub fn age(&self) -> Duration {
        let here = self.received.elapsed();
        let sent = self
            .sent_at
            .filter(|t| PLAUSIBLE_GREGORIAN_MICROS.contains(t))
            .map(|t| Duration::from_micros(gregorian_now_micros().saturating_sub(t)));
        // A sender whose clock runs ahead makes a message look younger than
        // it is; it is at least as old as its time here.
        sent.map_or(here, |s| s.max(here))
    }
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

    /// Whether AMQP can carry this message's names (exchange, routing key,
    /// header names): checked before it is published, since lapin panics on
    /// a short string past 255 bytes.
    pub fn check(&self) -> Result<(), RoutingKeyError> {
        short_string("exchange name", &self.exchange)?;
        short_string("routing key", &self.routing_key)?;
        for (name, _) in &self.headers {
            short_string("header name", name)?;
        }
        Ok(())
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

    #[test]
    fn an_address_longer_than_a_routing_key_is_refused() {
        let q = "q".repeat(MAX_SHORT_STRING);
        assert_eq!(ReplyAddress::read(&q).unwrap().routing_key, q);
        let pid = format!("pid://<0.1.0>/{q}");
        assert_eq!(ReplyAddress::read(&pid).unwrap().routing_key, q);
        let long = format!("{q}q");
        for bad in [long.clone(), format!("pid://<0.1.0>/{long}")] {
            assert_eq!(
                ReplyAddress::read(&bad),
                Err(AddressError::Unroutable(RoutingKeyError {
                    what: "the Server-ID's queue name",
                    len: 256
                }))
            );
        }
        assert_eq!(ReplyAddress::read(""), Err(AddressError::Empty));
    }

    #[test]
    fn age_is_from_the_gregorian_timestamp_when_there_is_one() {
        let mut m = Incoming::new("rk", Vec::new());
        assert!(m.age() < Duration::from_secs(1));
        m.sent_at = Some(gregorian_now_micros() - 5_000_000);
        let age = m.age();
        assert!(
            age >= Duration::from_secs(5) && age < Duration::from_secs(6),
            "{age:?}"
        );
        // Ahead of our clock: as old as its time here.
        m.sent_at = Some(gregorian_now_micros() + 60_000_000);
        assert!(m.age() < Duration::from_secs(1));
        // Unix seconds (AMQP's convention) date nothing.
        m.sent_at = Some(1_700_000_000);
        assert!(m.age() < Duration::from_secs(1));
    }

    #[test]
    fn a_message_with_a_name_amqp_cannot_carry_fails_its_check() {
        let ok = Outgoing::new(TARGETED, "q".repeat(MAX_SHORT_STRING), Vec::new());
        assert_eq!(ok.check(), Ok(()));
        let long = Outgoing::new(TARGETED, "q".repeat(256), Vec::new());
        assert_eq!(long.check().unwrap_err().len, 256);
        let mut header = ok.clone();
        header.headers.push(("h".repeat(300), "v".repeat(10_000)));
        assert_eq!(header.check().unwrap_err().what, "header name");
    }
}
