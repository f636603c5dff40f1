//! Consumers: deliveries in, handler replies published with confirms, then ack.
//! A request is acked only after everything its handler returned is confirmed,
//! so a worker that dies mid-request leaves it to be redelivered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
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
/// With `concurrency` 1 deliveries are handled in order, inline; above that
/// each is handled in its own task (the prefetch bounds how many at once).
pub async fn consumer(
    conn: &Connection,
    queue: String,
    prefetch: u16,
    concurrency: usize,
    publisher: BusPublisher,
    handler: Handler,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = Result<ServeEnd, BusError>> + Send + 'static, BusError> {
    let channel = conn.create_channel().await?;
    Ok(serve(
        channel,
        queue,
        prefetch,
        concurrency,
        publisher,
        handler,
        shutdown,
    ))
}

async fn serve(
    channel: Channel,
    queue: String,
    prefetch: u16,
    concurrency: usize,
    publisher: BusPublisher,
    handler: Handler,
    shutdown: CancellationToken,
) -> Result<ServeEnd, BusError> {
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
            next = consumer.next() => match next {
                None if stopping => break ServeEnd::Shutdown,
                None => break ServeEnd::Cancelled,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(mut d)) => {
                    let msg = incoming(&mut d);
                    let fut = handler(msg);
                    let publisher = publisher.clone();
                    let work = async move {
                        let outs = fut.await;
                        deliver(&publisher, outs).await?;
                        d.acker.ack(BasicAckOptions::default()).await?;
                        Ok::<(), BusError>(())
                    };
                    if concurrency <= 1 {
                        work.await?;
                    } else {
                        inflight.spawn(work);
                    }
                }
            }
        }
    };
    while let Some(done) = inflight.join_next().await {
        if let Ok(Err(e)) = done {
            warn!(error = %e, queue, "in-flight request failed during stop");
        }
    }
    debug!(queue, ?end, "consumer ended");
    Ok(end)
}

async fn deliver(publisher: &BusPublisher, outs: Vec<Outgoing>) -> Result<(), BusError> {
    for out in outs {
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
