//! A requester that behaves like Kazoo's `kz_amqp_worker`: a private reply
//! queue bound to `targeted` under its own name, a fresh `Msg-ID` per request,
//! replies matched by `Msg-ID` only. Used by the CLI clients, tests and benches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Connection;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{Broker, BusError, BusPublisher, ClientPool, Topology, connect, declare};
use crate::kapi::asks::Ask;
use crate::kapi::compress;
use crate::kapi::exchanges::TARGETED;
use crate::kapi::{Identity, Outgoing, PublishOutcome, new_msg_id};

/// The largest reply a client decodes: an unscoped `Fields: "all"` answer of
/// a few hundred thousand channels is hundreds of megabytes once gunzipped.
const MAX_REPLY_BYTES: usize = 1 << 30;

enum Conn {
    Own(Box<Connection>),
    Pooled(Arc<Connection>),
}

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Conn::Own(c) => c,
            Conn::Pooled(c) => c,
        }
    }
}

/// Replies travel as their (decoded) bodies: a caller that knows the shape
/// (a snapshot part) reads them straight into its types.
type Waiters = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Vec<u8>>>>>;

pub struct BusClient {
    conn: Conn,
    /// The reply queue's channel (exclusive: the queue goes with it).
    replies: lapin::Channel,
    publisher: BusPublisher,
    reply_queue: String,
    waiters: Waiters,
    identity: Identity,
    stray: Arc<std::sync::atomic::AtomicU64>,
    /// Replies longer than this are dropped unread (see [`BusClient::with_max_reply_bytes`]).
    max_reply: Arc<std::sync::atomic::AtomicUsize>,
}

/// The longest reply a client reads unless told otherwise.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 64 << 20;

/// How long to collect replies, and when to stop early.
#[derive(Debug, Clone, Copy)]
pub struct Collect {
    pub timeout: Duration,
    /// Stop after this many replies (`None`: wait for the whole timeout).
    pub max_replies: Option<usize>,
    /// Stop as soon as this says the replies so far are complete.
    pub done: Option<fn(&[Value]) -> bool>,
}

impl Collect {
    pub fn first(timeout: Duration) -> Self {
        Self {
            timeout,
            max_replies: Some(1),
            done: None,
        }
    }
    pub fn all(timeout: Duration) -> Self {
        Self {
            timeout,
            max_replies: None,
            done: None,
        }
    }
    pub fn until(timeout: Duration, done: fn(&[Value]) -> bool) -> Self {
        Self {
            timeout,
            max_replies: None,
            done: Some(done),
        }
    }
}

/// The replies to one request, as they arrive.
pub struct Replies<'c> {
    client: &'c BusClient,
    msg_id: String,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl Replies<'_> {
    /// The next reply, or `None` when none came `within` this long.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        self.next_body(within).await.map(|b| json_of(&b))
    }

    /// The next reply's body (decompressed), or `None` when none came `within`
    /// this long.
    pub async fn next_body(&mut self, within: Duration) -> Option<Vec<u8>> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A body the consumer found to be JSON with a `Msg-ID`.
fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_default()
}

/// What the consumer reads of a reply to route it: the rest is skipped
/// unbuilt.
#[derive(serde::Deserialize)]
struct Routing<'a> {
    #[serde(rename = "Msg-ID", borrow, default)]
    msg_id: Option<std::borrow::Cow<'a, str>>,
}

impl Drop for Replies<'_> {
    fn drop(&mut self) {
        self.client
            .waiters
            .lock()
            .expect("waiters")
            .remove(&self.msg_id);
    }
}

impl BusClient {
    /// Connects, declares Kazoo's exchanges, and opens a private reply queue
    /// named like a Kazoo one (`<app>@<host>-<id>`).
    pub async fn connect(url: &str, app_name: &str) -> Result<Self, BusError> {
        Self::on(Conn::Own(Box::new(connect(url, app_name).await?)), app_name).await
    }

    /// [`BusClient::connect`] to the first of `brokers` (in their order of
    /// preference) that answers: what the CLI does with the configured list.
    pub async fn connect_first(brokers: &[Broker], app_name: &str) -> Result<Self, BusError> {
        let mut last = BusError::Pool("no broker configured".into());
        for broker in brokers {
            match broker.connect(app_name).await {
                Ok(conn) => return Self::on(Conn::Own(Box::new(conn)), app_name).await,
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    /// A client on a connection of `pool`, which goes back to the pool when the
    /// client is closed: the worker's occasional requests (warm-up, reconcile)
    /// reuse one connection instead of opening one each time.
    pub async fn from_pool(pool: &ClientPool, app_name: &str) -> Result<Self, BusError> {
        Self::on(Conn::Pooled(pool.get().await?), app_name).await
    }

    async fn on(conn: Conn, app_name: &str) -> Result<Self, BusError> {
        let ch = conn.create_channel().await?;
        let mut exchanges = Topology::for_instance("client");
        exchanges.queues.clear();
        declare(&ch, &exchanges).await?;
        let reply_queue = format!(
            "{app_name}@client-<0.{}.0>-{}",
            std::process::id(),
            &new_msg_id()[..8]
        );
        ch.queue_declare(
            reply_queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            reply_queue.as_str().into(),
            TARGETED.into(),
            reply_queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut consumer = ch
            .basic_consume(
                reply_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiters: Waiters = Arc::default();
        let stray = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let max_reply = Arc::new(std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_REPLY_BYTES));
        let (w, s, max) = (waiters.clone(), stray.clone(), max_reply.clone());
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let limit = max.load(std::sync::atomic::Ordering::Relaxed);
                if d.data.len() > limit {
                    s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        bytes = d.data.len(),
                        limit,
                        "a reply longer than the bound was dropped unread"
                    );
                    continue;
                }
                let encoding = d.properties.content_encoding().as_ref().map(|e| e.as_str());
                let Ok(body) = compress::decode(d.data, encoding, MAX_REPLY_BYTES) else {
                    s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                };
                let id = match serde_json::from_slice::<Routing>(&body) {
                    Ok(r) => r.msg_id.unwrap_or_default().into_owned(),
                    Err(_) => {
                        s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    }
                };
                let tx = w.lock().expect("waiters").get(&id).cloned();
                match tx {
                    Some(tx) => {
                        let _ = tx.send(body);
                    }
                    None => {
                        s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        });
        let publisher = BusPublisher::open(&conn).await?;
        Ok(Self {
            conn,
            replies: ch,
            publisher,
            reply_queue,
            waiters,
            identity: Identity {
                app_name: app_name.to_owned(),
                app_version: "4.0.0".into(),
                node: format!("{app_name}@client"),
            },
            stray,
            max_reply,
        })
    }

    /// Drops (unread, counted as stray) replies longer than `bytes`.
    pub fn with_max_reply_bytes(self, bytes: usize) -> Self {
        self.max_reply
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Sends as `node` (the `Node` key of our requests).
    pub fn with_node(mut self, node: &str) -> Self {
        self.identity.node = node.to_owned();
        self
    }

    /// The `Server-ID` replies come back to.
    pub fn reply_queue(&self) -> &str {
        &self.reply_queue
    }

    /// Replies that matched no outstanding request (late or unknown `Msg-ID`).
    pub fn stray_replies(&self) -> u64 {
        self.stray.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn publisher(&self) -> &BusPublisher {
        &self.publisher
    }

    pub async fn publish(&self, msg: &Outgoing) -> Result<PublishOutcome, BusError> {
        Ok(self.publisher.send(msg).await?)
    }

    /// Sends `body` (given its `Event-Category`/`Event-Name`; `Msg-ID` and
    /// `Server-ID` are filled in unless present) and collects matching replies.
    pub async fn request(
        &self,
        exchange: &str,
        routing_key: &str,
        category: &str,
        name: &str,
        body: Map<String, Value>,
        collect: Collect,
    ) -> Result<Vec<Value>, BusError> {
        let mut stream = self
            .send(exchange, routing_key, category, name, body, collect.timeout)
            .await?;
        let mut replies = Vec::new();
        let deadline = tokio::time::Instant::now() + collect.timeout;
        while collect.max_replies.is_none_or(|m| replies.len() < m) {
            match tokio::time::timeout_at(deadline, stream.rx.recv()).await {
                Ok(Some(b)) => replies.push(json_of(&b)),
                _ => break,
            }
            if collect.done.is_some_and(|done| done(&replies)) {
                break;
            }
        }
        Ok(replies)
    }

    /// Sends a request and hands its replies over as they come (a peer's
    /// snapshot, part after part). `expires` is the request's TTL.
    pub async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        category: &str,
        name: &str,
        mut body: Map<String, Value>,
        expires: Duration,
    ) -> Result<Replies<'_>, BusError> {
        let msg_id = body
            .get("Msg-ID")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(new_msg_id);
        let server_id = body
            .get("Server-ID")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.reply_queue.clone());
        let extra = body.clone();
        self.identity.stamp(&mut body, category, name, &msg_id);
        // Caller-supplied envelope keys (a test's own App-Name, say) win.
        for (k, v) in extra {
            body.insert(k, v);
        }
        body.insert("Server-ID".into(), Value::String(server_id));
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiters
            .lock()
            .expect("waiters")
            .insert(msg_id.clone(), tx);
        // From here the waiter is removed when `Replies` is dropped, sent or not.
        let replies = Replies {
            client: self,
            msg_id,
            rx,
        };
        self.publisher
            .send(&Outgoing::json(exchange, routing_key, &body).expiring(expires))
            .await?;
        Ok(replies)
    }

    /// [`BusClient::send`] for one of [`crate::kapi::asks`].
    pub async fn send_ask(&self, ask: Ask, expires: Duration) -> Result<Replies<'_>, BusError> {
        self.send(
            ask.exchange,
            &ask.routing_key,
            ask.category,
            ask.name,
            ask.body,
            expires,
        )
        .await
    }

    /// Sends one of [`crate::kapi::asks`] and collects matching replies.
    pub async fn ask(&self, ask: Ask, collect: Collect) -> Result<Vec<Value>, BusError> {
        self.request(
            ask.exchange,
            &ask.routing_key,
            ask.category,
            ask.name,
            ask.body,
            collect,
        )
        .await
    }

    pub async fn close(self) {
        super::close_channel(&self.replies).await;
        self.publisher.close().await;
        if let Conn::Own(c) = &self.conn {
            super::close_connection(c).await;
        }
    }
}
