//! A RabbitMQ cluster (three nodes joined with `join_cluster`, made by
//! `scripts/brokers cluster`), the worker given the URL list of its nodes:
//! the node leading the query queue is killed (`kill -9`) and the workers go
//! on answering from the others. The nodes are this target's own set
//! (`KC_BROKERS_PREFIX`, `KC_BROKERS_PORT_BASE`; default kr1–kr3 on
//! 5761–5763, apart from tests/brokers.rs's independent kc1–kc3); the test
//! kills one, so `scripts/test` runs this target after `brokers`, one test at
//! a time, and stops the nodes afterwards.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{a_leg_event, event_msg, eventually, hex_id};
use kazoo_channels::app::{self as worker, WorkerHandle};
use kazoo_channels::bus::{BusClient, Collect};
use kazoo_channels::config::{QueueType, Settings};
use kazoo_channels::kapi::asks;
use serde_json::Value;

/// (node name, AMQP port) of the cluster's three nodes.
fn nodes() -> Vec<(String, u16)> {
    let prefix = std::env::var("KC_BROKERS_PREFIX").unwrap_or_else(|_| "kr".into());
    let base: u16 = std::env::var("KC_BROKERS_PORT_BASE")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5760);
    (1..=3)
        .map(|i| (format!("{prefix}{i}"), base + i))
        .collect()
}

/// `scripts/brokers ARGS` with this target's node set; its stdout.
fn brokers(args: &[&str]) -> String {
    let prefix = nodes()[0].0.trim_end_matches('1').to_owned();
    let base = (nodes()[0].1 - 1).to_string();
    common::stdout_of(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/brokers"))
            .args(args)
            .env("KC_BROKERS_PREFIX", prefix)
            .env("KC_BROKERS_PORT_BASE", base),
        &format!("scripts/brokers {args:?}"),
    )
}

fn url(port: u16) -> String {
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

/// The node (name) leading quorum queue `queue`, as node `via` sees it.
fn leader(via: &str, queue: &str) -> String {
    let out = brokers(&[
        "ctl",
        via,
        "list_queues",
        "name",
        "leader",
        "--formatter",
        "json",
    ]);
    let list: Vec<Value> = serde_json::from_str(&out).expect("list_queues JSON");
    let q = list
        .iter()
        .find(|q| q["name"] == queue)
        .unwrap_or_else(|| panic!("{queue} not in {out}"));
    let leader = q["leader"].as_str().expect("a quorum queue has a leader");
    leader.split('@').next().unwrap().to_owned()
}

fn settings(kind: QueueType) -> Settings {
    let mut s = Settings::defaults();
    s.amqp.url = nodes()
        .iter()
        .map(|(_, port)| url(*port))
        .collect::<Vec<_>>()
        .into();
    s.amqp.queue_type = kind;
    s.amqp.min_backoff_ms = 100;
    s.amqp.max_backoff_secs = 1;
    s.log.summary_interval_secs = 0;
    s.cluster.snapshot_timeout_ms = 1000;
    s.cluster.seed_timeout_ms = 400;
    s
}

async fn started(settings: Settings) -> WorkerHandle {
    let w = worker::spawn(settings);
    assert!(
        w.wait_warm(Duration::from_secs(30)).await,
        "worker did not warm up"
    );
    w
}

/// How long every reply to a query is waited for: a second answer (a
/// request redelivered after its answer) would come within it.
const WINDOW: Duration = Duration::from_millis(500);

/// How many replies one account query got within [`WINDOW`], and the call
/// ids the first lists.
async fn ask(client: &BusClient, account: &str) -> (usize, BTreeSet<String>) {
    let replies = client
        .ask(asks::account_channels(account), Collect::all(WINDOW))
        .await
        .unwrap_or_default();
    let ids = replies
        .first()
        .and_then(|r| r["Channels"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c["uuid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (replies.len(), ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_answer_again_within_10_s_of_their_leader_killed() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    brokers(&["cluster"]);
    let all = nodes();
    let workers = [
        started(settings(QueueType::Quorum)).await,
        started(settings(QueueType::Quorum)).await,
    ];
    let queries = "kazoo-channels.queries";
    let doomed = leader(&all[0].0, queries);
    // Calls published, and queries asked, through nodes that stay up.
    let (alive, alive_port) = all.iter().find(|(n, _)| *n != doomed).cloned().unwrap();
    let account = hex_id();
    let feeder = BusClient::connect(&url(alive_port), "ecallmgr")
        .await
        .unwrap();
    let mut calls = BTreeSet::new();
    for _ in 0..50 {
        let id = format!("{}@10.26.0.91", uuid::Uuid::new_v4());
        for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
            feeder
                .publish(&event_msg(&a_leg_event(name, &id, &account)))
                .await
                .unwrap();
        }
        calls.insert(id);
    }
    assert!(
        eventually(Duration::from_secs(20), || workers
            .iter()
            .all(|w| w.registry().len() == calls.len()))
        .await
    );
    let crossbar = BusClient::connect(&url(alive_port), "crossbar")
        .await
        .unwrap();
    assert_eq!(ask(&crossbar, &account).await, (1, calls.clone()));

    let killed = Instant::now();
    brokers(&["kill", &doomed]);
    // Asked again and again until one answer lists every call.
    let mut failover = None;
    while killed.elapsed() < Duration::from_secs(20) {
        let (n, ids) = ask(&crossbar, &account).await;
        assert!(n <= 1, "answered {n} times");
        if n == 1 && ids == calls {
            failover = Some(killed.elapsed());
            break;
        }
    }
    let failover = failover.expect("answered again after the leader's node was killed");
    let new_leader = leader(&alive, queries);
    println!(
        "{doomed} (leading {queries}) killed: answered again after {failover:?}; new leader {new_leader}"
    );
    assert!(failover < Duration::from_secs(10), "{failover:?}");
    assert_ne!(new_leader, doomed);

    // 100 later queries (ten at a time), each answered once and completely.
    let mut once = 0;
    for _ in 0..10 {
        let batch = (0..10).map(|_| ask(&crossbar, &account));
        once += futures_util::future::join_all(batch)
            .await
            .into_iter()
            .filter(|got| *got == (1, calls.clone()))
            .count();
    }
    println!("after the failover: {once} of 100 queries answered once, completely");
    assert_eq!(once, 100);
    // The registries are intact and still follow the events.
    let gone = calls.pop_first().unwrap();
    let mut hangup = a_leg_event("CHANNEL_DESTROY", &gone, &account);
    hangup["Hangup-Cause"] = "NORMAL_CLEARING".into();
    feeder.publish(&event_msg(&hangup)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || workers.iter().all(|w| w
            .registry()
            .len()
            == calls.len()
            && w.registry().get(&gone).is_none()))
        .await,
        "every instance applies events after the failover"
    );
    assert_eq!(ask(&crossbar, &account).await, (1, calls));
    crossbar.close().await;
    feeder.close().await;
    for w in workers {
        w.shutdown().await;
    }
}
