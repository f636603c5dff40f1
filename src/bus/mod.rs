//! The transport: lapin connections, topology declaration, publishing with
//! confirms, and consumers that hand plain [`Incoming`] messages to handlers.
//! Nothing outside this module touches lapin: the worker holds a [`Session`],
//! clients a [`BusClient`].

mod adopt;
pub mod broker;
mod consume;
mod optional;
mod pool;
mod publisher;
pub mod requester;
mod session;
mod tls;
pub mod topology;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};
use serde_json::{Map, Value};
use std::time::Duration;
use thiserror::Error;

pub use adopt::Adopted;
pub use broker::{Broker, BrokerError};
pub use consume::{Consume, Handler, HandlerFuture, ServeEnd, consumer};
pub use optional::Found;
pub use pool::ClientPool;
pub use publisher::BusPublisher;
pub use requester::{BusClient, Collect, Replies};
pub use session::{LinkEvent, Session};
pub use topology::Topology;

use crate::kapi::Incoming;

#[derive(Debug, Error)]
pub enum BusError {
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("topology: {0}")]
    Topology(String),
    #[error("connection pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A broker's refusal that retrying alone will not fix: the configuration
/// (ours or the broker's) must change. The supervisor still backs off and
/// retries, since a broker being set up may yet accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The setting to change: one of ours (`amqp.url`, `amqp.queue_type`) or
    /// the broker's (`rabbitmq.conf`, its permissions, what it holds).
    pub key: &'static str,
    /// What to fix.
    pub fix: &'static str,
    /// The broker's own words on one line (no credentials in them).
    pub broker_says: String,
}

/// (the setting to change, what to fix) for each refusal [`BusError::refusal`] knows.
type Fix = (&'static str, &'static str);
const LOGIN: Fix = (
    "amqp.url",
    "the broker refused the login: check the user and password in amqp.url",
);
const PERMISSIONS: Fix = (
    "amqp.url",
    "the broker refused access: the user of amqp.url needs configure, write and read permissions on its vhost",
);
const VHOST: Fix = (
    "amqp.url",
    "the broker refused the vhost: check the vhost in amqp.url (it must exist, and its user must have permissions on it)",
);
const EXCHANGE_IN_THE_WAY: Fix = (
    "broker exchange",
    "an exchange of that name exists on the broker with other flags than Kazoo's: delete it (rabbitmqctl delete_exchange NAME -p VHOST) so it is declared as Kazoo declares it",
);
const HOME_NODE_DOWN: Fix = (
    "amqp.queue_type",
    "the cluster node holding that durable classic queue is down, and the queue with it until the node returns: on a RabbitMQ cluster set amqp.queue_type = \"quorum\"",
);
const DEPRECATED: Fix = (
    "rabbitmq.conf",
    "the broker denies a deprecated feature (named by the broker): permit it with deprecated_features.permit.NAME = true in rabbitmq.conf",
);

impl BusError {
    /// The refusal this error is, if the configuration is at fault.
    pub fn refusal(&self) -> Option<Refusal> {
        use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
        let BusError::Amqp(e) = self else {
            return None;
        };
        let lapin::ErrorKind::ProtocolError(amqp) = e.kind() else {
            return None;
        };
        let broker_says = amqp
            .get_message()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let says = |text: &str| broker_says.contains(text);
        let (key, fix) = match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) if says("Login") => LOGIN,
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => PERMISSIONS,
            AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => VHOST,
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) if says("inequivalent") => {
                EXCHANGE_IN_THE_WAY
            }
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) if says("home node") => HOME_NODE_DOWN,
            AMQPErrorKind::Hard(AMQPHardError::INTERNALERROR) if says("deprecated") => DEPRECATED,
            _ => return None,
        };
        Some(Refusal {
            key,
            fix,
            broker_says,
        })
    }
}

/// How long a clean close may take. lapin resolves a close when the broker's
/// close-ok arrives, and a connection that is half gone never sends it.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Closes a channel, waiting at most [`CLOSE_WAIT`]. Every channel is closed
/// this way before its connection: one left to its drop closes itself in the
/// background, and that close racing the connection's could leave the
/// connection's close waiting forever (lapin logs "invalid channel state:
/// Closing"; a test worker's shutdown hung on it).
pub async fn close_channel(ch: &Channel) {
    if ch.status().connected() {
        let _ = tokio::time::timeout(CLOSE_WAIT, ch.close(200, "bye".into())).await;
    }
}

/// Closes a connection whose channels are closed, waiting at most [`CLOSE_WAIT`].
pub async fn close_connection(conn: &Connection) {
    if conn.status().connected() {
        let _ = tokio::time::timeout(CLOSE_WAIT, conn.close(200, "bye".into())).await;
    }
}

/// Opens one connection to `url` (its own TLS parameters apply; see
/// [`Broker`]). No lapin auto-recovery: the worker supervises whole sessions
/// itself, so a lost queue or a broker restart is handled the same way.
pub async fn connect(url: &str, connection_name: &str) -> Result<Connection, BusError> {
    Ok(Broker::plain(url)?.connect(connection_name).await?)
}

fn amqp_value(v: &Value) -> AMQPValue {
    match v {
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) if n.is_i64() => AMQPValue::LongLongInt(n.as_i64().unwrap_or_default()),
        Value::Number(n) => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        other => AMQPValue::LongString(LongString::from(other.to_string())),
    }
}

pub(crate) fn field_table(map: &Map<String, Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(ShortString::from(k.as_str()), amqp_value(v));
    }
    t
}

fn exchange_kind(kind: &str) -> Result<ExchangeKind, BusError> {
    Ok(match kind {
        "topic" => ExchangeKind::Topic,
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        other => return Err(BusError::Topology(format!("unknown exchange type {other}"))),
    })
}

/// Declares every exchange, queue and binding of `topology`, idempotently.
pub async fn declare(channel: &Channel, topology: &Topology) -> Result<(), BusError> {
    declare_exchanges(channel, topology).await?;
    for q in &topology.queues {
        declare_queue(channel, q).await?;
    }
    Ok(())
}

async fn declare_exchanges(channel: &Channel, topology: &Topology) -> Result<(), BusError> {
    for e in &topology.exchanges {
        let opts = ExchangeDeclareOptions {
            durable: e.durable,
            auto_delete: e.auto_delete,
            internal: e.internal,
            ..Default::default()
        };
        channel
            .exchange_declare(
                e.name.as_str().into(),
                exchange_kind(&e.kind)?,
                opts,
                field_table(&e.arguments),
            )
            .await?;
    }
    Ok(())
}

fn declare_options(q: &topology::QueueDef) -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: q.durable,
        exclusive: q.exclusive,
        auto_delete: q.auto_delete,
        ..Default::default()
    }
}

pub async fn declare_queue(channel: &Channel, q: &topology::QueueDef) -> Result<(), BusError> {
    channel
        .queue_declare(
            q.name.as_str().into(),
            declare_options(q),
            field_table(&q.arguments),
        )
        .await?;
    // Bindings to an exchange that is not ours wait for a passive check.
    for b in q.bindings.iter().filter(|b| !b.passive_exchange) {
        bind(channel, &q.name, b).await?;
    }
    Ok(())
}

async fn bind(channel: &Channel, queue: &str, b: &topology::BindingDef) -> Result<(), BusError> {
    channel
        .queue_bind(
            queue.into(),
            b.exchange.as_str().into(),
            b.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Whether a queue exists, asked on a throwaway channel (a passive declare of a
/// missing queue closes the channel it was made on).
pub async fn queue_exists(conn: &Connection, name: &str) -> Result<bool, BusError> {
    let ch = conn.create_channel().await?;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match ch
        .queue_declare(name.into(), opts, FieldTable::default())
        .await
    {
        Ok(_) => {
            close_channel(&ch).await;
            Ok(true)
        }
        Err(e) if optional::is_not_found(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn incoming(d: &mut lapin::message::Delivery) -> Incoming {
    Incoming {
        routing_key: d.routing_key.to_string(),
        body: std::mem::take(&mut d.data),
        redelivered: d.redelivered,
        sent_at: *d.properties.timestamp(),
        expires_in: d
            .properties
            .expiration()
            .as_ref()
            .and_then(|e| e.as_str().parse().ok())
            .map(std::time::Duration::from_millis),
        received: std::time::Instant::now(),
    }
}
