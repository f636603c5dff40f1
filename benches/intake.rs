//! Event intake: how fast a backlog of call events reaches the registry,
//! against a baseline consumer that only decodes each event's JSON and acks it.
//!
//! Both sides drain a queue pre-filled with the same 200,000 events (one
//! publish, with confirms, to `callevt` reaches both queues): complete calls,
//! Kazoo-shaped by the simulator (CREATE, ANSWER, BRIDGE of both legs, later
//! the DESTROYs), many calls overlapping so their events interleave, and a few
//! calls left up so the registry ends with a known number of channels.
//!
//! - ours: the real worker on the vhost and its own events queue. Its intake
//!   is paused while the queue fills by holding the registry's write lock (the
//!   event handler waits on it), and timed from the lock's release until the
//!   worker has counted every event applied.
//! - baseline: `bus::consumer` (the worker's transport, same prefetch, one
//!   delivery at a time as the event queue is consumed) on a queue declared
//!   and bound like the worker's events queue; its handler decodes the JSON
//!   and returns nothing, so each delivery is simply acked. Timed from the
//!   start of consuming until the last event is decoded.
//!
//! Two rounds, the sides in turns (baseline, ours, ours, baseline), each on a
//! runtime of its own as separate processes would be; the ratio is ours over
//! baseline, events over seconds summed per side.
//!
//! `cargo bench --bench intake`. Needs `rabbitmqctl` (a private vhost is created
//! and deleted). `INTAKE_EVENTS` (default 200000): events per run.

#[allow(dead_code)]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kazoo_channels::app::{COMMANDS_AT_ONCE, State};
use kazoo_channels::bus::topology::{QueueDef, Topology};
use kazoo_channels::bus::{self, BusPublisher, ServeEnd};
use kazoo_channels::cli::simulate::{SimAccount, SimCall};
use kazoo_channels::kapi::{Incoming, Outgoing, PublishOutcome};
use kazoo_channels::stats::Stats;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use support::common::TestVhost;
use support::{Machine, runtime};

const GOAL: f64 = 0.9;
/// Calls whose DESTROYs are never sent, per run: their legs stay in the registry.
const LEFT_UP: usize = 1000;
/// Calls set up between a call's CREATE and its DESTROY: how many overlap.
const OVERLAP: usize = 2000;
const ACCOUNTS: usize = 200;
/// Events per publish batch: confirms overlap within a batch, memory stays small.
const BATCH: usize = 4000;
/// A run that counts nothing new for this long has lost events.
const STALL: Duration = Duration::from_secs(30);
/// Publishing channels: each awaits one publish at a time, so several overlap.
const FILLERS: usize = 8;
/// How long each side runs before the other's turn.
const SLICE: Duration = Duration::from_secs(1);

fn main() {
    let began = Instant::now();
    let events: usize = std::env::var("INTAKE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let machine = Machine::probe();
    support::log_to_sink();
    let vhost = TestVhost::unwatched("bench-intake");
    let (worker_rt, base_rt, client_rt) = (runtime("worker"), runtime("base"), runtime("client"));

    let worker = worker_rt.block_on(support::start_worker(&vhost));
    let shared = worker.state.clone();
    let prefetch = shared.settings.amqp.prefetch;
    let base_queue = baseline_queue(&shared.topology);
    let filler = client_rt.block_on(Filler::connect(&vhost, &base_queue));

    // Each side's handler takes a lock per event (ours the registry's, the
    // baseline's a gate of its own); holding it pauses that side.
    let gate = Arc::new(Mutex::new(()));
    let mut held: [Option<Box<dyn Held + '_>>; 2] = [
        Some(Box::new(gate.lock().expect("gate"))),
        Some(Box::new(shared.registry.write().expect("registry lock"))),
    ];
    let base = base_rt.block_on(Baseline::start(&vhost, &base_queue, prefetch, gate.clone()));

    let mut rounds = Vec::new();
    let mut left_up = 0;
    for _ in 0..2 {
        let traffic = Traffic::new(events);
        // One publish reaches both queues, bound alike to `callevt`; both sides
        // are paused, so both queues fill untouched (but for the prefetch).
        client_rt.block_on(filler.fill(&traffic));
        let (base_before, ours_before) = (base.handled(), Counts::of(&shared));
        let secs = take_turns(
            events as u64,
            [&|| base.handled() - base_before, &|| {
                Counts::of(&shared).total() - ours_before.total()
            }],
            &mut held,
            [&|| Box::new(gate.lock().expect("gate")), &|| {
                Box::new(shared.registry.write().expect("registry lock"))
            }],
        );
        let d = Counts::of(&shared).since(&ours_before);
        left_up += traffic.left_up * 2;
        // The registry is ours to read once the worker is let go (its queue is empty).
        held[1] = None;
        assert_eq!(
            (d.rejected, d.ignored),
            (0, 0),
            "every event applied, none rejected or ignored"
        );
        assert_eq!(
            shared.registry().len(),
            left_up,
            "the registry holds exactly the legs of the calls left up"
        );
        rounds.push(secs);
        held[1] = Some(Box::new(shared.registry.write().expect("registry lock")));
    }
    // Both sides resumed, so the baseline's stop can drain what it holds.
    held.iter_mut().for_each(|h| *h = None);
    base_rt.block_on(base.stop());

    // Every delivery was acked: both queues are empty, nothing unacknowledged.
    worker_rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    let events_queue = &shared.topology.queue("events").expect("events queue").name;
    for q in [events_queue, &base_queue.name] {
        assert_eq!(vhost.queue_depth(q), Some((0, 0)), "{q}: all acked");
    }
    client_rt.block_on(filler.close());
    worker_rt.block_on(worker.shutdown());
    drop(vhost);

    println!();
    println!("{machine}");
    println!(
        "Event intake: {events} call events per round from a pre-filled queue ({} calls of 8 events, {LEFT_UP} of them left up, {OVERLAP} overlapping), prefetch {prefetch}; the sides take turns of about {} s (A B B A …)",
        (events + 2 * LEFT_UP) / 8,
        SLICE.as_secs_f64()
    );
    println!();
    println!(
        "| {:>5} | {:<8} | {:>7} | {:>7} | {:>8} | {:>5} |\n|{}|",
        "round",
        "side",
        "events",
        "seconds",
        "events/s",
        "ratio",
        [7, 10, 9, 9, 10, 7]
            .iter()
            .map(|w| format!("{:->1$}", ":", w))
            .collect::<Vec<_>>()
            .join("|")
    );
    let rate = |secs: f64| events as f64 / secs;
    for (i, [b, o]) in rounds.iter().enumerate() {
        println!(
            "| {:>5} | {:<8} | {events:>7} | {b:>7.2} | {:>8.0} | {:>5} |",
            i + 1,
            "baseline",
            rate(*b),
            ""
        );
        println!(
            "| {:>5} | {:<8} | {events:>7} | {o:>7.2} | {:>8.0} | {:>5.2} |",
            i + 1,
            "ours",
            rate(*o),
            b / o
        );
    }
    let (b, o) = rounds
        .iter()
        .fold((0.0, 0.0), |(b, o), [rb, ro]| (b + rb, o + ro));
    let ratio = b / o;
    println!();
    println!(
        "ratio ours/baseline over both rounds {ratio:.2} (goal ≥ {GOAL}): {}; the registry ended with {left_up} channels, as expected",
        if ratio >= GOAL { "pass" } else { "MISS" }
    );
    println!("total {:.0} s", began.elapsed().as_secs_f64());
}

/// A held lock of any kind.
trait Held {}
impl<T> Held for T {}

type Pause<'p, 'a> = &'p dyn Fn() -> Box<dyn Held + 'a>;

/// Lets the two sides run in turns of about [`SLICE`] (A B B A …), each
/// paused while the other runs, until each has handled `n` events (`done`).
/// Returns each side's seconds: its turns, the last one up to its last event.
/// Taking turns spreads the machine's changing load (other work on a shared
/// machine) over both sides alike.
fn take_turns<'a>(
    n: u64,
    done: [&dyn Fn() -> u64; 2],
    held: &mut [Option<Box<dyn Held + 'a>>; 2],
    pause: [Pause<'_, 'a>; 2],
) -> [f64; 2] {
    let mut secs = [0.0; 2];
    let mut idle = [Duration::ZERO; 2];
    for turn in 0.. {
        let side = [0, 1, 1, 0][turn % 4];
        let at = done[side]();
        if at >= n {
            if done[1 - side]() >= n {
                break;
            }
            continue;
        }
        let t = Instant::now();
        held[side] = None;
        let finished = loop {
            std::thread::sleep(Duration::from_micros(500));
            let d = done[side]();
            if d >= n {
                assert_eq!(d, n, "no more events handled than were sent");
                break true;
            }
            if t.elapsed() >= SLICE {
                break false;
            }
        };
        let ended = t.elapsed();
        held[side] = Some(pause[side]());
        // A turn ends once the side is paused, so what it handled meanwhile counts.
        secs[side] += if finished { ended } else { t.elapsed() }.as_secs_f64();
        if done[side]() == at {
            idle[side] += ended;
            assert!(idle[side] < STALL, "stalled at {at} of {n} events");
        } else {
            idle[side] = Duration::ZERO;
        }
    }
    secs
}

/// The worker's events queue under another name: bound alike, it gets a copy
/// of every event published for the worker.
fn baseline_queue(topology: &Topology) -> QueueDef {
    let mut q = topology.queue("events").expect("events queue").clone();
    q.name = "kazoo-channels-bench.baseline.events".into();
    q
}

/// The event counters of the worker.
struct Counts {
    applied: u64,
    ignored: u64,
    rejected: u64,
}

impl Counts {
    fn of(shared: &State) -> Self {
        Self {
            applied: Stats::get(&shared.stats.events_applied),
            ignored: Stats::get(&shared.stats.events_ignored),
            rejected: Stats::get(&shared.stats.events_rejected),
        }
    }

    fn total(&self) -> u64 {
        self.applied + self.ignored + self.rejected
    }

    fn since(&self, before: &Counts) -> Counts {
        Counts {
            applied: self.applied - before.applied,
            ignored: self.ignored - before.ignored,
            rejected: self.rejected - before.rejected,
        }
    }
}

/// One run's calls and the order their events go out in.
struct Traffic {
    calls: Vec<SimCall>,
    /// The last this many calls are never hung up.
    left_up: usize,
}

impl Traffic {
    /// Calls for exactly `events` events: 8 per call hung up, 6 per call left up.
    fn new(events: usize) -> Self {
        let left_up = LEFT_UP.min(events / 6);
        let hung_up = (events - left_up * 6) / 8;
        assert_eq!(
            hung_up * 8 + left_up * 6,
            events,
            "INTAKE_EVENTS: a multiple of 8 (of 2 beyond that, up to 2 × {LEFT_UP})"
        );
        let accounts: Vec<SimAccount> = (0..ACCOUNTS).map(SimAccount::new).collect();
        let calls = (0..hung_up + left_up)
            .map(|i| SimCall::new(&accounts[i % ACCOUNTS], i as u64))
            .collect();
        Self { calls, left_up }
    }

    /// The events in the order ecallmgr would send them: at step `s` call `s` is
    /// created, call `s - 2` answered, call `s - 3` bridged and call
    /// `s - OVERLAP` hung up, so each call's own events keep their order.
    fn events(&self) -> impl Iterator<Item = (usize, Outgoing)> + '_ {
        let n = self.calls.len();
        let hung_up = n - self.left_up;
        // Each call's ANSWERs and BRIDGEs, made with its CREATEs, until sent.
        let mut later: Vec<Option<std::vec::IntoIter<Outgoing>>> = (0..n).map(|_| None).collect();
        (0..n + OVERLAP).flat_map(move |s| {
            let mut out = Vec::new();
            if s < n {
                let mut setup = self.calls[s].setup_events().into_iter();
                out.extend(setup.by_ref().take(2).map(|o| (s, o)));
                later[s] = Some(setup);
            }
            for (delay, last) in [(2, false), (3, true)] {
                if let Some(i) = s.checked_sub(delay).filter(|i| *i < n) {
                    let setup = later[i].as_mut().expect("set up earlier");
                    out.extend(setup.by_ref().take(2).map(|o| (i, o)));
                    if last {
                        later[i] = None;
                    }
                }
            }
            if (OVERLAP..hung_up + OVERLAP).contains(&s) {
                let i = s - OVERLAP;
                out.extend(self.calls[i].teardown_events().into_iter().map(|o| (i, o)));
            }
            out
        })
    }
}

/// Publishes the traffic, with confirms, on a connection of its own.
struct Filler {
    conn: lapin::Connection,
    /// A call's events all go through one of these, so they keep their order.
    publishers: Vec<BusPublisher>,
}

impl Filler {
    async fn connect(vhost: &TestVhost, base_queue: &QueueDef) -> Self {
        let conn = bus::connect(&vhost.url(), "filler@bench")
            .await
            .expect("connects");
        let setup = conn.create_channel().await.expect("a channel");
        let mut exchanges = Topology::for_instance("bench");
        exchanges.queues.clear();
        bus::declare(&setup, &exchanges).await.expect("declared");
        bus::declare_queue(&setup, base_queue)
            .await
            .expect("declared");
        let mut publishers = Vec::with_capacity(FILLERS);
        for _ in 0..FILLERS {
            publishers.push(BusPublisher::open(&conn).await.expect("a publisher"));
        }
        Self { conn, publishers }
    }

    async fn fill(&self, traffic: &Traffic) {
        let began = Instant::now();
        let mut events = traffic.events().peekable();
        while events.peek().is_some() {
            let mut batches: Vec<Vec<Outgoing>> = vec![Vec::new(); FILLERS];
            for (call, o) in events.by_ref().take(BATCH) {
                batches[call % FILLERS].push(o);
            }
            let sent = self
                .publishers
                .iter()
                .zip(&batches)
                .map(|(p, batch)| p.send_all(batch));
            for outcomes in futures_util::future::join_all(sent).await {
                assert!(
                    outcomes
                        .expect("published")
                        .iter()
                        .all(|o| *o == PublishOutcome::Confirmed),
                    "every event confirmed"
                );
            }
        }
        eprintln!(
            "both queues filled in {:.1} s",
            began.elapsed().as_secs_f64()
        );
    }

    async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// The baseline consumer: `bus::consumer` as the worker runs its event
/// queue, with a handler that decodes each event and takes `gate` (as ours
/// takes the registry's lock), then returns nothing, so the delivery is acked.
struct Baseline {
    conn: lapin::Connection,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<ServeEnd, bus::BusError>>,
    decoded: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Baseline {
    async fn start(
        vhost: &TestVhost,
        queue: &QueueDef,
        prefetch: u16,
        gate: Arc<Mutex<()>>,
    ) -> Self {
        let conn = bus::connect(&vhost.url(), "baseline@bench")
            .await
            .expect("connects");
        let publisher = BusPublisher::open_with(&conn, COMMANDS_AT_ONCE)
            .await
            .expect("a publisher");
        let (decoded, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = CancellationToken::new();
        let handler = {
            let (decoded, failed) = (decoded.clone(), failed.clone());
            Arc::new(move |msg: Incoming| {
                let counter = match serde_json::from_slice::<Value>(&msg.body) {
                    Ok(v) => {
                        std::hint::black_box(v);
                        &decoded
                    }
                    Err(_) => &failed,
                };
                drop(gate.lock().unwrap_or_else(|p| p.into_inner()));
                counter.fetch_add(1, Ordering::Relaxed);
                Box::pin(std::future::ready(Vec::new())) as bus::HandlerFuture
            })
        };
        let consume = bus::Consume {
            queue: queue.name.clone(),
            prefetch,
            concurrency: 1,
        };
        let serve = bus::consumer(&conn, consume, publisher, handler, stop.clone())
            .await
            .expect("consuming");
        Self {
            task: tokio::spawn(serve),
            conn,
            stop,
            decoded,
            failed,
        }
    }

    fn handled(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }

    async fn stop(self) {
        assert_eq!(
            self.failed.load(Ordering::Relaxed),
            0,
            "every event decodes"
        );
        self.stop.cancel();
        let end = self.task.await.expect("consumer task").expect("consumer");
        assert_eq!(end, ServeEnd::Shutdown);
        let _ = self.conn.close(200, "bye".into()).await;
    }
}
