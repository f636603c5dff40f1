//! The load: a fixed number of requesters, each sending its next request as soon
//! as its reply is in (so exactly that many are in flight), for a fixed time.

use std::sync::Arc;
use std::time::Duration;

use kazoo_channels::bus::{BusClient, Collect};
use serde_json::{Map, Value};
use tokio::time::Instant;

/// Unmeasured time at the start of each run: connections, queues and caches settle.
const WARM: Duration = Duration::from_millis(400);
/// Crossbar's wait for a reply (kz_amqp_worker's default).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Where requests go, what they carry, and what a right answer looks like.
pub struct Target {
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
    /// Round-trip times of the right answers, sorted once the run is complete.
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
        self.secs += other.secs;
        self.timeouts += other.timeouts;
        self.wrong += other.wrong;
        self.latencies_us.sort_unstable();
    }

    pub fn failed(&self) -> u64 {
        self.timeouts + self.wrong
    }

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

pub struct Comparison {
    pub inflight: usize,
    pub ours: Run,
    pub echo: Run,
}

/// Each level in halves, ours/echo/echo/ours, so a drift of the machine's load
/// during the level weighs on both sides alike.
pub async fn compare(
    client: &Arc<BusClient>,
    ours: &Target,
    echo: &Target,
    levels: &[usize],
    secs: f64,
) -> Vec<Comparison> {
    let half = Duration::from_secs_f64(secs / 2.0);
    let mut rows = Vec::new();
    for &inflight in levels {
        let mut row = Comparison {
            inflight,
            ours: Run::default(),
            echo: Run::default(),
        };
        for ours_turn in [true, false, false, true] {
            let (target, run) = if ours_turn {
                (ours, &mut row.ours)
            } else {
                (echo, &mut row.echo)
            };
            run.add(drive(client, target, inflight, half).await);
        }
        eprintln!(
            "  {} {inflight} in flight: ours {:.0}/s, echo {:.0}/s",
            ours.name,
            row.ours.rate(),
            row.echo.rate()
        );
        rows.push(row);
    }
    rows
}

/// `inflight` requesters for [`WARM`] then `measure`; a request counts when it
/// was sent and answered within the measured window.
async fn drive(client: &Arc<BusClient>, t: &Target, inflight: usize, measure: Duration) -> Run {
    let from = Instant::now() + WARM;
    let until = from + measure;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..inflight {
        let client = client.clone();
        let (exchange, routing_key) = (t.exchange, t.routing_key.clone());
        let (category, name, check) = (t.category, t.name, t.check);
        let bodies = t.bodies.clone();
        tasks.spawn(async move {
            let mut run = Run::default();
            let mut next = i;
            loop {
                let sent = Instant::now();
                if sent >= until {
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
                let answered = Instant::now();
                if sent < from {
                    continue;
                }
                match replies.as_deref() {
                    Ok([reply]) if check(reply) => {
                        if answered <= until {
                            let us = (answered - sent).as_micros();
                            run.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
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
        total.latencies_us.extend(run.latencies_us);
        total.timeouts += run.timeouts;
        total.wrong += run.wrong;
    }
    total
}
