//! The cluster at a million channels (issue 11), with the worker as a real
//! process (the release binary), measured from outside as an operator would:
//!
//! - warm-up of a new instance from a peer holding 100,000 and 1,000,000
//!   channels: seconds from its start until it serves, bytes on the wire per
//!   channel, the peer's peak resident memory during the transfer against its
//!   resting memory, and whether that memory comes back afterwards;
//! - resident memory per channel of the process at each size (RSS, not an
//!   in-process estimate);
//! - event intake while a client keeps asking for a 10,000-channel account,
//!   as a ratio to intake with no queries, and that query's p99 while events
//!   flow, as a ratio to its p99 idle.
//!
//! `cargo bench --bench warmup`. `WARMUP_SIZES` (default `100000,1000000`)
//! picks the registry sizes.

#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kazoo_channels::bus::{BusClient, BusPublisher, Collect};
use kazoo_channels::cli::simulate::{SimAccount, SimCall};
use kazoo_channels::kapi::asks;
use serde_json::Value;

use support::common::TestVhost;
use support::{Machine, runtime};

const WARM_GOAL: Duration = Duration::from_secs(30);
const PEAK_GOAL: f64 = 1.25;
const RSS_GOAL_BYTES: f64 = 1024.0;
const INTAKE_GOAL: f64 = 0.8;
/// Channels per account, but for the big one.
const PER_ACCOUNT: usize = 100;
const BIG_ACCOUNT: usize = 10_000;
/// Events per confirmed publish batch.
const BATCH: usize = 4000;

/// A worker process and the log lines it wrote.
struct Worker {
    child: Child,
    node: String,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Worker {
    fn start(vh: &TestVhost, node: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
            .env("KAZOO_CHANNELS__AMQP__URL", vh.url())
            .env("KAZOO_CHANNELS__NODE__NAME", node)
            .env("KAZOO_CHANNELS__LOG__FORMAT", "json")
            .env("KAZOO_CHANNELS__LOG__SUMMARY_INTERVAL_SECS", "0")
            .env("KAZOO_CHANNELS__CLUSTER__RECONCILE_INTERVAL_SECS", "0")
            .env("KAZOO_CHANNELS__CLUSTER__SNAPSHOT_TIMEOUT_MS", "5000")
            .env("KAZOO_CHANNELS__CLUSTER__SEED_TIMEOUT_MS", "300")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("the worker binary starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines, stderr) = (log.clone(), child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    lines.lock().expect("log").push(v);
                }
            }
        });
        Self {
            child,
            node: node.to_owned(),
            log,
        }
    }

    fn proc_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn rss(&self) -> u64 {
        self.proc_kb("VmRSS:") * 1024
    }

    fn peak(&self) -> u64 {
        self.proc_kb("VmHWM:") * 1024
    }

    /// Resets the peak (`VmHWM`) to the current resident size.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// A field of the first log line with this message.
    fn logged(&self, message: &str, field: &str) -> Option<Value> {
        let log = self.log.lock().expect("log");
        log.iter()
            .find(|l| l["message"] == message)
            .map(|l| l[field].clone())
    }

    async fn status(&self, client: &BusClient) -> Option<Value> {
        let replies = client
            .ask(asks::status(), Collect::all(Duration::from_millis(400)))
            .await
            .ok()?;
        replies
            .into_iter()
            .find(|r| r["Node"] == self.node.as_str())
    }

    /// Waits until the status reply satisfies `cond`.
    async fn until(
        &self,
        client: &BusClient,
        limit: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.status(client).await
                && cond(&s)
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not get there in {limit:?}",
                self.node
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Calls up (CREATE and ANSWER of both legs) until `channels` channels:
/// `BIG_ACCOUNT` of them in one account (returned), the rest 100 per account.
async fn fill(url: &str, channels: usize) -> SimAccount {
    let conn = kazoo_channels::bus::connect(url, "filler")
        .await
        .expect("connects");
    let publisher = BusPublisher::open(&conn).await.expect("publisher");
    let big = SimAccount::new(0);
    let calls = channels / 2;
    let mut account = SimAccount::new(1);
    let mut batch = Vec::with_capacity(BATCH);
    for seq in 0..calls {
        let call = if seq < BIG_ACCOUNT / 2 {
            SimCall::new(&big, seq as u64)
        } else {
            if seq % (PER_ACCOUNT / 2) == 0 {
                account = SimAccount::new(seq);
            }
            SimCall::new(&account, seq as u64)
        };
        batch.extend(call.events(&["CHANNEL_CREATE", "CHANNEL_ANSWER"]));
        if batch.len() >= BATCH {
            publisher.send_all(&batch).await.expect("published");
            batch.clear();
        }
    }
    publisher.send_all(&batch).await.expect("published");
    publisher.close().await;
    let _ = conn.close(200, "filled".into()).await;
    big
}

struct WarmRow {
    channels: usize,
    fill: Duration,
    warm: Duration,
    bytes: u64,
    resting: u64,
    peak: u64,
    after: u64,
    rss_per_channel: f64,
    newcomer_per_channel: f64,
}

async fn warm_up(channels: usize) -> WarmRow {
    let vh = TestVhost::unwatched("bench-warmup");
    let client = BusClient::connect(&vh.url(), "bench")
        .await
        .expect("client");
    let peer = Worker::start(&vh, "bench-peer@bench");
    peer.until(&client, Duration::from_secs(30), |s| s["State"] == "warm")
        .await;
    let empty = peer.rss();
    let began = Instant::now();
    fill(&vh.url(), channels).await;
    peer.until(&client, Duration::from_secs(600), |s| {
        s["Channels"] == channels
    })
    .await;
    let fill_took = began.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resting = peer.rss();
    peer.reset_peak();

    let began = Instant::now();
    let newcomer = Worker::start(&vh, "bench-newcomer@bench");
    newcomer
        .until(&client, Duration::from_secs(600), |s| s["State"] == "warm")
        .await;
    let warm = began.elapsed();
    let status = newcomer.status(&client).await.expect("status");
    assert_eq!(
        status["Channels"], channels,
        "the newcomer holds every channel"
    );
    assert!(
        status["Warmed-From"]
            .as_str()
            .unwrap_or_default()
            .starts_with("peer ")
    );
    let peak = peer.peak();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = peer.rss();
    let bytes = peer
        .logged("snapshot sent to a starting peer", "bytes")
        .and_then(|b| b.as_u64())
        .unwrap_or(0);
    let newcomer_rss = newcomer.rss();
    newcomer.stop();
    peer.stop();
    client.close().await;
    WarmRow {
        channels,
        fill: fill_took,
        warm,
        bytes,
        resting,
        peak,
        after,
        rss_per_channel: (resting - empty) as f64 / channels as f64,
        newcomer_per_channel: (newcomer_rss - empty) as f64 / channels as f64,
    }
}

/// Events applied per second while `queries` keeps asking for the big
/// account (or nobody asks), and the query latencies seen meanwhile.
async fn intake_rate(
    vh: &TestVhost,
    worker: &Worker,
    client: &BusClient,
    events: usize,
    big: &SimAccount,
    with_queries: bool,
) -> (f64, Vec<Duration>) {
    let before = worker.status(client).await.expect("status")["Events-Applied"]
        .as_u64()
        .unwrap_or(0);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = with_queries.then(|| {
        let (url, id, stop) = (vh.url(), big.id.clone(), stop.clone());
        tokio::spawn(async move { ask_loop(&url, &id, &stop).await })
    });
    let began = Instant::now();
    let url = vh.url();
    let publish = tokio::spawn(async move {
        let conn = kazoo_channels::bus::connect(&url, "events")
            .await
            .expect("connects");
        let publisher = BusPublisher::open(&conn).await.expect("publisher");
        let account = SimAccount::new(7);
        let mut batch = Vec::with_capacity(BATCH);
        for seq in 0..events / 4 {
            let call = SimCall::new(&account, seq as u64);
            batch.extend(call.events(&["CHANNEL_CREATE"]));
            batch.extend(call.teardown_events());
            if batch.len() >= BATCH {
                publisher.send_all(&batch).await.expect("published");
                batch.clear();
            }
        }
        publisher.send_all(&batch).await.expect("published");
        let _ = conn.close(200, "done".into()).await;
    });
    let target = before + (events / 4 * 4) as u64;
    worker
        .until(client, Duration::from_secs(600), |s| {
            s["Events-Applied"].as_u64().unwrap_or(0) >= target
        })
        .await;
    let secs = began.elapsed().as_secs_f64();
    publish.await.expect("publisher");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let latencies = match asker {
        Some(a) => a.await.expect("asker"),
        None => Vec::new(),
    };
    ((events / 4 * 4) as f64 / secs, latencies)
}

/// What the asker reads of a reply: the channels counted, not built (a
/// Crossbar runs on another machine; its parsing is not ours to measure).
#[derive(serde::Deserialize)]
struct Counted {
    #[serde(rename = "Channels")]
    channels: Vec<serde::de::IgnoredAny>,
}

/// Back-to-back account queries, one in flight, until `stop`.
async fn ask_loop(url: &str, account: &str, stop: &std::sync::atomic::AtomicBool) -> Vec<Duration> {
    let client = BusClient::connect(url, "crossbar").await.expect("client");
    let mut latencies = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        let mut replies = client
            .send_ask(asks::account_channels(account), Duration::from_secs(5))
            .await
            .expect("asked");
        let body = replies
            .next_body(Duration::from_secs(5))
            .await
            .expect("answered");
        let reply: Counted = serde_json::from_slice(&body).expect("a reply");
        assert_eq!(reply.channels.len(), BIG_ACCOUNT);
        latencies.push(t.elapsed());
    }
    client.close().await;
    latencies
}

fn p99(mut l: Vec<Duration>) -> Duration {
    l.sort();
    l.get((l.len() * 99 / 100).min(l.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

async fn intake_while_querying() -> (f64, f64, Duration, Duration, usize) {
    let channels = 100_000;
    let vh = TestVhost::unwatched("bench-intake-queries");
    let client = BusClient::connect(&vh.url(), "bench")
        .await
        .expect("client");
    let w = Worker::start(&vh, "bench-intake@bench");
    w.until(&client, Duration::from_secs(30), |s| s["State"] == "warm")
        .await;
    let big = fill(&vh.url(), channels).await;
    w.until(&client, Duration::from_secs(300), |s| {
        s["Channels"] == channels
    })
    .await;
    let idle = {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let url = vh.url();
        let asking = ask_loop(&url, &big.id, &stop);
        tokio::pin!(asking);
        tokio::select! {
            _ = &mut asking => unreachable!("asks until stopped"),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        asking.await
    };
    let events = 200_000;
    let (alone, _) = intake_rate(&vh, &w, &client, events, &big, false).await;
    let (queried, during) = intake_rate(&vh, &w, &client, events, &big, true).await;
    let asked = during.len();
    w.stop();
    client.close().await;
    (alone, queried, p99(idle), p99(during), asked)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let machine = Machine::probe();
    let sizes: Vec<usize> = std::env::var("WARMUP_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = runtime("warmup");
    println!("{machine}");
    println!(
        "{:>9} {:>8} {:>9} {:>8} {:>10} {:>9} {:>6} {:>9} {:>8} {:>9}",
        "channels",
        "fill_s",
        "warm_s",
        "B/chan",
        "rest_MiB",
        "peak_MiB",
        "peak×",
        "after×",
        "RSS_B/ch",
        "new_B/ch"
    );
    let mut misses = Vec::new();
    for n in sizes {
        let r = rt.block_on(warm_up(n));
        let (peak_ratio, after_ratio) = (
            r.peak as f64 / r.resting as f64,
            r.after as f64 / r.resting as f64,
        );
        println!(
            "{:>9} {:>8.1} {:>9.1} {:>8.1} {:>10.1} {:>9.1} {:>6.2} {:>9.2} {:>8.0} {:>9.0}",
            r.channels,
            r.fill.as_secs_f64(),
            r.warm.as_secs_f64(),
            r.bytes as f64 / r.channels as f64,
            mib(r.resting),
            mib(r.peak),
            peak_ratio,
            after_ratio,
            r.rss_per_channel,
            r.newcomer_per_channel,
        );
        if n >= 1_000_000 {
            if r.warm > WARM_GOAL {
                misses.push(format!(
                    "warm-up at {n}: {:.1} s > {WARM_GOAL:?}",
                    r.warm.as_secs_f64()
                ));
            }
            if peak_ratio > PEAK_GOAL {
                misses.push(format!("peer peak at {n}: {peak_ratio:.2}× > {PEAK_GOAL}×"));
            }
            if r.rss_per_channel > RSS_GOAL_BYTES {
                misses.push(format!(
                    "RSS per channel at {n}: {:.0} B > {RSS_GOAL_BYTES} B",
                    r.rss_per_channel
                ));
            }
            if after_ratio > 1.2 {
                misses.push(format!(
                    "memory after serving at {n}: {after_ratio:.2}× of before (> 1.2×)"
                ));
            }
        }
    }
    let (alone, queried, idle, during, asked) = rt.block_on(intake_while_querying());
    let ratio = queried / alone;
    println!(
        "intake at 100,000 channels: {alone:.0} events/s alone, {queried:.0} events/s while {asked} account queries (10,000 channels each) ran: ratio {ratio:.2} (goal ≥ {INTAKE_GOAL})"
    );
    println!(
        "account query p99: {:.1} ms idle, {:.1} ms during intake: ratio {:.2}",
        idle.as_secs_f64() * 1e3,
        during.as_secs_f64() * 1e3,
        during.as_secs_f64() / idle.as_secs_f64().max(1e-9)
    );
    if ratio < INTAKE_GOAL {
        misses.push(format!("intake while querying: {ratio:.2} < {INTAKE_GOAL}"));
    }
    if misses.is_empty() {
        println!("goals: all met");
    } else {
        println!("goals missed: {}", misses.join("; "));
    }
}
