//! The running whapp: a supervised bus session feeding the registry and serving
//! requests, plus the periodic housekeeping. A broker fault ends a session; the
//! supervisor opens a new one with backoff and never gives up on its own.

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use futures_util::future::select_all;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::bus::{self, BusError, BusPublisher, Handler, ServeEnd, Topology};
use crate::config::{Settings, redact_url};
use crate::intake;
use crate::kapi::Identity;
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
            identity: Identity::new(node),
            topology: Topology::for_instance(&instance),
            instance,
            registry: RwLock::new(registry),
            stats: Stats::default(),
            started: Instant::now(),
            settings,
        })
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

/// A consumer of one queue of the topology.
pub struct Service {
    pub role: &'static str,
    /// 1 = in order (events); more = that many requests at once.
    pub concurrency: usize,
    pub handler: Handler,
}

fn services(shared: &Arc<Shared>) -> Vec<Service> {
    let s = shared.clone();
    let q = shared.clone();
    vec![
        Service {
            role: "events",
            concurrency: 1,
            handler: Arc::new(move |msg| {
                intake::apply_event(&s.registry, &s.stats, &msg);
                Box::pin(std::future::ready(Vec::new()))
            }),
        },
        Service {
            role: "queries",
            // As many at once as the broker hands us; each is a short read.
            concurrency: usize::from(shared.settings.amqp.prefetch),
            handler: Arc::new(move |msg| {
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
            }),
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

    /// Stops taking messages, finishes those in flight, closes the connection.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Runs until the task ends (a shutdown requested elsewhere).
    pub async fn join(self) {
        let _ = self.task.await;
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
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
        let result = session(&shared, &status, &shutdown, &mut connected).await;
        if shutdown.is_cancelled() {
            break;
        }
        if connected {
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
    let _ = status.send(BusStatus::Stopped);
    info!(node = %shared.identity.node, "stopped");
}

/// One connection's life: declare, consume every service, end at the first fault.
async fn session(
    shared: &Arc<Shared>,
    status: &watch::Sender<BusStatus>,
    shutdown: &CancellationToken,
    connected: &mut bool,
) -> Result<ServeEnd, BusError> {
    let conn = bus::connect(&shared.settings.amqp.url, &shared.identity.node).await?;
    let setup = conn.create_channel().await?;
    bus::declare(&setup, &shared.topology).await?;
    let publisher = BusPublisher::open(&conn).await?;
    let services = services(shared);
    let stop = shutdown.child_token();
    let mut consumers = Vec::new();
    for svc in services {
        let Some(q) = shared.topology.queue(svc.role) else {
            return Err(BusError::Topology(format!(
                "no queue has role {}",
                svc.role
            )));
        };
        consumers.push(Box::pin(bus::serve(
            &conn,
            &q.name,
            shared.settings.amqp.prefetch,
            svc.concurrency,
            &publisher,
            svc.handler,
            stop.clone(),
        )));
    }
    *connected = true;
    let _ = status.send(BusStatus::Connected);
    info!(node = %shared.identity.node, channels = shared.registry().len(), "connected; topology declared, consuming");
    let (first, _, rest) = select_all(consumers).await;
    // Whatever ended first, stop the others; in-flight requests finish.
    stop.cancel();
    for r in futures_util::future::join_all(rest).await {
        if let Err(e) = r {
            warn!(error = %e, "consumer failed while stopping");
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    first
}

fn spawn_housekeeping(shared: &Arc<Shared>, shutdown: &CancellationToken) {
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
                "summary"
            );
            (applied, rejected) = (a, r);
        }
    });
}
