//! Consumers: deliveries in, handler replies published with confirms, then ack.
//! A request is acked only after everything its handler returned is confirmed,
//! so a worker that dies mid-request leaves it to be redelivered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{BusError, BusPublisher, incoming};
use crate::kapi::{Incoming, Outgoing, PublishOutcome};

pub type HandlerFuture = Pin<Box<dyn Future<Output = Vec<Outgoing>> + Send>>;
/// Turns one delivery into the messages to publish before it is acked.
pub type Handler = Arc<dyn Fn(Incoming) -> HandlerFuture + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// We were asked to stop; in-flight deliveries were finished.
    Shutdown,
    /// The broker cancelled our consumer (queue deleted) or closed the channel.
    Cancelled,
}

/// Opens a channel for a consumer of `queue` and returns the consuming loop,
/// ready to be spawned as a task of its own (so a busy queue never starves
/// another). It runs until shutdown or until the broker ends the consumer.
/// With `concurrency` 1 deliveries are handled in order, inline, and acked in
/// batches (see [`InOrder`]); above that each is handled in its own task (the
/// prefetch bounds how many at once) and acked on its own.
pub async fn consumer(
    conn: &Connection,
    consume: Consume,
    publisher: BusPublisher,
    handler: Handler,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = Result<ServeEnd, BusError>> + Send + 'static, BusError> {
    let channel = conn.create_channel().await?;
    Ok(serve(channel, consume, publisher, handler, shutdown))
}

/// What to consume, and how.
#[derive(Debug, Clone)]
pub struct Consume {
    pub queue: String,
    pub prefetch: u16,
    /// 1: in order, inline; more: each delivery in a task of its own.
    pub concurrency: usize,
}

async fn serve(
    channel: Channel,
    consume: Consume,
    publisher: BusPublisher,
    handler: Handler,
    shutdown: CancellationToken,
) -> Result<ServeEnd, BusError> {
    let Consume {
        queue,
        prefetch,
        concurrency,
    } = consume;
    let queue = queue.as_str();
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("{queue}.{}", uuid::Uuid::new_v4().simple());
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut inflight: JoinSet<Result<(), BusError>> = JoinSet::new();
    let mut in_order = InOrder::new(prefetch);
    let mut stopping = false;
    let end = loop {
        tokio::select! {
            biased;
            // Stop taking new deliveries, but handle those already delivered to
            // us: the stream yields them, then ends once the cancel is done.
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                if channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await.is_err() {
                    break ServeEnd::Shutdown;
                }
            }
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                done.map_err(|e| BusError::Topology(format!("handler task failed: {e}")))??;
            }
            Some(confirmed) = in_order.confirming.next(), if !in_order.confirming.is_empty() => {
                in_order.confirmed(confirmed?);
                in_order.ack_if_due().await?;
            }
            next = consumer.next() => match next {
                None if stopping => break ServeEnd::Shutdown,
                None => break ServeEnd::Cancelled,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(mut d)) => {
                    let msg = incoming(&mut d);
                    let fut = handler(msg);
                    if concurrency <= 1 {
                        // The handler runs here, so the next delivery's waits for
                        // it; only its outputs' confirms and its ack are left to
                        // overlap with what follows.
                        let outs = fut.await;
                        in_order.handled(d.acker, outs, &publisher);
                        in_order.ack_if_due().await?;
                    } else {
                        let publisher = publisher.clone();
                        inflight.spawn(async move {
                            let outs = fut.await;
                            deliver(&publisher, outs).await?;
                            d.acker.ack(BasicAckOptions::default()).await?;
                            Ok::<(), BusError>(())
                        });
                    }
                }
            },
            // Nothing else to do at this moment: ack what is ready now rather
            // than hold it until a batch fills (a quiet queue acks at once).
            () = std::future::ready(()), if in_order.ready.is_some() => in_order.ack().await?,
        }
    };
    if let Err(e) = in_order.finish().await {
        warn!(error = %e, queue, "acking handled deliveries failed during stop");
    }
    while let Some(done) = inflight.join_next().await {
        if let Ok(Err(e)) = done {
            warn!(error = %e, queue, "in-flight request failed during stop");
        }
    }
    super::close_channel(&channel).await;
    debug!(queue, ?end, "consumer ended");
    Ok(end)
}

type Confirming = Pin<Box<dyn Future<Output = Result<Acker, BusError>> + Send>>;

/// The acks of a consumer that handles one delivery at a time. Awaiting each
/// delivery's confirms and ack before taking the next capped the event queue
/// at a few thousand a second (a round trip through lapin per event), so:
/// handlers still run one after the other in delivery order, their outputs
/// are confirmed in the background, and a single `multiple` ack covers every
/// delivery whose handler ran and whose outputs (and all earlier ones') are
/// confirmed. The prefetch bounds how many wait.
struct InOrder {
    /// Deliveries whose outputs are being confirmed, in delivery order. Only
    /// their acks are ordered: the outputs of consecutive deliveries may be
    /// published and confirmed in any order, as with concurrent consumers.
    confirming: FuturesOrdered<Confirming>,
    /// The latest delivery that may be acked, with all before it.
    ready: Option<Acker>,
    /// Deliveries covered by `ready`.
    waiting: usize,
    /// Ack once this many wait, so the broker's window never runs dry.
    batch: usize,
}

impl InOrder {
    fn new(prefetch: u16) -> Self {
        Self {
            confirming: FuturesOrdered::new(),
            ready: None,
            waiting: 0,
            batch: usize::from(prefetch / 4).max(1),
        }
    }

    fn handled(&mut self, acker: Acker, outs: Vec<Outgoing>, publisher: &BusPublisher) {
        if outs.is_empty() && self.confirming.is_empty() {
            self.confirmed(acker);
        } else if outs.is_empty() {
            // Acked after the deliveries before it, whose outputs are unconfirmed.
            self.confirming
                .push_back(Box::pin(std::future::ready(Ok(acker))));
        } else {
            let publisher = publisher.clone();
            self.confirming.push_back(Box::pin(async move {
                deliver(&publisher, outs).await?;
                Ok(acker)
            }));
        }
    }

    fn confirmed(&mut self, acker: Acker) {
        self.ready = Some(acker);
        self.waiting += 1;
    }

    async fn ack_if_due(&mut self) -> Result<(), BusError> {
        if self.waiting >= self.batch {
            self.ack().await?;
        }
        Ok(())
    }

    async fn ack(&mut self) -> Result<(), BusError> {
        if let Some(acker) = self.ready.take() {
            self.waiting = 0;
            acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok(())
    }

    /// Waits for the outstanding confirms and acks everything confirmed, up
    /// to the first delivery whose outputs failed.
    async fn finish(&mut self) -> Result<(), BusError> {
        let mut failed = None;
        while let Some(confirmed) = self.confirming.next().await {
            match confirmed {
                Ok(acker) => self.confirmed(acker),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.ack().await?;
        failed.map_or(Ok(()), Err)
    }
}

async fn deliver(publisher: &BusPublisher, outs: Vec<Outgoing>) -> Result<(), BusError> {
    for out in outs {
        // Handlers check their addresses; this is the last line before lapin,
        // which panics on a name past 255 bytes.
        if let Err(error) = out.check() {
            warn!(exchange = %out.exchange, %error, "a message AMQP cannot address was not published");
            continue;
        }
        match publisher.send(&out).await? {
            PublishOutcome::Confirmed => {}
            outcome => warn!(
                exchange = %out.exchange,
                routing_key = %out.routing_key,
                ?outcome,
                "reply not delivered by the broker"
            ),
        }
    }
    Ok(())
}
