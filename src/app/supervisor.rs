//! Connect, back off, live a session: a broker fault ends a session and the
//! supervisor opens a new one, never giving up on its own. A session declares
//! the topology, consumes events at once, warms the registry if it must, then
//! serves the shared queues.
//!
//! With several brokers, `amqp.brokers` chooses how: `failover` (Kazoo's
//! `kz_amqp_connections`) keeps one session on the most preferred broker that
//! answers, moves to the next at once when it fails, and moves back (after
//! finishing what is in flight) when a preferred one answers again; `all`
//! (Kamailio's kazoo module) keeps a session on every broker, each answering
//! what it delivers.
//!
//! Over 400 lines as one job: the life of the bus sessions (the two ways of
//! choosing brokers share one session, its warm-up and its blocked handling).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLockReadGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::bus_status::BusStatus;
use super::exchange_watch::ExchangeWatch;
use super::routes::{COMMANDS_AT_ONCE, Route, Start, routes};
use super::state::{BrokerView, LinkChange, State};
use super::{advertise, health, housekeeping};
use crate::bus::{BusError, Consume, LinkEvent, Refusal, ServeEnd, Session};
use crate::cluster::warmup::{self, WarmupError};
use crate::config::{BrokerMode, Settings};
use crate::intake;
use crate::registry::Registry;
use crate::stats::Stats;

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

    /// Each configured broker, most preferred first: connected, blocked, the
    /// last connection error.
    pub fn brokers(&self) -> Vec<BrokerView> {
        self.state.broker_views()
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
        self.state.adverts.stop();
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
    advertise::spawn(&state, &shutdown);
    health::spawn(&state, rx.clone(), &shutdown);
    let task = tokio::spawn(supervise(state.clone(), Arc::new(tx), shutdown.clone()));
    WorkerHandle {
        state,
        status: rx,
        shutdown,
        task,
    }
}

type StatusTx = Arc<watch::Sender<BusStatus>>;

/// How often, while on a less preferred broker, the preferred ones are tried.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// How often a remote zone's session looks whether the registry is warm yet.
const WARM_POLL: Duration = Duration::from_millis(50);

/// A session that lived this long was healthy: the next retry starts fast.
const HEALTHY: Duration = Duration::from_secs(5);

/// A preferred broker whose session failed before it consumed (it accepts
/// connections but not our session: a refused declare, a missing
/// permission) is not moved back to for this long, so the worker does not flap.
const HOLD_DOWN: Duration = Duration::from_secs(30);

async fn supervise(state: Arc<State>, status: StatusTx, shutdown: CancellationToken) {
    let shown: Vec<String> = (0..state.brokers.len())
        .map(|i| format!("{} ({})", state.brokers[i].shown(), state.zones.zone(i)))
        .collect();
    let mode = state.settings.amqp.brokers;
    let zone = state.settings.amqp.local_zone();
    info!(node = %state.identity.node, instance = %state.instance, %zone, brokers = ?shown, ?mode, "starting");
    // Each remote zone's broker is consumed on its own, whatever the local
    // zone's mode (Kazoo's federated listeners: one per remote broker).
    let mut each = JoinSet::new();
    let on_its_own = |i: usize, each: &mut JoinSet<()>| {
        each.spawn(one_broker(
            state.clone(),
            status.clone(),
            i,
            shutdown.clone(),
        ));
    };
    for i in state.zones.remote() {
        on_its_own(i, &mut each);
    }
    match mode {
        BrokerMode::Failover => failover(&state, &status, &shutdown).await,
        BrokerMode::All => state.zones.local().for_each(|i| on_its_own(i, &mut each)),
    }
    while each.join_next().await.is_some() {}
    state.clients.close().await;
    let _ = status.send(BusStatus::Stopped);
    info!(node = %state.identity.node, "stopped");
}

/// Reconnection waits: `amqp.min_backoff_ms` doubling up to `amqp.max_backoff_secs`.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(settings: &Settings) -> Self {
        let (min, max) = (settings.min_backoff(), settings.max_backoff());
        Self {
            min,
            max,
            next: min,
        }
    }

    fn take(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Kazoo's rule: one session, on the local zone's most preferred broker that answers.
async fn failover(state: &Arc<State>, status: &StatusTx, shutdown: &CancellationToken) {
    let n = state.zones.local().len();
    let mut backoff = Backoff::new(&state.settings);
    let mut next: Option<(usize, Session)> = None;
    let mut failed: Option<usize> = None;
    let mut held_down: Vec<Option<Instant>> = vec![None; n];
    while !shutdown.is_cancelled() {
        let found = match next.take() {
            Some(found) => Some(found),
            // The one that just failed is tried last: the others first, at once.
            None => reach(state, (0..n).filter(|i| Some(*i) != failed).chain(failed)).await,
        };
        let Some((i, bus)) = found else {
            let wait = backoff.take();
            warn!(
                retry_in_ms = wait.as_millis() as u64,
                "no broker reachable; keeping the registry and retrying"
            );
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => continue,
            }
        };
        let began = Instant::now();
        let leave = shutdown.child_token();
        let served = AtomicBool::new(false);
        let live = session(state, status, i, bus, leave.clone(), &served);
        tokio::pin!(live);
        let moved = tokio::select! {
            result = &mut live => {
                if !shutdown.is_cancelled() {
                    ended(state, i, &result);
                }
                None
            }
            back = reclaim(state, i, &held_down) => Some(back),
        };
        if let Some((j, bus)) = moved {
            info!(from = %state.brokers[i].shown(), to = %state.brokers[j].shown(), "a preferred broker answers again; moving back to it once the requests in hand are answered");
            leave.cancel();
            let result = live.await;
            if let Err(error) = result {
                warn!(%error, broker = %state.brokers[i].shown(), "the session being left ended with an error");
            }
            next = Some((j, bus));
            failed = None;
        } else {
            failed = Some(i);
            if !served.load(Ordering::Relaxed) {
                held_down[i] = Some(Instant::now() + HOLD_DOWN);
                // Refused before it served (a declare the broker denies, a
                // missing permission): wait as for a broker that does not
                // answer, or the worker reconnects as fast as it is refused.
                let wait = backoff.take();
                debug!(retry_in_ms = wait.as_millis() as u64, broker = %state.brokers[i].shown(), "the session failed before it served; backing off");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        if began.elapsed() > HEALTHY {
            backoff.reset();
        }
    }
}

/// Kamailio's model: broker `i` has a session of its own, kept up for as long
/// as the worker runs.
async fn one_broker(state: Arc<State>, status: StatusTx, i: usize, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(&state.settings);
    while !shutdown.is_cancelled() {
        let began = Instant::now();
        let served = AtomicBool::new(false);
        if let Some((_, bus)) = reach(&state, [i]).await {
            let result = session(&state, &status, i, bus, shutdown.child_token(), &served).await;
            if shutdown.is_cancelled() {
                break;
            }
            ended(&state, i, &result);
        }
        // Only a session that served and lasted starts the waits afresh.
        if served.load(Ordering::Relaxed) && began.elapsed() > HEALTHY {
            backoff.reset();
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff.take()) => {}
        }
    }
}

/// The first of `order` that answers. Each failure is logged and kept for
/// `status`; the broker is named by its redacted URL. A remote zone's broker
/// that stays down is logged once, until it answers again.
async fn reach(state: &State, order: impl IntoIterator<Item = usize>) -> Option<(usize, Session)> {
    for i in order {
        let broker = &state.brokers[i];
        let zone = state.zones.zone(i);
        let said = !state.zones.is_local(i) && state.broker_views()[i].last_error.is_some();
        match Session::open(broker, &state.identity.node).await {
            Ok(bus) => return Some((i, bus)),
            Err(error) => {
                Stats::inc(&state.stats.connect_failures);
                match error.refusal() {
                    Some(r) => refused(state, broker.shown(), &r),
                    None if said => {
                        debug!(broker = %broker.shown(), %zone, %error, "remote zone's broker still unreachable")
                    }
                    None if !state.zones.is_local(i) => {
                        warn!(broker = %broker.shown(), %zone, %error, "cannot connect to a remote zone's broker; retrying with backoff (logged once until it answers)")
                    }
                    None => {
                        warn!(broker = %broker.shown(), %zone, %error, "cannot connect to the broker")
                    }
                }
                state.set_link(i, LinkChange::Failed(error.to_string()));
            }
        }
    }
    None
}

/// A refusal that the configuration must fix (a wrong password or vhost, a
/// missing permission, a queue or exchange in the way, a feature the broker
/// denies) is said once per distinct broker text, naming what to change;
/// the backoff goes on (a broker being set up must still be waited for).
fn refused(state: &State, broker: &str, r: &Refusal) {
    if state.first_refusal(&r.broker_says) {
        error!(key = r.key, %broker, broker_says = %r.broker_says, "configuration error: {}; retrying with backoff (logged once)", r.fix);
    } else {
        debug!(%broker, broker_says = %r.broker_says, "still refused by the broker");
    }
}

/// Resolves once a broker preferred to `i` answers, with its session; never
/// while on the most preferred. Brokers held down until a time are skipped.
async fn reclaim(state: &State, i: usize, held_down: &[Option<Instant>]) -> (usize, Session) {
    loop {
        tokio::time::sleep(RECLAIM_EVERY).await;
        let now = Instant::now();
        for j in (0..i).filter(|j| held_down[*j].is_none_or(|until| until <= now)) {
            match Session::open(&state.brokers[j], &state.identity.node).await {
                Ok(bus) => return (j, bus),
                Err(error) => {
                    debug!(broker = %state.brokers[j].shown(), %error, "preferred broker still unreachable");
                    state.set_link(j, LinkChange::Failed(error.to_string()));
                }
            }
        }
    }
}

/// Logs how a session on broker `i` ended and counts the reconnect.
fn ended(state: &State, i: usize, result: &Result<ServeEnd, SessionError>) {
    Stats::inc(&state.stats.reconnects);
    let broker = state.brokers[i].shown();
    match result {
        Ok(end) => warn!(?end, %broker, "a consumer ended; reconnecting"),
        Err(error) => {
            state.set_link(i, LinkChange::Failed(error.to_string()));
            match error.refusal() {
                Some(r) => refused(state, broker, &r),
                None => {
                    warn!(%error, %broker, "disconnected from the broker; keeping the registry and reconnecting")
                }
            }
        }
    }
}

/// Marks broker `i` up or down and the worker's status with it.
fn link(state: &State, status: &StatusTx, i: usize, change: LinkChange) {
    let any = state.set_link(i, change);
    let _ = status.send(if any {
        BusStatus::Connected
    } else {
        BusStatus::Disconnected
    });
}

/// One connection's life on broker `i`: declare, consume, warm up if
/// needed, then serve the shared queues; end at the first fault or when
/// `leave` is cancelled (in-flight requests are finished first).
/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Warmup(#[from] WarmupError),
}

impl SessionError {
    fn refusal(&self) -> Option<Refusal> {
        match self {
            SessionError::Bus(e) => e.refusal(),
            SessionError::Warmup(_) => None,
        }
    }
}

async fn session(
    state: &Arc<State>,
    status: &StatusTx,
    i: usize,
    mut bus: Session,
    leave: CancellationToken,
    served: &AtomicBool,
) -> Result<ServeEnd, SessionError> {
    let broker = state.brokers[i].shown();
    let zone = state.zones.zone(i);
    // A remote zone's session consumes and answers, but only the local
    // zone's warms the registry (its requests go to the local primary).
    let remote = !state.zones.is_local(i);
    let events_queue = state
        .topology
        .queue("events")
        .ok_or_else(|| BusError::Topology("no queue has role events".into()))?;
    // A lost event queue (broker restart, deletion, a broker new to us in
    // failover) means missed events: warm again. With every broker consumed
    // at once (the `all` mode, a remote zone), a broker first met now lost
    // nothing the initial warm-up did not carry. A broker that failed since
    // our last session on it may have restarted: the durable event queue is
    // back, but not the transient events it held.
    let first_here = !state.has_served(i);
    let faulted = state.failed_since_up(i);
    let one_at_a_time = state.settings.amqp.brokers == BrokerMode::Failover && !remote;
    let lost =
        (faulted || !bus.queue_exists(&events_queue.name).await?) && (one_at_a_time || !first_here);
    for a in bus.declare(&state.topology).await? {
        warn!(queue = %a.queue, %broker, broker_says = %a.broker_says, "a queue of ours exists with other flags (an earlier release's transient queue, or another amqp.queue_type): using it as it is; once no instance of the earlier release consumes it, delete it (rabbitmqctl delete_queue) and ours is declared at the next reconnect");
    }
    // Kazoo 5.1+'s `channels` exchange: bound once it exists, checked again
    // while the session lives.
    let mut exchange = ExchangeWatch::default();
    exchange.check(state, &bus).await?;
    let counted = state.clone();
    let on_error = Box::new(move || Stats::inc(&counted.stats.channel_errors));
    let publisher = bus.publisher(COMMANDS_AT_ONCE, on_error).await?;
    let mut blocked_notices = bus.link_events();
    let stop = leave.child_token();
    let (now, later): (Vec<Route>, Vec<Route>) = routes(state, &publisher)
        .into_iter()
        .partition(|s| s.start == Start::Now);
    // Events (the only route that never publishes) go on even while the
    // broker blocks us; everything that answers is held then.
    let (events, now): (Vec<Route>, Vec<Route>) = now.into_iter().partition(|r| r.role == "events");
    let answering: Vec<&Route> = now.iter().chain(&later).collect();
    // Each consumer is a task of its own, so a backlog of events never delays a request.
    let mut consumers = JoinSet::new();
    let mut requests = JoinSet::new();
    let start = |route: &Route| {
        let queue = state.topology.queue(route.role).map(|q| q.name.clone());
        let (bus, publisher, stop) = (&bus, publisher.clone(), stop.clone());
        let prefetch = state.settings.amqp.prefetch;
        let (concurrency, handler, role) = (route.concurrency, route.handler.clone(), route.role);
        async move {
            let queue =
                queue.ok_or_else(|| BusError::Topology(format!("no queue has role {role}")))?;
            let consume = Consume {
                queue,
                prefetch,
                concurrency,
            };
            bus.consumer(consume, publisher, handler, stop).await
        }
    };
    // Every way out of the session (a consumer ending, a fault, leaving)
    // passes below: the consumers are stopped and the channels closed before
    // the connection.
    let first: Result<ServeEnd, SessionError> = async {
        let warming = if (!state.is_warm() && !remote) || lost {
            Some(state.warming.lock().await)
        } else {
            None
        };
        // Another session may have warmed the registry while this one waited.
        let need_warmup = warming.is_some() && (!state.is_warm() || lost);
        if need_warmup {
            state.start_warmup();
        }
        for route in &events {
            consumers.spawn(start(route).await?);
        }
        for route in &now {
            requests.spawn(start(route).await?);
        }
        link(state, status, i, LinkChange::Up(publisher.clone()));
        served.store(true, Ordering::Relaxed);
        info!(
            node = %state.identity.node,
            %broker,
            %zone,
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
                end = requests.join_next(), if !requests.is_empty() => return joined(end),
            };
            Stats::inc(&state.stats.warmups);
            let applied = intake::end_warmup(state, &source.to_string());
            let took_ms = began.elapsed().as_millis() as u64;
            Stats::set(&state.stats.warmup_channels, added as u64);
            Stats::set(&state.stats.warmup_ms, took_ms);
            info!(
                from = %source,
                added,
                buffered_events = applied,
                channels = state.registry().len(),
                took_ms,
                "registry warm; serving requests"
            );
        }
        drop(warming);
        // A remote zone's session serves once a local one warmed the registry.
        while !state.is_warm() {
            tokio::select! {
                end = consumers.join_next() => return joined(end),
                end = requests.join_next(), if !requests.is_empty() => return joined(end),
                _ = tokio::time::sleep(WARM_POLL) => {}
            }
        }
        for route in &later {
            requests.spawn(start(route).await?);
        }
        super::systemd::serving(state, broker);
        let mut blocked = false;
        loop {
            tokio::select! {
                end = consumers.join_next() => return joined(end),
                end = requests.join_next(), if !requests.is_empty() => return joined(end),
                failed = exchange.run(state, &bus) => match failed {
                    Err(e) => return Err(e.into()),
                    Ok(never) => match never {},
                },
                notice = blocked_notices.next() => match notice {
                    Some(LinkEvent::Blocked(reason)) if !blocked => {
                        blocked = true;
                        // Whatever they would answer could not leave before the
                        // broker unblocks, past its requester's deadline: let go
                        // of the requests (unacked, they go back to their queues,
                        // where their TTL still runs) and take no more.
                        requests.abort_all();
                        while requests.join_next().await.is_some() {}
                        state.set_link(i, LinkChange::Blocked(true));
                        warn!(%broker, %reason, "the broker blocked our connection (resource alarm): taking no requests from it until it unblocks; events are still applied");
                    }
                    Some(LinkEvent::Unblocked) if blocked => {
                        blocked = false;
                        for route in &answering {
                            requests.spawn(start(route).await?);
                        }
                        state.set_link(i, LinkChange::Blocked(false));
                        info!(%broker, "the broker unblocked our connection; taking requests again");
                    }
                    Some(_) => {}
                    None => return Ok(ServeEnd::Cancelled),
                },
            }
        }
    }
    .await;
    // Whatever ended first, stop the others; in-flight requests finish.
    stop.cancel();
    for set in [&mut consumers, &mut requests] {
        while let Some(r) = set.join_next().await {
            if let Err(e) = joined(Some(r)) {
                warn!(error = %e, "consumer failed while stopping");
            }
        }
    }
    if state.is_primary(i) {
        advertise::farewell(state, &publisher).await;
    }
    link(state, status, i, LinkChange::Down);
    bus.close().await;
    first
}

fn joined(
    r: Option<Result<Result<ServeEnd, BusError>, tokio::task::JoinError>>,
) -> Result<ServeEnd, SessionError> {
    match r {
        Some(Ok(end)) => Ok(end?),
        Some(Err(e)) => Err(BusError::Topology(format!("consumer task failed: {e}")).into()),
        None => Ok(ServeEnd::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_configured_first_wait_up_to_the_cap() {
        let mut s = Settings::defaults();
        // Kazoo's own: 1.5 s doubling to 5 s.
        s.amqp.min_backoff_ms = 1500;
        s.amqp.max_backoff_secs = 5;
        let mut b = Backoff::new(&s);
        let waits: Vec<u64> = (0..4).map(|_| b.take().as_millis() as u64).collect();
        assert_eq!(waits, [1500, 3000, 5000, 5000]);
        b.reset();
        assert_eq!(b.take(), Duration::from_millis(1500));
    }
}
