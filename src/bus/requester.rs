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

use super::{BusError, BusPublisher, Topology, connect, declare};
use crate::kapi::asks::Ask;
use crate::kapi::compress;
use crate::kapi::exchanges::TARGETED;
use crate::kapi::{Identity, Outgoing, PublishOutcome, new_msg_id};

/// The largest reply a client decodes: an unscoped `Fields: "all"` answer of
/// a few hundred thousand channels is hundreds of megabytes once gunzipped.
const MAX_REPLY_BYTES: usize = 1 << 30;

/// A pool of connections for clients (deadpool recycles broken ones).
pub type ClientPool = deadpool_lapin::Pool;

/// A pool of at most `size` client connections to `url`, opened on demand.
pub fn client_pool(url: &str, connection_name: &str, size: usize) -> Result<ClientPool, BusError> {
    let cfg = deadpool_lapin::Config {
        url: Some(url.to_owned()),
        pool: Some(deadpool_lapin::PoolConfig::new(size)),
    };
    let name = connection_name.to_owned();
    cfg.create_pool(
        move || lapin::ConnectionProperties::default().with_connection_name(name.as_str().into()),
        deadpool_lapin::Runtime::Tokio1,
    )
    .map_err(|e| BusError::Pool(e.to_string()))
}

enum Conn {
    Own(Connection),
    Pooled(deadpool_lapin::Connection),
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

type Waiters = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>>;

pub struct BusClient {
    conn: Conn,
    /// The reply queue's channel (exclusive: the queue goes with it).
    replies: lapin::Channel,
    publisher: BusPublisher,
    reply_queue: String,
    waiters: Waiters,
    identity: Identity,
    stray: Arc<std::sync::atomic::AtomicU64>,
}

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
    rx: mpsc::UnboundedReceiver<Value>,
}

impl Replies<'_> {
    /// The next reply, or `None` when none came `within` this long.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
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
        Self::on(Conn::Own(connect(url, app_name).await?), app_name).await
    }

    /// A client on a connection of `pool`, which goes back to the pool when the
    /// client is closed: the worker's occasional requests (warm-up, reconcile)
    /// reuse one connection instead of opening one each time.
    pub async fn from_pool(pool: &ClientPool, app_name: &str) -> Result<Self, BusError> {
        let conn = pool
            .get()
            .await
            .map_err(|e| BusError::Pool(e.to_string()))?;
        Self::on(Conn::Pooled(conn), app_name).await
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
        let (w, s) = (waiters.clone(), stray.clone());
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let encoding = d.properties.content_encoding().as_ref().map(|e| e.as_str());
                let body = compress::decode(d.data, encoding, MAX_REPLY_BYTES);
                let Some(v) = body
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                else {
                    s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                };
                let id = v
                    .get("Msg-ID")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let tx = w.lock().expect("waiters").get(&id).cloned();
                match tx {
                    Some(tx) => {
                        let _ = tx.send(v);
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
        })
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
                Ok(Some(v)) => replies.push(v),
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
