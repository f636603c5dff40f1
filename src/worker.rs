//! The running whapp: a supervised bus session feeding the registry and serving
//! requests, plus the periodic housekeeping. A broker fault ends a session; the
//! supervisor opens a new one with backoff and never gives up on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::bus::{self, BusError, BusPublisher, Handler, ServeEnd, Topology};
use crate::cluster::{self, warmup};
use crate::commands;
use crate::config::{Settings, redact_url};
use crate::intake;
use crate::kapi::request::Request;
use crate::kapi::{Identity, Incoming, Outgoing};
use crate::queries;
use crate::registry::{Registry, RegistryConfig};
use crate::stats::Stats;

/// State shared by the session, the handlers and the housekeeping tasks.
pub struct Shared {
    pub settings: Settings,
    pub identity: Identity,
    pub instance: String,
    pub topology: Topology,
    pub registry: RwLock<Registry>,
    pub stats: Stats,
    pub started: Instant,
    /// Connections for our own requests (warm-up, reconcile).
    pub clients: bus::ClientPool,
    warm: AtomicBool,
    warmed_from: Mutex<String>,
    /// While warming, events wait here (in arrival order) for the snapshot.
    buffer: Mutex<Option<Vec<Incoming>>>,
}

impl Shared {
    pub fn new(settings: Settings) -> Arc<Self> {
        let instance = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let node = if settings.node.name.is_empty() {
            format!("kazoo-channels-{instance}@{}", hostname())
        } else {
            settings.node.name.clone()
        };
        let registry = Registry::new(RegistryConfig {
            reorder_window: settings.reorder_window(),
            tombstone_ttl: Duration::from_secs(settings.registry.tombstone_secs),
            ..RegistryConfig::default()
        });
        Arc::new(Self {
            identity: Identity::new(node.clone()),
            topology: Topology::for_instance(&instance),
            instance,
            registry: RwLock::new(registry),
            stats: Stats::default(),
            started: Instant::now(),
            clients: bus::client_pool(&settings.amqp.url, &format!("{node} requests"), 2)
                .expect("a pool of a validated URL on the tokio runtime"),
            warm: AtomicBool::new(false),
            warmed_from: Mutex::new(String::new()),
            buffer: Mutex::new(None),
            settings,
        })
    }

    pub fn is_warm(&self) -> bool {
        self.warm.load(Ordering::Acquire)
    }

    pub fn warmed_from(&self) -> String {
        self.warmed_from
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies an event, or holds it while a warm-up is under way.
    fn take_event(&self, msg: Incoming) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = buffer.as_mut() {
            held.push(msg);
            return;
        }
        drop(buffer);
        intake::apply_event(&self.registry, &self.stats, &msg);
    }

    /// Holds events until `finish_warmup`. The instance counts as warming until
    /// then, so status says so and a session that ends mid-warm-up leaves the
    /// next one to warm up again (the buffer is drained only by a warm-up).
    fn start_buffering(&self) {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        self.warm.store(false, Ordering::Release);
        buffer.get_or_insert_with(Vec::new);
    }

    /// Applies what arrived during the warm-up, after the snapshot, and goes
    /// back to applying events as they come. Holding the buffer lock keeps the
    /// order: an event arriving now waits until the held ones are applied.
    fn finish_warmup(&self, from: &warmup::Source) -> usize {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let held = buffer.take().unwrap_or_default();
        for msg in &held {
            intake::apply_event(&self.registry, &self.stats, msg);
        }
        *self.warmed_from.lock().unwrap_or_else(|p| p.into_inner()) = from.to_string();
        self.warm.store(true, Ordering::Release);
        held.len()
    }

    pub fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusStatus {
    Connecting,
    Connected,
    Disconnected,
    Stopped,
}

/// When a consumer may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once: events (buffered while warming) and the per-instance status.
    Now,
    /// Once the registry is warm: the shared request queues.
    WhenWarm,
}

/// A consumer of one queue of the topology.
pub struct Service {
    pub role: &'static str,
    /// 1 = in order (events); more = that many requests at once.
    pub concurrency: usize,
    pub start: Start,
    pub handler: Handler,
}

/// A handler for a request answered from `Shared` alone.
fn request_handler(
    shared: &Arc<Shared>,
    answer: fn(&Shared, &Request) -> Vec<Outgoing>,
) -> Handler {
    let s = shared.clone();
    Arc::new(move |msg| {
        let out = match Request::parse(&msg) {
            Ok(req) => answer(&s, &req),
            Err(error) => {
                Stats::inc(&s.stats.requests_rejected);
                warn!(routing_key = %msg.routing_key, %error, "request rejected");
                Vec::new()
            }
        };
        Box::pin(std::future::ready(out))
    })
}

/// Commands handled at once, each with its `mandatory` metaflow publish on a
/// channel of its own (see `BusPublisher::open_with`).
pub const COMMANDS_AT_ONCE: usize = 8;

/// `publisher` is the session's: handlers that publish before they reply
/// (commands) use it through [`crate::kapi::Publish`].
fn services(shared: &Arc<Shared>, publisher: &BusPublisher) -> Vec<Service> {
    let s = shared.clone();
    let prefetch = usize::from(shared.settings.amqp.prefetch);
    vec![
        Service {
            role: "events",
            concurrency: 1,
            start: Start::Now,
            handler: Arc::new(move |msg| {
                s.take_event(msg);
                Box::pin(std::future::ready(Vec::new()))
            }),
        },
        Service {
            role: "status",
            concurrency: 1,
            start: Start::Now,
            handler: request_handler(shared, |s, req| {
                cluster::status::reply(s, req).into_iter().collect()
            }),
        },
        Service {
            role: "snapshots",
            concurrency: prefetch.min(4),
            start: Start::WhenWarm,
            handler: request_handler(shared, |s, req| {
                let out = cluster::snapshot::replies(&s.registry(), &s.identity, req);
                tracing::info!(msg_id = %req.msg_id, peer = %req.str("Node").unwrap_or_default(), parts = out.len(), "snapshot sent to a starting peer");
                out
            }),
        },
        Service {
            role: "commands",
            // Requests are independent: handled in tasks (up to the prefetch), so a
            // slow confirm does not hold the ones behind it.
            concurrency: COMMANDS_AT_ONCE,
            start: Start::WhenWarm,
            handler: {
                let (s, p) = (shared.clone(), publisher.clone());
                Arc::new(move |msg| {
                    let (s, p) = (s.clone(), p.clone());
                    Box::pin(async move {
                        let reply = commands::handle(&s.registry, &s.identity, &p, &msg.body).await;
                        if reply.is_some() {
                            Stats::inc(&s.stats.commands_answered);
                        }
                        reply.into_iter().collect()
                    })
                })
            },
        },
        Service {
            role: "queries",
            // As many at once as the broker hands us; each is a short read.
            concurrency: prefetch,
            start: Start::WhenWarm,
            handler: {
                let q = shared.clone();
                Arc::new(move |msg| {
                    let q = q.clone();
                    Box::pin(async move {
                        queries::respond(
                            &q.registry,
                            &q.identity,
                            &q.settings.queries,
                            &q.stats,
                            &msg,
                        )
                    })
                })
            },
        },
    ]
}

pub struct WorkerHandle {
    pub shared: Arc<Shared>,
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
        self.shared.registry()
    }

    /// Waits until the registry is warm and the shared queues are served.
    pub async fn wait_warm(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.shared.is_warm() {
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
        let grace = Duration::from_secs(self.shared.settings.cluster.shutdown_grace_secs);
        if tokio::time::timeout(grace, &mut self.task).await.is_ok() {
            return true;
        }
        self.task.abort();
        error!(
            node = %self.shared.identity.node,
            grace_secs = grace.as_secs(),
            "in-flight work did not finish within the grace period; abandoned"
        );
        false
    }
}

/// Starts the worker in the background; it connects (and reconnects) on its own.
pub fn spawn(settings: Settings) -> WorkerHandle {
    let shared = Shared::new(settings);
    let (tx, rx) = watch::channel(BusStatus::Connecting);
    let shutdown = CancellationToken::new();
    spawn_housekeeping(&shared, &shutdown);
    let task = tokio::spawn(supervise(shared.clone(), tx, shutdown.clone()));
    WorkerHandle {
        shared,
        status: rx,
        shutdown,
        task,
    }
}

async fn supervise(
    shared: Arc<Shared>,
    status: watch::Sender<BusStatus>,
    shutdown: CancellationToken,
) {
    let max = Duration::from_secs(shared.settings.amqp.max_backoff_secs.max(1));
    let mut backoff = Duration::from_millis(100);
    let url = redact_url(&shared.settings.amqp.url);
    info!(node = %shared.identity.node, instance = %shared.instance, broker = %url, "starting");
    loop {
        let mut connected = false;
        let began = Instant::now();
        let result = session(&shared, &status, &shutdown, &mut connected).await;
        if shutdown.is_cancelled() {
            break;
        }
        // A session that lived a while was healthy: retry fast. One that fails
        // right after connecting (a persistent fault) keeps backing off.
        if connected && began.elapsed() > Duration::from_secs(5) {
            backoff = Duration::from_millis(100);
        }
        let _ = status.send(BusStatus::Disconnected);
        Stats::inc(&shared.stats.reconnects);
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
    shared.clients.close();
    let _ = status.send(BusStatus::Stopped);
    info!(node = %shared.identity.node, "stopped");
}

/// One connection's life: declare, consume, warm up if needed, then serve the
/// shared queues; end at the first fault.
async fn session(
    shared: &Arc<Shared>,
    status: &watch::Sender<BusStatus>,
    shutdown: &CancellationToken,
    connected: &mut bool,
) -> Result<ServeEnd, BusError> {
    let conn = bus::connect(&shared.settings.amqp.url, &shared.identity.node).await?;
    let events_queue = shared
        .topology
        .queue("events")
        .ok_or_else(|| BusError::Topology("no queue has role events".into()))?;
    // A lost event queue (broker restart, deletion) means missed events: warm again.
    let need_warmup = !shared.is_warm() || !bus::queue_exists(&conn, &events_queue.name).await?;
    if need_warmup {
        shared.start_buffering();
    }
    let setup = conn.create_channel().await?;
    bus::declare(&setup, &shared.topology).await?;
    bus::close_channel(&setup).await;
    let publisher = BusPublisher::open_with(&conn, COMMANDS_AT_ONCE).await?;
    let stop = shutdown.child_token();
    let (now, later): (Vec<Service>, Vec<Service>) = services(shared, &publisher)
        .into_iter()
        .partition(|s| s.start == Start::Now);
    // Each consumer is a task of its own, so a backlog of events never delays a request.
    let mut consumers = JoinSet::new();
    let start = |svc: Service| {
        let queue = shared.topology.queue(svc.role).map(|q| q.name.clone());
        let (conn, publisher, stop) = (&conn, publisher.clone(), stop.clone());
        let prefetch = shared.settings.amqp.prefetch;
        async move {
            let queue = queue
                .ok_or_else(|| BusError::Topology(format!("no queue has role {}", svc.role)))?;
            bus::consumer(
                conn,
                queue,
                prefetch,
                svc.concurrency,
                publisher,
                svc.handler,
                stop,
            )
            .await
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
            node = %shared.identity.node,
            channels = shared.registry().len(),
            warming = need_warmup,
            "connected; topology declared, consuming events"
        );

        if need_warmup {
            let began = Instant::now();
            // Events keep flowing into the buffer while we wait for the snapshot; a
            // consumer that ends meanwhile ends the session.
            let (source, added) = tokio::select! {
                r = warmup::run(shared) => r?,
                end = consumers.join_next() => return joined(end),
            };
            Stats::inc(&shared.stats.warmups);
            let applied = shared.finish_warmup(&source);
            info!(
                from = %source,
                added,
                buffered_events = applied,
                channels = shared.registry().len(),
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
    bus::close_session(&conn, &publisher).await;
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

fn spawn_housekeeping(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    tokio::spawn(cluster::reaper::run(shared.clone(), shutdown.clone()));
    let s = shared.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let dropped = s
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .expire(Instant::now());
            if dropped > 0 {
                warn!(
                    dropped,
                    "early call events dropped: their CREATE never came"
                );
            }
        }
    });
    let every = shared.settings.log.summary_interval_secs;
    if every == 0 {
        return;
    }
    let s = shared.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let period = Duration::from_secs(every);
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        let (mut applied, mut rejected) = (0, 0);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let a = Stats::get(&s.stats.events_applied);
            let r = Stats::get(&s.stats.events_rejected);
            let secs = period.as_secs_f64();
            info!(
                channels = s.registry().len(),
                events_applied_per_s = format!("{:.1}", (a - applied) as f64 / secs),
                events_rejected_per_s = format!("{:.1}", (r - rejected) as f64 / secs),
                events_applied_total = a,
                events_rejected_total = r,
                queries_answered_total = Stats::get(&s.stats.requests_answered),
                queries_rejected_total = Stats::get(&s.stats.requests_rejected),
                commands_answered_total = Stats::get(&s.stats.commands_answered),
                "summary"
            );
            (applied, rejected) = (a, r);
        }
    });
}
