//! The load: a fixed number of requesters, each sending its next request as soon
//! as its reply is in (so exactly that many are in flight), for a fixed time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kazoo_channels::bus::{BusClient, Collect};
use serde_json::{Map, Value};
use tokio::time::Instant;

/// Unmeasured time at the start of each slice, for the pipeline to fill.
const WARM: Duration = Duration::from_millis(150);
/// Crossbar's wait for a reply (kz_amqp_worker's default).
const TIMEOUT: Duration = Duration::from_secs(2);
/// The measured time of each level is cut in slices of about this, the sides
/// taking turns, so that the machine's changing load weighs on all alike.
const SLICE: Duration = Duration::from_secs(1);

/// Where requests go, what they carry, and what a right answer looks like.
pub struct Target {
    pub label: &'static str,
    pub exchange: &'static str,
    pub routing_key: String,
    pub category: &'static str,
    pub name: &'static str,
    /// Sent in turn (each with a fresh `Msg-ID` from the client).
    pub bodies: Arc<Vec<Map<String, Value>>>,
    pub check: fn(&Value) -> bool,
}

/// The measured requests of one side at one level.
#[derive(Default)]
pub struct Run {
    /// Round-trip times of the right answers, sorted.
    latencies_us: Vec<u32>,
    secs: f64,
    /// Sent in the window and not answered within the timeout.
    pub timeouts: u64,
    /// Answered wrongly (or the request could not be sent).
    pub wrong: u64,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.latencies_us.extend(other.latencies_us);
        self.latencies_us.sort_unstable();
        self.secs += other.secs;
        self.timeouts += other.timeouts;
        self.wrong += other.wrong;
    }

    pub fn failed(&self) -> u64 {
        self.timeouts + self.wrong
    }

    /// Right answers per second.
    pub fn rate(&self) -> f64 {
        self.latencies_us.len() as f64 / self.secs
    }

    /// The latency `p` % of requests did not exceed, in µs.
    pub fn percentile(&self, p: f64) -> u32 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, n) - 1]
    }
}

/// One in-flight level: a run per target, in the order given.
pub struct Level {
    pub inflight: usize,
    pub runs: Vec<Run>,
}

/// Each level for `secs` per target, in slices: the targets take turns, in
/// order then in reverse (A B B A …), so a drift of the machine's load during
/// the level weighs on every side alike.
pub async fn compare(
    client: &Arc<BusClient>,
    targets: &[&Target],
    levels: &[usize],
    secs: f64,
) -> Vec<Level> {
    let slices = (secs / SLICE.as_secs_f64()).ceil().max(1.0) as u32;
    let slice = Duration::from_secs_f64(secs / f64::from(slices));
    let verbose = std::env::var_os("ROUNDTRIP_VERBOSE").is_some();
    let mut out = Vec::new();
    for &inflight in levels {
        let mut runs: Vec<Run> = targets.iter().map(|_| Run::default()).collect();
        for s in 0..slices {
            let mut order: Vec<usize> = (0..targets.len()).collect();
            if s % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let part = drive(client, targets[i], inflight, slice).await;
                if verbose {
                    eprintln!(
                        "    {} {inflight} in flight, {}: {:.0}/s, p50 {} µs",
                        targets[0].name,
                        targets[i].label,
                        part.rate(),
                        part.percentile(50.0)
                    );
                }
                runs[i].add(part);
            }
        }
        let rates: Vec<String> = targets
            .iter()
            .zip(&runs)
            .map(|(t, r)| format!("{} {:.0}/s", t.label, r.rate()))
            .collect();
        eprintln!(
            "  {} at {inflight} in flight: {}",
            targets[0].name,
            rates.join(", ")
        );
        out.push(Level { inflight, runs });
    }
    out
}

/// `inflight` requesters: [`WARM`], then every request sent within `measure`
/// is measured, to its answer. Requesters keep the load on until the last
/// measured request is answered, so the last ones do not see an emptier broker.
async fn drive(client: &Arc<BusClient>, t: &Target, inflight: usize, measure: Duration) -> Run {
    let from = Instant::now() + WARM;
    let until = from + measure;
    let measuring = Arc::new(AtomicUsize::new(inflight));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..inflight {
        let (client, measuring) = (client.clone(), measuring.clone());
        let (exchange, routing_key) = (t.exchange, t.routing_key.clone());
        let (category, name, check) = (t.category, t.name, t.check);
        let bodies = t.bodies.clone();
        tasks.spawn(async move {
            let mut run = Run::default();
            let mut next = i;
            let mut done = false;
            loop {
                let sent = Instant::now();
                if sent >= until && !done {
                    done = true;
                    measuring.fetch_sub(1, Ordering::AcqRel);
                }
                if done && measuring.load(Ordering::Acquire) == 0 {
                    break;
                }
                let body = bodies[next % bodies.len()].clone();
                next += inflight;
                let replies = client
                    .request(
                        exchange,
                        &routing_key,
                        category,
                        name,
                        body,
                        Collect::first(TIMEOUT),
                    )
                    .await;
                if sent < from || done {
                    continue;
                }
                match replies.as_deref() {
                    Ok([reply]) if check(reply) => {
                        let us = sent.elapsed().as_micros();
                        run.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                    Ok([]) => run.timeouts += 1,
                    _ => run.wrong += 1,
                }
            }
            run
        });
    }
    let mut total = Run {
        secs: measure.as_secs_f64(),
        ..Run::default()
    };
    while let Some(run) = tasks.join_next().await {
        let run = run.expect("a requester panicked");
        total.add(Run { secs: 0.0, ..run });
    }
    total
}
