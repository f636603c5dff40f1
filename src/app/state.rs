//! What the handlers share, below everything that uses it: the settings, our
//! identity, the registry, the counters, the warm-up gate, and the outcome a
//! handler hands back to the routes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::advert_state::Adverts;
use super::deadline::Deadlines;
pub use super::handled::Outcome;
use crate::bus::{self, Broker, BusPublisher, Topology};
use crate::config::Settings;
use crate::kapi::{Identity, Incoming};
use crate::registry::{Registry, RegistryConfig};
use crate::stats::Stats;
use crate::zones::Layout;

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
    /// The brokers: the local zone's, most preferred first (Kazoo's order:
    /// see [`Settings::brokers`]), then the remote zones' ([`Layout`]).
    pub brokers: Vec<Broker>,
    /// The zone of each broker.
    pub zones: Layout,
    /// What we know of each broker, in the same order.
    links: Mutex<Vec<Link>>,
    /// A connection for our own requests (warm-up, reconcile), to the primary.
    pub clients: bus::ClientPool,
    /// One warm-up at a time (with `amqp.brokers = "all"` every session may want one).
    pub warming: tokio::sync::Mutex<()>,
    warm: AtomicBool,
    warmed_from: Mutex<String>,
    /// Configuration refusals (a wrong password or vhost) already logged.
    refusals: Mutex<Vec<String>>,
    /// While warming, events wait here (in arrival order) for the snapshot.
    held: Mutex<Option<Vec<Incoming>>>,
    /// Our adverts on Kazoo's `nodes` exchange.
    pub adverts: Adverts,
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
        let zones = settings
            .layout()
            .expect("brokers of validated settings can be read");
        Arc::new(Self {
            links: Mutex::new(vec![Link::default(); zones.brokers.len()]),
            brokers: zones.brokers.clone(),
            zones,
            identity: Identity::new(node.clone()),
            topology: Topology::for_instance(&instance).with_queue_type(settings.amqp.queue_type),
            instance,
            registry: RwLock::new(registry),
            stats: Stats::default(),
            deadlines: Deadlines::new(Duration::from_millis(settings.queries.request_deadline_ms)),
            started: Instant::now(),
            clients: bus::ClientPool::new(format!("{node} requests")),
            warming: tokio::sync::Mutex::new(()),
            warm: AtomicBool::new(false),
            warmed_from: Mutex::new(String::new()),
            refusals: Mutex::new(Vec::new()),
            held: Mutex::new(None),
            adverts: Adverts::default(),
            settings,
        })
    }

    /// True the first time the broker refuses with `message`.
    pub fn first_refusal(&self, message: &str) -> bool {
        let mut seen = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|m| m == message) {
            return false;
        }
        seen.push(message.to_owned());
        true
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

/// One broker as a session sees it.
#[derive(Clone, Default)]
struct Link {
    connected: bool,
    blocked: bool,
    /// A session has consumed from it before (its queues, if gone, were lost).
    served: bool,
    last_error: Option<String>,
    /// The session's publisher while connected: our own messages go out on
    /// the primary's.
    publisher: Option<BusPublisher>,
}

/// One broker, for `status` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    /// Redacted.
    pub url: String,
    /// The zone it is in.
    pub zone: String,
    pub connected: bool,
    pub blocked: bool,
    pub last_error: Option<String>,
}

/// A change to one broker's [`Link`].
pub enum LinkChange {
    Up(BusPublisher),
    Down,
    Blocked(bool),
    Failed(String),
}

impl State {
    fn links(&self) -> std::sync::MutexGuard<'_, Vec<Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a change to broker `i`; our own requests follow the primary
    /// (always a local zone's broker). Returns whether any broker is connected.
    pub fn set_link(&self, i: usize, change: LinkChange) -> bool {
        let mut links = self.links();
        let link = &mut links[i];
        match change {
            LinkChange::Up(p) => {
                link.connected = true;
                link.served = true;
                link.blocked = false;
                link.last_error = None;
                link.publisher = Some(p);
            }
            LinkChange::Down => {
                link.connected = false;
                link.blocked = false;
                link.publisher = None;
            }
            LinkChange::Blocked(b) => link.blocked = b,
            LinkChange::Failed(e) => link.last_error = Some(e),
        }
        let primary = self.zones.local().find(|j| links[*j].connected);
        let any = links.iter().any(|l| l.connected);
        drop(links);
        self.clients.point_at(primary.map(|p| &self.brokers[p]));
        any
    }

    /// Whether broker `i` is the primary: the local zone's most preferred
    /// connected broker.
    pub fn is_primary(&self, i: usize) -> bool {
        let links = self.links();
        self.zones.local().find(|j| links[*j].connected) == Some(i)
    }

    /// Whether broker `i` failed (refused, unreachable, or a session on it
    /// ended by a fault) since a session last came up on it.
    pub fn failed_since_up(&self, i: usize) -> bool {
        self.links()[i].last_error.is_some()
    }

    /// Whether a session consumed from broker `i` before.
    pub fn has_served(&self, i: usize) -> bool {
        self.links()[i].served
    }

    /// The publisher of the primary (the local zone's most preferred
    /// connected broker): where our own messages go (metaflows to Konami,
    /// adverts), never to another zone.
    pub fn primary_publisher(&self) -> Option<BusPublisher> {
        let links = self.links();
        self.zones
            .local()
            .map(|i| &links[i])
            .find(|l| l.connected)
            .and_then(|l| l.publisher.clone())
    }

    pub fn broker_views(&self) -> Vec<BrokerView> {
        self.links()
            .iter()
            .zip(&self.brokers)
            .enumerate()
            .map(|(i, (l, b))| BrokerView {
                url: b.shown().to_owned(),
                zone: self.zones.zone(i).to_owned(),
                connected: l.connected,
                blocked: l.blocked,
                last_error: l.last_error.clone(),
            })
            .collect()
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
