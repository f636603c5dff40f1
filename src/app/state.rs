//! What the handlers share, below everything that uses it: the settings, our
//! identity, the registry, the counters, the warm-up gate, and the outcome a
//! handler hands back to the routes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::deadline::Deadlines;
use crate::bus::{self, Topology};
use crate::config::Settings;
use crate::kapi::{Identity, Incoming, Outgoing};
use crate::registry::{Registry, RegistryConfig};
use crate::stats::{Stats, Tally};

/// State shared by the session, the handlers and the housekeeping tasks.
pub struct State {
    pub settings: Settings,
    pub identity: Identity,
    pub instance: String,
    pub topology: Topology,
    pub registry: RwLock<Registry>,
    pub stats: Stats,
    pub deadlines: Deadlines,
    pub started: Instant,
    /// Connections for our own requests (warm-up, reconcile).
    pub clients: bus::ClientPool,
    warm: AtomicBool,
    warmed_from: Mutex<String>,
    /// While warming, events wait here (in arrival order) for the snapshot.
    held: Mutex<Option<Vec<Incoming>>>,
}

/// What handling one delivery came to: the messages to publish (confirmed
/// before the delivery is acked) and what to count.
#[derive(Debug, Default)]
pub struct Outcome {
    pub publish: Vec<Outgoing>,
    pub tally: Tally,
}

impl Outcome {
    /// Nothing to publish.
    pub fn silent(tally: Tally) -> Self {
        Self {
            publish: Vec::new(),
            tally,
        }
    }

    pub fn publish(publish: Vec<Outgoing>, tally: Tally) -> Self {
        Self { publish, tally }
    }
}

impl State {
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
            deadlines: Deadlines::new(Duration::from_millis(settings.queries.request_deadline_ms)),
            started: Instant::now(),
            clients: bus::client_pool(&settings.amqp.url, &format!("{node} requests"), 2)
                .expect("a pool of a validated URL on the tokio runtime"),
            warm: AtomicBool::new(false),
            warmed_from: Mutex::new(String::new()),
            held: Mutex::new(None),
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

    pub fn registry(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a copy of `msg` if a warm-up is under way (true), for
    /// [`State::end_warmup`] to hand back.
    pub fn hold_if_warming(&self, msg: &Incoming) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_mut() {
            Some(held) => {
                held.push(msg.clone());
                true
            }
            None => false,
        }
    }

    /// Holds events until [`State::end_warmup`]. The instance counts as
    /// warming until then, so status says so and a session that ends
    /// mid-warm-up leaves the next one to warm up again (the held events are
    /// released only by a warm-up).
    pub fn start_warmup(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        self.warm.store(false, Ordering::Release);
        held.get_or_insert_with(Vec::new);
    }

    /// Hands the held events to `apply` in arrival order, then marks the
    /// registry warm. The lock is held throughout, so an event arriving
    /// meanwhile waits until the held ones are applied. Returns how many.
    pub fn end_warmup(&self, from: &str, mut apply: impl FnMut(&Incoming)) -> usize {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let events = held.take().unwrap_or_default();
        events.iter().for_each(&mut apply);
        *self.warmed_from.lock().unwrap_or_else(|p| p.into_inner()) = from.to_owned();
        self.warm.store(true, Ordering::Release);
        events.len()
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
