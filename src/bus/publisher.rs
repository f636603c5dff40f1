//! Publishing with publisher confirms, on channels in confirm mode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::BusError;
use crate::kapi::time::gregorian_now_micros;
use crate::kapi::{Outgoing, Publish, PublishError, PublishOutcome};

#[derive(Clone)]
pub struct BusPublisher {
    /// The channel for messages that are not `mandatory`, shared by every
    /// task; replaced when the broker closes it.
    channel: Arc<RwLock<Channel>>,
    mandatory: Arc<Mandatory>,
    reopen: Option<Arc<Reopen>>,
}

/// What a publisher needs to replace a channel the broker closed (a refused
/// publish: a message over `max_message_size`, a missing exchange) without
/// ending the session.
pub struct Reopen {
    conn: Weak<Connection>,
    /// Told of each channel error (the worker counts them).
    on_error: Box<dyn Fn() + Send + Sync>,
    /// One replacement at a time.
    replacing: tokio::sync::Mutex<()>,
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

impl Reopen {
    /// A fresh channel in place of `broken`, if the connection is still up
    /// (a channel error); `None` when the connection itself is gone.
    async fn replace(&self, broken: &Channel) -> Option<Channel> {
        let conn = self.conn.upgrade()?;
        if !conn.status().connected() || broken.status().connected() {
            return None;
        }
        let channel = confirm_channel(&conn).await.ok()?;
        (self.on_error)();
        tracing::warn!(
            channel = broken.id(),
            replacement = channel.id(),
            "the broker closed a publishing channel (a refused message); reopened it, the session goes on"
        );
        Some(channel)
    }
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
            channel: Arc::new(RwLock::new(confirm_channel(conn).await?)),
            mandatory: Arc::new(Mandatory {
                channels,
                next: AtomicUsize::new(0),
            }),
            reopen: None,
        })
    }

    /// [`BusPublisher::open_with`], replacing a channel the broker closes
    /// instead of failing every publish after it; `on_error` is told of each.
    pub async fn reopening(
        conn: &Arc<Connection>,
        mandatory_channels: usize,
        on_error: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Self, BusError> {
        let mut p = Self::open_with(conn, mandatory_channels).await?;
        p.reopen = Some(Arc::new(Reopen {
            conn: Arc::downgrade(conn),
            on_error,
            replacing: tokio::sync::Mutex::new(()),
        }));
        Ok(p)
    }

    pub fn channel(&self) -> Channel {
        self.shared_channel()
    }

    fn shared_channel(&self) -> Channel {
        self.channel
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes every channel of this publisher (see [`super::close_channel`]).
    pub async fn close(&self) {
        for channel in &self.mandatory.channels {
            super::close_channel(&*channel.lock().await).await;
        }
        super::close_channel(&self.shared_channel()).await;
    }

    /// Publishes and waits for the broker's confirm. A message the broker
    /// refused by closing the channel is [`PublishOutcome::Refused`] when the
    /// channel could be replaced; an error means the connection is gone.
    pub async fn send(&self, msg: &Outgoing) -> Result<PublishOutcome, lapin::Error> {
        if msg.mandatory {
            let mut channel = self.mandatory.acquire().await;
            let result = publish(&channel, msg).await;
            return match result {
                Err(e) => match self.replacement(&channel).await {
                    Some(fresh) => {
                        *channel = fresh;
                        Ok(PublishOutcome::Refused)
                    }
                    None => Err(e),
                },
                ok => ok,
            };
        }
        let channel = self.shared_channel();
        match publish(&channel, msg).await {
            Err(e) => self.refused(&channel, e).await,
            ok => ok,
        }
    }

    async fn replacement(&self, broken: &Channel) -> Option<Channel> {
        self.reopen.as_ref()?.replace(broken).await
    }

    /// After `e` on the shared channel `broken`: put a fresh channel in its
    /// place (once, however many tasks saw it fail).
    async fn refused(
        &self,
        broken: &Channel,
        e: lapin::Error,
    ) -> Result<PublishOutcome, lapin::Error> {
        let Some(reopen) = &self.reopen else {
            return Err(e);
        };
        let _one = reopen.replacing.lock().await;
        if self.shared_channel().id() != broken.id() {
            return Ok(PublishOutcome::Refused);
        }
        match reopen.replace(broken).await {
            Some(fresh) => {
                *self.channel.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                Ok(PublishOutcome::Refused)
            }
            None => Err(e),
        }
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
        let channel = self.shared_channel();
        let mut pending = Vec::with_capacity(msgs.len());
        for m in msgs {
            pending.push(start(&channel, m).await?);
        }
        let mut outcomes = Vec::with_capacity(msgs.len());
        for p in pending {
            outcomes.push(outcome(p.await?));
        }
        Ok(outcomes)
    }
}

async fn publish(channel: &Channel, msg: &Outgoing) -> Result<PublishOutcome, lapin::Error> {
    let confirm = start(channel, msg).await?;
    Ok(outcome(confirm.await?))
}

async fn start(channel: &Channel, msg: &Outgoing) -> Result<lapin::PublisherConfirm, lapin::Error> {
    // Kazoo's properties: JSON content type and a Gregorian-µs timestamp (and
    // the content encoding of a compressed body).
    let mut props = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_timestamp(gregorian_now_micros());
    if let Some(encoding) = msg.content_encoding {
        props = props.with_content_encoding(ShortString::from(encoding));
    }
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
