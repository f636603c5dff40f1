//! The round-trip bench's plumbing: the worker under test with a filled
//! registry, the handlers' own cost, the machine's description and the table.
//! The private vhost and the stand-in Konami are the integration tests' own.

mod allocator;
#[path = "../../tests/common/mod.rs"]
pub mod common;
pub mod echo;
pub mod load;

use std::fmt;
use std::future::Future;
use std::process::Command;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use kazoo_channels::app::{State, WorkerHandle};
use kazoo_channels::cli::simulate::{SimAccount, SimCall};
use kazoo_channels::kapi::time::gregorian_now_secs;
use kazoo_channels::kapi::{CallEvent, Outgoing, Publish, PublishError, PublishOutcome};
use kazoo_channels::registry::Registry;
use kazoo_channels::{commands, queries};

use common::{StandIn, TestVhost};
use load::{Level, Run};

/// A multi-threaded runtime with one thread per core, as the worker's own.
pub fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(format!("bench-{name}"))
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What the numbers were measured on.
pub struct Machine {
    cores: usize,
    cpu: String,
    rabbitmq: String,
    load: String,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let status = Command::new("rabbitmqctl")
            .args(["-q", "status"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let rabbitmq = status
            .lines()
            .find_map(|l| l.trim().strip_prefix("RabbitMQ version:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let load = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            rabbitmq,
            load,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "machine: {} cores ({}), RabbitMQ {} on 127.0.0.1, load average at start {}",
            self.cores, self.cpu, self.rabbitmq, self.load
        )
    }
}

/// The real worker on the vhost, connected and warm. Logs go through a
/// subscriber at `info` (as deployed) into a sink, so their cost is counted,
/// not printed; it is installed before the vhost's own (`warn`) would be.
pub fn log_to_sink() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::sink)
        .try_init();
}

pub async fn start_worker(vh: &TestVhost) -> WorkerHandle {
    let mut s = vh.settings();
    // Nobody to warm up from on a fresh vhost, and nobody to reconcile with.
    s.cluster.snapshot_timeout_ms = 200;
    s.cluster.seed_timeout_ms = 200;
    s.cluster.reconcile_interval_secs = 0;
    vh.worker_with(s).await
}

/// The account under test and its calls' A-legs.
pub struct Scene {
    pub account: SimAccount,
    pub calls: Vec<String>,
}

/// Fills the registry straight from the simulator's events (CREATE, ANSWER and
/// BRIDGE of both legs, decoded as the intake decodes them): `accounts` accounts
/// of `calls` bridged calls each. The first account is the one under test.
/// Events are made and decoded on every core and applied as they come.
pub fn fill(registry: &RwLock<Registry>, accounts: usize, calls: usize) -> Scene {
    let began = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut reg = registry.write().expect("registry lock");
    let mut scene = None;
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(threads * 4);
        for t in 0..threads {
            let tx = tx.clone();
            s.spawn(move || {
                for a in (t..accounts).step_by(threads) {
                    let _ = tx.send((a, account_events(a, calls)));
                }
            });
        }
        drop(tx);
        for (a, (account, legs, events)) in rx {
            for ev in events {
                reg.apply(ev, Instant::now());
            }
            if a == 0 {
                scene = Some(Scene {
                    account,
                    calls: legs,
                });
            }
        }
    });
    let scene = scene.expect("at least one account");
    assert_eq!(reg.len(), accounts * calls * 2, "every channel is up");
    assert_eq!(reg.by_account(&scene.account.id).count(), calls * 2);
    eprintln!(
        "registry filled: {} channels in {:.1} s",
        reg.len(),
        began.elapsed().as_secs_f64()
    );
    scene
}

/// One account's calls: the account, the calls' A-legs, their set-up events.
fn account_events(n: usize, calls: usize) -> (SimAccount, Vec<String>, Vec<CallEvent<'static>>) {
    let account = SimAccount::new(n);
    let mut legs = Vec::with_capacity(calls);
    let mut events = Vec::with_capacity(calls * 6);
    for seq in 0..calls {
        let call = SimCall::new(&account, seq as u64);
        events.extend(call.setup_events().iter().map(|ev| {
            CallEvent::decode(&ev.body)
                .expect("the simulator's events decode")
                .into_owned()
        }));
        legs.push(call.a_leg);
    }
    (account, legs, events)
}

/// A stand-in Konami: bound for every call's `flow`, as Konami binds for a
/// call with metaflows.
pub async fn konami(vh: &TestVhost) -> StandIn {
    StandIn::start(vh, "konami", &[("metaflow", "metaflow.flow.*")], |_| None).await
}

fn ms(us: u32) -> String {
    format!("{:.2}", f64::from(us) / 1000.0)
}

/// One row per in-flight level: ours (the first run) against the baseline run
/// `base`, throughputs, latencies and the ratios.
pub fn table(levels: &[Level], base: usize) -> String {
    let mut out = format!(
        "| {:>9} | {:>10} | {:>10} | {:>5} | {:>17} | {:>17} | {:>9} |\n|{}|\n",
        "in-flight",
        "ours req/s",
        "echo req/s",
        "ratio",
        "ours p50/p99 ms",
        "echo p50/p99 ms",
        "p99 ratio",
        [11, 12, 12, 7, 19, 19, 11]
            .iter()
            .map(|w| format!("{:->1$}", ":", w))
            .collect::<Vec<_>>()
            .join("|")
    );
    let mut failed = Vec::new();
    for l in levels {
        let (o, e) = (&l.runs[0], &l.runs[base]);
        let p = |r: &Run| format!("{} / {}", ms(r.percentile(50.0)), ms(r.percentile(99.0)));
        out.push_str(&format!(
            "| {:>9} | {:>10.0} | {:>10.0} | {:>5.2} | {:>17} | {:>17} | {:>9.2} |\n",
            l.inflight,
            o.rate(),
            e.rate(),
            o.rate() / e.rate(),
            p(o),
            p(e),
            f64::from(o.percentile(99.0)) / f64::from(e.percentile(99.0)),
        ));
        if o.failed() + e.failed() > 0 {
            failed.push(format!(
                "{} in flight: ours {} timed out, {} wrong; echo {} timed out, {} wrong",
                l.inflight, o.timeouts, o.wrong, e.timeouts, e.wrong
            ));
        }
    }
    if !failed.is_empty() {
        out.push_str(&format!("FAILED REQUESTS: {}\n", failed.join("; ")));
    }
    out
}

/// A publisher the broker never sees: every message confirmed at once, the
/// last one kept.
#[derive(Default)]
struct Confirmed(std::sync::Mutex<Option<Outgoing>>);

impl Publish for Confirmed {
    async fn publish(&self, msg: Outgoing) -> Result<PublishOutcome, PublishError> {
        *self.0.lock().expect("lock") = Some(msg);
        Ok(PublishOutcome::Confirmed)
    }
}

/// What the worker itself spends on a request, without the broker: mean µs
/// over and over (caches warm), and each after 64 MiB were written (caches
/// cold, as in a running worker, where the intake, the transport and
/// everything else pass through them).
pub struct HandlerCost {
    /// Decoding and answering the query.
    pub query: (f64, f64),
    /// Validating, checking and answering the command (its publish confirmed
    /// at once).
    pub command: (f64, f64),
    /// The metaflow message the command became.
    pub metaflow: Outgoing,
}

/// Mean µs of `f`: `n` times in a row, then `n / 10` times after a cache flush.
async fn warm_and_cold<F: Future<Output = ()>>(n: u32, mut f: impl FnMut() -> F) -> (f64, f64) {
    f().await; // once untimed: lazy statics (the schemas) are built on first use
    let began = Instant::now();
    for _ in 0..n {
        f().await;
    }
    let warm = began.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let mut flush = vec![0u8; 64 << 20];
    let mut cold = Duration::ZERO;
    for i in 0..n / 10 {
        flush.iter_mut().step_by(64).for_each(|b| *b = i as u8);
        std::hint::black_box(&flush);
        let began = Instant::now();
        f().await;
        cold += began.elapsed();
    }
    (warm, cold.as_secs_f64() * 1e6 / f64::from(n / 10))
}

pub async fn handler_cost(shared: &State, query: &[u8], command: &[u8], n: u32) -> HandlerCost {
    let query = warm_and_cold(n, || async {
        let answer = queries::answer_body(
            &shared.registry(),
            &shared.identity,
            &shared.settings.queries,
            query,
            gregorian_now_secs(),
        );
        assert!(
            answer.is_ok_and(|a| a.reply.is_some()),
            "the query is answered"
        );
    })
    .await;
    let publisher = Confirmed::default();
    let command = warm_and_cold(n, || async {
        let reply =
            commands::respond(&shared.registry, &shared.identity, &publisher, command).await;
        let reply = reply.expect("the command is answered");
        assert!(
            String::from_utf8_lossy(&reply.body).contains(r#""Status":"accepted""#),
            "the command is accepted"
        );
    })
    .await;
    let metaflow = publisher.0.into_inner().expect("lock");
    HandlerCost {
        query,
        command,
        metaflow: metaflow.expect("the command was published"),
    }
}
