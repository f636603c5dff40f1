//! The baseline: a responder doing nothing but answer, over the worker's own
//! transport (`bus::consumer`: prefetch, handler tasks, reply published with a
//! confirm, then ack) from queues declared like the worker's.

use std::borrow::Cow;
use std::sync::Arc;

use kazoo_channels::app::COMMANDS_AT_ONCE;
use kazoo_channels::bus::topology::QueueDef;
use kazoo_channels::bus::{self, BusPublisher};
use kazoo_channels::kapi::{Outgoing, PublishOutcome, ReplyAddress};
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A pre-serialised reply and where its `Msg-ID` sits in it.
pub struct Template {
    bytes: Vec<u8>,
    at: usize,
    len: usize,
}

impl Template {
    pub fn new(bytes: Vec<u8>, msg_id: &str) -> Self {
        let needle = format!("\"Msg-ID\":\"{msg_id}\"");
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("the reply carries its Msg-ID")
            + needle.len()
            - msg_id.len()
            - 1;
        Self {
            bytes,
            at,
            len: msg_id.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The reply with `msg_id` in place of the template's.
    fn with(&self, msg_id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + msg_id.len());
        out.extend_from_slice(&self.bytes[..self.at]);
        out.extend_from_slice(msg_id.as_bytes());
        out.extend_from_slice(&self.bytes[self.at + self.len..]);
        out
    }
}

/// What the echo reads of a request: only where to answer, and with which id.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Msg-ID", borrow)]
    msg_id: Cow<'a, str>,
    #[serde(rename = "Server-ID", borrow)]
    server_id: Cow<'a, str>,
}

fn answer(template: &Template, body: &[u8]) -> Vec<Outgoing> {
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
        return Vec::new();
    };
    ReplyAddress::parse(&env.server_id)
        .map(|to| Outgoing::reply(&to, template.with(&env.msg_id)))
        .into_iter()
        .collect()
}

/// One queue of the echo and how it answers.
pub struct Responder {
    pub queue: QueueDef,
    pub reply: Template,
    /// Published (and confirmed) before the reply, as a command's metaflow is.
    pub first: Option<Outgoing>,
}

impl Responder {
    async fn respond(&self, publisher: &BusPublisher, body: &[u8]) -> Vec<Outgoing> {
        if let Some(first) = &self.first {
            match publisher.send(first).await {
                Ok(PublishOutcome::Confirmed) => {}
                _ => return Vec::new(),
            }
        }
        answer(&self.reply, body)
    }
}

pub struct Echo {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Echo {
    /// Declares each queue and answers what arrives on it, on one connection
    /// and one publisher, as the worker serves its queues.
    pub async fn start(url: &str, prefetch: u16, responders: Vec<Responder>) -> Self {
        let conn = Arc::new(bus::connect(url, "echo@bench").await.expect("connects"));
        let setup = conn.create_channel().await.expect("a channel");
        let publisher = BusPublisher::open_with(&conn, COMMANDS_AT_ONCE)
            .await
            .expect("a publisher");
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for responder in responders {
            bus::declare_queue(&setup, &responder.queue)
                .await
                .expect("declared");
            let queue = responder.queue.name.clone();
            let (responder, p) = (Arc::new(responder), publisher.clone());
            let spec = bus::Consume {
                queue,
                prefetch,
                concurrency: usize::from(prefetch),
            };
            let consume = bus::consumer(
                &conn,
                spec,
                publisher.clone(),
                // Answered in the handler's task, where the worker answers.
                Arc::new(move |msg| {
                    let (r, p) = (responder.clone(), p.clone());
                    Box::pin(async move { r.respond(&p, &msg.body).await })
                }),
                stop.child_token(),
            )
            .await
            .expect("consuming");
            let conn = conn.clone();
            tasks.spawn(async move {
                let _ = consume.await;
                drop(conn);
            });
        }
        Self { stop, tasks }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.join_all().await;
    }
}
