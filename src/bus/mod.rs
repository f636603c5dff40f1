//! The transport: lapin connections, topology declaration, publishing with
//! confirms, and consumers that hand plain [`Incoming`] messages to handlers.
//! Nothing outside this module touches lapin: the worker holds a [`Session`],
//! clients a [`BusClient`].

mod consume;
mod optional;
mod publisher;
pub mod requester;
mod session;
pub mod topology;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Map, Value};
use std::time::Duration;
use thiserror::Error;

pub use consume::{Consume, Handler, HandlerFuture, ServeEnd, consumer};
pub use optional::Found;
pub use publisher::BusPublisher;
pub use requester::{BusClient, ClientPool, Collect, Replies, client_pool};
pub use session::Session;
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

/// Whether `url` is an AMQP URI lapin can connect to (checked at start-up,
/// so a typo is a configuration error, not a reconnect loop).
pub fn is_amqp_uri(url: &str) -> bool {
    url.parse::<lapin::uri::AMQPUri>().is_ok()
}

/// Opens one connection. No lapin auto-recovery: the worker supervises whole
/// sessions itself, so a lost queue or a broker restart is handled the same way.
pub async fn connect(url: &str, connection_name: &str) -> Result<Connection, BusError> {
    let props = ConnectionProperties::default().with_connection_name(connection_name.into());
    Ok(Connection::connect(url, props).await?)
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
    for q in &topology.queues {
        declare_queue(channel, q).await?;
    }
    Ok(())
}

pub async fn declare_queue(channel: &Channel, q: &topology::QueueDef) -> Result<(), BusError> {
    let opts = QueueDeclareOptions {
        durable: q.durable,
        exclusive: q.exclusive,
        auto_delete: q.auto_delete,
        ..Default::default()
    };
    channel
        .queue_declare(q.name.as_str().into(), opts, field_table(&q.arguments))
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
    }
}
