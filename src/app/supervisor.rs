//! Connect, back off, live a session: a broker fault ends a session and the
//! supervisor opens a new one with backoff, never giving up on its own. A
//! session declares the topology, consumes events at once, warms the registry
//! if it must, then serves the shared queues.

use std::sync::{Arc, RwLockReadGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::routes::{COMMANDS_AT_ONCE, Route, Start, routes};
use super::state::State;
use super::{health, housekeeping};
use crate::bus::{BusError, Consume, ServeEnd, Session};
use crate::cluster::warmup;
use crate::config::{Settings, redact_url};
use crate::intake;
use crate::registry::Registry;
use crate::stats::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusStatus {
    Connecting,
    Connected,
    Disconnected,
    Stopped,
}

pub struct WorkerHandle {
    pub state: Arc<State>,
    status: watch::Receiver<BusStatus>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    pub fn status(&self) -> BusStatus {
        *self.status.borrow()
    }

    /// Waits until the bus session is up (topology declared, consumers started).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.status.clone();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s == BusStatus::Connected))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.state.registry()
    }

    /// Waits until the registry is warm and the shared queues are served.
    pub async fn wait_warm(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.state.is_warm() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops taking messages, finishes those in flight, closes the connection,
    /// all within the configured grace period; past it, what is left is
    /// abandoned (unacked requests go back to the queue for another instance)
    /// and the answer is false.
    pub async fn shutdown(mut self) -> bool {
        self.shutdown.cancel();
        let grace = Duration::from_secs(self.state.settings.cluster.shutdown_grace_secs);
        if tokio::time::timeout(grace, &mut self.task).await.is_ok() {
            return true;
        }
        self.task.abort();
        error!(
            node = %self.state.identity.node,
            grace_secs = grace.as_secs(),
            "in-flight work did not finish within the grace period; abandoned"
        );
        false
    }
}

/// Starts the worker in the background; it connects (and reconnects) on its own.
pub fn spawn(settings: Settings) -> WorkerHandle {
    let state = State::new(settings);
    let (tx, rx) = watch::channel(BusStatus::Connecting);
    let shutdown = CancellationToken::new();
    housekeeping::spawn(&state, &shutdown);
    health::spawn(&state, rx.clone(), &shutdown);
    let task = tokio::spawn(supervise(state.clone(), tx, shutdown.clone()));
    WorkerHandle {
        state,
        status: rx,
        shutdown,
        task,
    }
}

async fn supervise(
    state: Arc<State>,
    status: watch::Sender<BusStatus>,
    shutdown: CancellationToken,
) {
    let max = Duration::from_secs(state.settings.amqp.max_backoff_secs.max(1));
    let mut backoff = Duration::from_millis(100);
    let url = redact_url(&state.settings.amqp.url);
    info!(node = %state.identity.node, instance = %state.instance, broker = %url, "starting");
    loop {
        let mut connected = false;
        let began = Instant::now();
        let result = session(&state, &status, &shutdown, &mut connected).await;
        if shutdown.is_cancelled() {
            break;
        }
        // A session that lived a while was healthy: retry fast. One that fails
        // right after connecting (a persistent fault) keeps backing off.
        if connected && began.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(100);
        }
        let _ = status.send(BusStatus::Disconnected);
        Stats::inc(&state.stats.reconnects);
        match result {
            Ok(end) => warn!(?end, "a consumer ended; reconnecting"),
            Err(error) => {
                warn!(%error, broker = %url, retry_in_ms = backoff.as_millis() as u64, "disconnected from the broker; keeping the registry and retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max);
    }
    state.clients.close();
    let _ = status.send(BusStatus::Stopped);
    info!(node = %state.identity.node, "stopped");
}

/// One connection's life: declare, consume, warm up if needed, then serve the
/// shared queues; end at the first fault.
async fn session(
    state: &Arc<State>,
    status: &watch::Sender<BusStatus>,
    shutdown: &CancellationToken,
    connected: &mut bool,
) -> Result<ServeEnd, BusError> {
    let mut bus = Session::open(&state.settings.amqp.url, &state.identity.node).await?;
    let events_queue = state
        .topology
        .queue("events")
        .ok_or_else(|| BusError::Topology("no queue has role events".into()))?;
    // A lost event queue (broker restart, deletion) means missed events: warm again.
    let need_warmup = !state.is_warm() || !bus.queue_exists(&events_queue.name).await?;
    if need_warmup {
        state.start_warmup();
    }
    bus.declare(&state.topology).await?;
    let publisher = bus.publisher(COMMANDS_AT_ONCE).await?;
    let stop = shutdown.child_token();
    let (now, later): (Vec<Route>, Vec<Route>) = routes(state, &publisher)
        .into_iter()
        .partition(|s| s.start == Start::Now);
    // Each consumer is a task of its own, so a backlog of events never delays a request.
    let mut consumers = JoinSet::new();
    let start = |route: Route| {
        let queue = state.topology.queue(route.role).map(|q| q.name.clone());
        let (bus, publisher, stop) = (&bus, publisher.clone(), stop.clone());
        let prefetch = state.settings.amqp.prefetch;
        async move {
            let queue = queue
                .ok_or_else(|| BusError::Topology(format!("no queue has role {}", route.role)))?;
            let consume = Consume {
                queue,
                prefetch,
                concurrency: route.concurrency,
            };
            bus.consumer(consume, publisher, route.handler, stop).await
        }
    };
    // Every way out of the session (a consumer ending, a fault, shutdown)
    // passes below: the consumers are stopped and the channels closed before
    // the connection.
    let first: Result<ServeEnd, BusError> = async {
        for svc in now {
            consumers.spawn(start(svc).await?);
        }
        *connected = true;
        let _ = status.send(BusStatus::Connected);
        info!(
            node = %state.identity.node,
            channels = state.registry().len(),
            warming = need_warmup,
            "connected; topology declared, consuming events"
        );

        if need_warmup {
            let began = Instant::now();
            // Events keep flowing into the buffer while we wait for the snapshot; a
            // consumer that ends meanwhile ends the session.
            let (source, added) = tokio::select! {
                r = warmup::run(state) => r?,
                end = consumers.join_next() => return joined(end),
            };
            Stats::inc(&state.stats.warmups);
            let applied = intake::end_warmup(state, &source.to_string());
            info!(
                from = %source,
                added,
                buffered_events = applied,
                channels = state.registry().len(),
                took_ms = began.elapsed().as_millis() as u64,
                "registry warm; serving requests"
            );
        }
        for svc in later {
            consumers.spawn(start(svc).await?);
        }
        joined(consumers.join_next().await)
    }
    .await;
    // Whatever ended first, stop the others; in-flight requests finish.
    stop.cancel();
    while let Some(r) = consumers.join_next().await {
        if let Err(e) = joined(Some(r)) {
            warn!(error = %e, "consumer failed while stopping");
        }
    }
    bus.close().await;
    first
}

fn joined(
    r: Option<Result<Result<ServeEnd, BusError>, tokio::task::JoinError>>,
) -> Result<ServeEnd, BusError> {
    match r {
        Some(Ok(end)) => end,
        Some(Err(e)) => Err(BusError::Topology(format!("consumer task failed: {e}"))),
        None => Ok(ServeEnd::Cancelled),
    }
}
