//! The cluster at operators' scale: an instance holding 200,000 channels, a
//! second one started beside it (idle, then under event load), and an
//! unscoped `query_channels_req` with `Fields: "all"` over all of them. Its own
//! target (`test = false`): `scripts/test` runs it after the others, one test
//! at a time, since each fills a registry of its own.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use kazoo_channels::app::WorkerHandle;
use kazoo_channels::bus::{BusClient, BusPublisher, Collect};
use kazoo_channels::kapi::asks;
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::stats::Stats;
use serde_json::json;

const ACCOUNTS: usize = 200;
const PER_ACCOUNT: usize = 1000;
const CHANNELS: usize = ACCOUNTS * PER_ACCOUNT;
const BATCH: usize = 5000;
/// Filling 200,000 channels through a debug build takes most of a minute on
/// an idle 2-core machine.
const SCALE_LIMIT: Duration = Duration::from_secs(540);

/// 200,000 CREATEs (one A-leg per call), published in confirmed batches
/// straight to `callevt`: the simulator's rate limit would take minutes.
async fn fill(vh: &TestVhost) -> Vec<String> {
    let accounts: Vec<String> = (0..ACCOUNTS).map(|_| hex_id()).collect();
    let conn = kazoo_channels::bus::connect(&vh.url(), "filler")
        .await
        .expect("connects");
    let publisher = BusPublisher::open(&conn).await.expect("publisher");
    let template = a_leg_event("CHANNEL_CREATE", "x", "y");
    let mut batch = Vec::with_capacity(BATCH);
    for (a, account) in accounts.iter().enumerate() {
        for c in 0..PER_ACCOUNT {
            let mut ev = template.clone();
            ev["Call-ID"] = json!(format!("scale-{a}-{c}@10.0.0.1"));
            ev["Custom-Channel-Vars"]["Account-ID"] = json!(account);
            batch.push(event_msg(&ev));
            if batch.len() == BATCH {
                publisher.send_all(&batch).await.expect("published");
                batch.clear();
            }
        }
    }
    publisher.send_all(&batch).await.expect("published");
    publisher.close().await;
    let _ = conn.close(200, "filled".into()).await;
    accounts
}

fn counters(w: &WorkerHandle) -> (u64, u64) {
    (
        Stats::get(&w.state.stats.reconnects),
        Stats::get(&w.state.stats.channel_errors),
    )
}

async fn first_holding_everything(vh: &TestVhost) -> (WorkerHandle, Vec<String>) {
    let first = vh.worker().await;
    let began = Instant::now();
    let accounts = fill(vh).await;
    assert!(
        eventually(Duration::from_secs(120), || first.registry().len()
            == CHANNELS)
        .await,
        "the first instance holds {} of {CHANNELS} channels",
        first.registry().len()
    );
    eprintln!(
        "scale: {CHANNELS} channels in the first instance after {:?}",
        began.elapsed()
    );
    (first, accounts)
}

/// Each account's query, answered (by whichever instance takes it) with every
/// one of its channels; returns who answered how many.
async fn every_account_complete(
    client: &BusClient,
    accounts: &[String],
) -> BTreeMap<String, usize> {
    let mut by_node = BTreeMap::new();
    for account in accounts {
        let replies = client
            .ask(
                asks::account_channels(account),
                Collect::first(Duration::from_secs(5)),
            )
            .await
            .expect("asked");
        let reply = replies
            .first()
            .unwrap_or_else(|| panic!("no answer for {account}"));
        let n = reply["Channels"].as_array().map_or(0, Vec::len);
        assert_eq!(
            n, PER_ACCOUNT,
            "account {account} answered by {}",
            reply["Node"]
        );
        *by_node
            .entry(reply["Node"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    by_node
}

/// Starts another instance beside those running (with calls coming and going
/// meanwhile when `under_load`): it must warm from a peer with every channel,
/// and its answers, with its peers', be complete for every account.
async fn another_instance_answers_complete(
    vh: &TestVhost,
    accounts: &[String],
    peers: &[&WorkerHandle],
    under_load: bool,
) -> WorkerHandle {
    let load = under_load.then(|| {
        let url = vh.url();
        tokio::spawn(async move {
            let args = kazoo_channels::cli::simulate::SimulateArgs {
                calls: 2000,
                rate: 500.0,
                accounts: 5,
                hold_ms: 200,
                leave_up: false,
                progress: false,
                account_ids: Vec::new(),
            };
            kazoo_channels::cli::simulate::run(&url, &args).await
        })
    });
    let mut settings = vh.settings();
    settings.cluster.snapshot_timeout_ms = 5000;
    let began = Instant::now();
    let new = kazoo_channels::app::spawn(settings);
    assert!(
        new.wait_warm(Duration::from_secs(180)).await,
        "the new instance did not warm up"
    );
    let took = began.elapsed();
    assert!(
        new.state.warmed_from().starts_with("peer "),
        "warmed from {}",
        new.state.warmed_from()
    );
    assert!(
        new.registry().len() >= CHANNELS,
        "warm with {} channels",
        new.registry().len()
    );
    eprintln!(
        "scale: new instance warm with {} channels in {took:?} (under load: {under_load})",
        new.registry().len()
    );
    let client = vh.client("crossbar").await;
    let by_node = every_account_complete(&client, accounts).await;
    assert!(
        by_node.contains_key(&new.state.identity.node),
        "the new instance answered some of the queries: {by_node:?}"
    );
    client.close().await;
    if let Some(load) = load {
        load.await.unwrap().unwrap();
        let all = |w: &WorkerHandle| w.registry().len() == CHANNELS;
        assert!(
            eventually(Duration::from_secs(60), || all(&new)
                && peers.iter().all(|p| all(p)))
            .await,
            "the load's calls came and went in every instance"
        );
    }
    for w in peers.iter().copied().chain([&new]) {
        assert_eq!(
            counters(w),
            (0, 0),
            "{} never reconnected",
            w.state.identity.node
        );
    }
    new
}

/// An unscoped `query_channels_req` with `Fields: "all"` over every channel
/// (jonny5 sends it every 15 minutes): answered gzip-compressed, or, over
/// `amqp.max_message_bytes` even so, not answered and counted; either way the
/// instance goes on serving.
async fn unscoped_fields_all(vh: &TestVhost, accounts: &[String], workers: &[&WorkerHandle]) {
    let client = vh.client("jonny5").await;
    let mut body = serde_json::Map::new();
    body.insert("Fields".into(), json!("all"));
    body.insert("Active-Only".into(), json!(false));
    let began = Instant::now();
    let replies = client
        .request(
            "callevt",
            "call.status_req.channels",
            "call_event",
            "query_channels_req",
            body,
            Collect::first(Duration::from_secs(90)),
        )
        .await
        .expect("asked");
    let too_large: u64 = workers
        .iter()
        .map(|w| Stats::get(&w.state.stats.replies_too_large))
        .sum();
    match replies.first() {
        Some(reply) => {
            let channels = reply["Channels"].as_object().expect("Channels object");
            assert_eq!(channels.len(), CHANNELS);
            let one = channels.values().next().unwrap();
            let sample = json!({
                "App-Name": reply["App-Name"], "App-Version": reply["App-Version"],
                "Event-Category": "call_event", "Event-Name": "query_channels_resp",
                "Msg-ID": reply["Msg-ID"], "Node": reply["Node"], "Channels": {"x": one},
            });
            schemas()
                .validate("kapi.call.query_channels_resp", &sample, "")
                .unwrap();
            assert_eq!(too_large, 0);
            eprintln!(
                "scale: unscoped Fields all answered with {CHANNELS} channels in {:?}",
                began.elapsed()
            );
        }
        None => {
            assert_eq!(too_large, 1, "not answered, and counted");
            eprintln!(
                "scale: unscoped Fields all over amqp.max_message_bytes even compressed: not sent"
            );
        }
    }
    let after = client
        .ask(
            asks::account_channels(&accounts[0]),
            Collect::first(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(
        after[0]["Channels"].as_array().map_or(0, Vec::len),
        PER_ACCOUNT
    );
    for w in workers {
        assert_eq!(counters(w), (0, 0), "the session went on");
    }
    client.close().await;
}

/// One registry of 200,000 channels, filled once: a second instance started
/// beside it, the unscoped query over all of them, then a third instance
/// started while calls come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_200k_channels_new_instances_answer_completely() {
    let vh = TestVhost::watched("scale", SCALE_LIMIT);
    let (first, accounts) = first_holding_everything(&vh).await;
    let second = another_instance_answers_complete(&vh, &accounts, &[&first], false).await;
    unscoped_fields_all(&vh, &accounts, &[&first, &second]).await;
    let third = another_instance_answers_complete(&vh, &accounts, &[&first, &second], true).await;
    third.shutdown().await;
    second.shutdown().await;
    first.shutdown().await;
}
