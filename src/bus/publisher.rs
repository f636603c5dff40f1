//! Publishing with publisher confirms, on channels in confirm mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::BusError;
use crate::kapi::time::gregorian_now_micros;
use crate::kapi::{Outgoing, Publish, PublishError, PublishOutcome};

#[derive(Clone)]
pub struct BusPublisher {
    channel: Channel,
    mandatory: Arc<Mandatory>,
}

/// Channels for `mandatory` messages, one message in flight on each: lapin
/// hands a basic.return to whichever confirm it resolves next, so with several
/// in flight on a channel a return lands on the wrong message (on RabbitMQ, 58
/// of 200 concurrent publishes were misattributed). One in flight per channel
/// makes each return and its ack unambiguous; several channels let independent
/// messages (commands) overlap instead of queueing for one broker round trip
/// each.
struct Mandatory {
    channels: Vec<tokio::sync::Mutex<Channel>>,
    next: AtomicUsize,
}

impl Mandatory {
    /// A free channel if there is one, else the next in turn once it is free.
    async fn acquire(&self) -> tokio::sync::MutexGuard<'_, Channel> {
        let n = self.channels.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(channel) = self.channels[(first + i) % n].try_lock() {
                return channel;
            }
        }
        self.channels[first % n].lock().await
    }
}

async fn confirm_channel(conn: &Connection) -> Result<Channel, BusError> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

impl BusPublisher {
    /// A publisher with one channel for `mandatory` messages (one at a time).
    pub async fn open(conn: &Connection) -> Result<Self, BusError> {
        Self::open_with(conn, 1).await
    }

    /// A publisher that can have `mandatory` messages in flight on up to this
    /// many channels at once (at least one).
    pub async fn open_with(conn: &Connection, mandatory_channels: usize) -> Result<Self, BusError> {
        let mut channels = Vec::with_capacity(mandatory_channels.max(1));
        for _ in 0..mandatory_channels.max(1) {
            channels.push(tokio::sync::Mutex::new(confirm_channel(conn).await?));
        }
        Ok(Self {
            channel: confirm_channel(conn).await?,
            mandatory: Arc::new(Mandatory {
                channels,
                next: AtomicUsize::new(0),
            }),
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Closes every channel of this publisher (see [`super::close_channel`]).
    pub async fn close(&self) {
        for channel in &self.mandatory.channels {
            super::close_channel(&*channel.lock().await).await;
        }
        super::close_channel(&self.channel).await;
    }

    /// Publishes and waits for the broker's confirm.
    pub async fn send(&self, msg: &Outgoing) -> Result<PublishOutcome, lapin::Error> {
        if msg.mandatory {
            let channel = self.mandatory.acquire().await;
            let confirm = start(&channel, msg).await?;
            return Ok(outcome(confirm.await?));
        }
        let confirm = start(&self.channel, msg).await?;
        Ok(outcome(confirm.await?))
    }

    /// Publishes a batch in order and then waits for all the confirms, so the
    /// broker round trips overlap (`mandatory` ones still go one at a time).
    pub async fn send_all(&self, msgs: &[Outgoing]) -> Result<Vec<PublishOutcome>, lapin::Error> {
        if msgs.iter().any(|m| m.mandatory) {
            let mut outcomes = Vec::with_capacity(msgs.len());
            for m in msgs {
                outcomes.push(self.send(m).await?);
            }
            return Ok(outcomes);
        }
        let mut pending = Vec::with_capacity(msgs.len());
        for m in msgs {
            pending.push(start(&self.channel, m).await?);
        }
        let mut outcomes = Vec::with_capacity(msgs.len());
        for p in pending {
            outcomes.push(outcome(p.await?));
        }
        Ok(outcomes)
    }
}

async fn start(channel: &Channel, msg: &Outgoing) -> Result<lapin::PublisherConfirm, lapin::Error> {
    // Kazoo's properties: JSON content type and a Gregorian-µs timestamp, nothing else.
    let mut props = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_timestamp(gregorian_now_micros());
    if let Some(ttl) = msg.expires_in {
        props = props.with_expiration(ShortString::from(ttl.as_millis().max(1).to_string()));
    }
    if !msg.headers.is_empty() {
        let mut t = FieldTable::default();
        for (k, v) in &msg.headers {
            t.insert(
                ShortString::from(k.as_str()),
                AMQPValue::LongString(LongString::from(v.as_str())),
            );
        }
        props = props.with_headers(t);
    }
    let opts = BasicPublishOptions {
        mandatory: msg.mandatory,
        ..Default::default()
    };
    channel
        .basic_publish(
            msg.exchange.as_str().into(),
            msg.routing_key.as_str().into(),
            opts,
            &msg.body,
            props,
        )
        .await
}

fn outcome(c: Confirmation) -> PublishOutcome {
    match c {
        Confirmation::Ack(None) | Confirmation::NotRequested => PublishOutcome::Confirmed,
        Confirmation::Ack(Some(_)) => PublishOutcome::Returned,
        Confirmation::Nack(_) => PublishOutcome::Nacked,
    }
}

impl Publish for BusPublisher {
    async fn publish(&self, msg: Outgoing) -> Result<PublishOutcome, PublishError> {
        self.send(&msg)
            .await
            .map_err(|e| PublishError(e.to_string()))
    }
}
