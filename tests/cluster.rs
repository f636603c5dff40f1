//! Several instances on one broker: warm start from a peer or from ecallmgr,
//! the status request, re-warming after a lost event queue, reconcile.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use kazoo_channels::bus::Collect;
use kazoo_channels::cluster;
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::simulate::{self, SimulateArgs};
use kazoo_channels::stats::Stats;
use kazoo_channels::worker::WorkerHandle;
use serde_json::{Value, json};

fn ids(w: &WorkerHandle) -> BTreeSet<String> {
    w.registry().iter().map(|c| c.uuid.to_string()).collect()
}

fn sim(calls: u64, rate: f64, leave_up: bool) -> SimulateArgs {
    SimulateArgs {
        calls,
        rate,
        accounts: 5,
        hold_ms: 300,
        leave_up,
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_warms_from_its_peer_under_load() {
    let vh = TestVhost::new("warmpeer");
    let first = vh.worker().await;
    simulate::run(&vh.url(), &sim(1000, 4000.0, true))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(30), || first.registry().len() == 2000).await);

    // Calls keep coming and going while the second instance starts.
    let url = vh.url();
    let load = tokio::spawn(async move { simulate::run(&url, &sim(300, 150.0, false)).await });
    let mut settings = vh.settings();
    settings.cluster.snapshot_timeout_ms = 3000;
    let second = vh.worker_with(settings).await;
    assert!(
        second.shared.warmed_from().starts_with("peer "),
        "{}",
        second.shared.warmed_from()
    );
    assert!(
        second.registry().len() >= 2000,
        "warm with the peer's 2,000 channels"
    );
    load.await.unwrap().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || ids(&first) == ids(&second)
            && first.registry().len() == 2000)
        .await,
        "registries differ: {} vs {}",
        first.registry().len(),
        second.registry().len()
    );
    second.shutdown().await;
    first.shutdown().await;
}

/// The constructed ecallmgr `query_channels_resp` (Fields: all), for a fresh call.
fn ecallmgr_channels(call_id: &str, account: &str) -> Value {
    let mut reply = fixture("query_channels_resp.fields-all.from-ecallmgr-4.3.json");
    let mut ch = reply["Channels"]["a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91"].take();
    ch["Call-ID"] = json!(call_id);
    ch["Account-ID"] = json!(account);
    reply["Channels"] = json!({ call_id: ch });
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_peer_it_seeds_from_ecallmgr() {
    let vh = TestVhost::new("warmecallmgr");
    let (call, account) = (format!("{}@10.26.0.91", hex_id()), hex_id());
    let reply = ecallmgr_channels(&call, &account);
    let ecallmgr = StandIn::start(
        &vh,
        "ecallmgr",
        &[("callevt", "call.status_req.*")],
        move |req| {
            (req["Event-Name"] == "query_channels_req" && req["Fields"] == "all")
                .then(|| reply.clone())
        },
    )
    .await;
    let w = vh.worker().await;
    assert!(
        w.shared.warmed_from().starts_with("ecallmgr"),
        "{}",
        w.shared.warmed_from()
    );
    {
        let reg = w.registry();
        let ch = reg.get(&call).expect("seeded channel");
        assert_eq!(ch.account_id.as_deref(), Some(account.as_str()));
        assert!(ch.answered);
        assert_eq!(reg.by_account(&account).count(), 1);
    }
    let asked = ecallmgr.received();
    assert!(
        asked
            .iter()
            .any(|(rk, v)| rk == "call.status_req.channels" && v["App-Name"] == "kazoo-channels")
    );
    w.shutdown().await;
    ecallmgr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_answers_status() {
    let vh = TestVhost::new("status");
    let workers = [vh.worker().await, vh.worker().await, vh.worker().await];
    let client = vh.client("operator").await;
    let replies = client
        .request(
            "callctl",
            cluster::STATUS_ROUTING_KEY,
            "channels",
            "status_req",
            Default::default(),
            Collect::all(Duration::from_millis(800)),
        )
        .await
        .unwrap();
    let nodes: BTreeSet<&str> = replies.iter().filter_map(|r| r["Node"].as_str()).collect();
    let expected: BTreeSet<&str> = workers
        .iter()
        .map(|w| w.shared.identity.node.as_str())
        .collect();
    assert_eq!(
        nodes, expected,
        "one answer per instance, each with its own Node"
    );
    for r in &replies {
        assert_eq!(r["State"], "warm", "{replies:#?}");
        schemas().validate("channels.status_resp", r, "").unwrap();
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
        .args(["status", "--timeout", "0.8"])
        .env("KAZOO_CHANNELS__AMQP__URL", vh.url())
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for w in &workers {
        assert!(table.contains(&w.shared.identity.node), "{table}");
    }
    client.close().await;
    for w in workers {
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_event_queue_is_redeclared_and_the_registry_kept() {
    let vh = TestVhost::new("lostqueue");
    let w = vh.worker().await;
    simulate::run(&vh.url(), &sim(100, 2000.0, true))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || w.registry().len() == 200).await);
    let queue = w.shared.topology.queue("events").unwrap().name.clone();
    let del = std::process::Command::new("rabbitmqctl")
        .args(["-q", "delete_queue", &queue, "-p", &vh.name])
        .output()
        .unwrap();
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    // The consumer is cancelled; the worker reconnects, redeclares and re-warms.
    assert!(
        eventually(Duration::from_secs(20), || Stats::get(
            &w.shared.stats.warmups
        ) == 2)
        .await
    );
    assert!(w.wait_connected(Duration::from_secs(10)).await);
    assert_eq!(
        w.registry().len(),
        200,
        "re-warming merges; it never empties the registry"
    );
    simulate::run(&vh.url(), &sim(10, 2000.0, true))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || w.registry().len() == 220).await,
        "events flow again"
    );
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_drops_what_ecallmgr_reports_terminated() {
    let vh = TestVhost::new("reconcile");
    let w = vh.worker().await;
    let account = hex_id();
    let (gone, alive) = (
        format!("{}@10.26.0.1", hex_id()),
        format!("{}@10.26.0.2", hex_id()),
    );
    let client = vh.client("ecallmgr").await;
    for call in [&gone, &alive] {
        client
            .publish(&event_msg(&a_leg_event("CHANNEL_CREATE", call, &account)))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(10), || w.registry().len() == 2).await);
    // Two ecallmgrs: each says terminated for a call it does not hold.
    let alive_id = alive.clone();
    let holder = StandIn::start(&vh, "ecallmgr", &[("callevt", "call.status_req.*")], move |req| {
        let active = req["Call-ID"] == alive_id.as_str();
        Some(json!({"Event-Category": "call_event", "Event-Name": "channel_status_resp", "Call-ID": req["Call-ID"],
            "Status": if active { "active" } else { "terminated" }}))
    })
    .await;
    let other = StandIn::start(&vh, "ecallmgr", &[("callevt", "call.status_req.*")], |req| {
        Some(json!({"Event-Category": "call_event", "Event-Name": "channel_status_resp", "Call-ID": req["Call-ID"],
            "Status": "terminated", "Error-Msg": "no node found with channel"}))
    })
    .await;
    let dropped = cluster::reaper::reconcile(&w.shared, 0, 100).await;
    assert_eq!(dropped, 1);
    assert!(w.registry().get(&gone).is_none());
    assert!(w.registry().get(&alive).is_some());
    assert_eq!(Stats::get(&w.shared.stats.channels_reconciled), 1);
    // A late event for the dropped call raises no ghost.
    client
        .publish(&event_msg(&a_leg_event("CHANNEL_ANSWER", &gone, &account)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.registry().get(&gone).is_none());
    holder.stop().await;
    other.stop().await;
    client.close().await;
    w.shutdown().await;
}
