//! Several instances on one broker: warm start from a peer or from ecallmgr,
//! the status request, re-warming after a lost event queue, reconcile.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use kazoo_channels::app::WorkerHandle;
use kazoo_channels::bus::Collect;
use kazoo_channels::cli::simulate::{self, SimulateArgs};
use kazoo_channels::cluster;
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::stats::Stats;
use serde_json::{Value, json};

fn ids(w: &WorkerHandle) -> BTreeSet<String> {
    w.registry().iter().map(|c| c.uuid.to_string()).collect()
}

/// `calls` calls over `accounts` new accounts, published fast and left up.
async fn leave_up(vh: &TestVhost, calls: u64, accounts: usize) {
    let args = SimulateArgs {
        accounts,
        ..sim(calls, 4000.0, true)
    };
    simulate::run(&vh.url(), &args).await.unwrap();
}

fn sim(calls: u64, rate: f64, leave_up: bool) -> SimulateArgs {
    SimulateArgs {
        calls,
        rate,
        accounts: 5,
        hold_ms: 300,
        leave_up,
        progress: false,
        account_ids: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_warms_from_its_peer_under_load() {
    let vh = TestVhost::new("warmpeer");
    let first = vh.worker().await;
    leave_up(&vh, 1000, 5).await;
    assert!(eventually(Duration::from_secs(30), || first.registry().len() == 2000).await);

    // Calls keep coming and going while the second instance starts.
    let url = vh.url();
    let load = tokio::spawn(async move { simulate::run(&url, &sim(300, 150.0, false)).await });
    let mut settings = vh.settings();
    settings.cluster.snapshot_timeout_ms = 3000;
    let second = vh.worker_with(settings).await;
    assert!(
        second.state.warmed_from().starts_with("peer "),
        "{}",
        second.state.warmed_from()
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
        w.state.warmed_from().starts_with("ecallmgr"),
        "{}",
        w.state.warmed_from()
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
    let replies = status_replies(&client, Duration::from_millis(800)).await;
    let nodes: BTreeSet<&str> = replies.iter().filter_map(|r| r["Node"].as_str()).collect();
    let expected: BTreeSet<&str> = workers
        .iter()
        .map(|w| w.state.identity.node.as_str())
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
        assert!(table.contains(&w.state.identity.node), "{table}");
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
    let queue = w.state.topology.queue("events").unwrap().name.clone();
    vh.delete_queue(&queue);
    // The consumer is cancelled; the worker reconnects, redeclares and re-warms.
    assert!(
        eventually(Duration::from_secs(20), || Stats::get(
            &w.state.stats.warmups
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
    let dropped = cluster::reaper::reconcile(&w.state, 0, 100).await;
    assert_eq!(dropped, 1);
    assert!(w.registry().get(&gone).is_none());
    assert!(w.registry().get(&alive).is_some());
    assert_eq!(Stats::get(&w.state.stats.channels_reconciled), 1);
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

/// What Crossbar sends for `GET /v2/accounts/{A}/channels`.
fn account_query(account: &str) -> serde_json::Map<String, Value> {
    let v = json!({"Account-ID": account, "Active-Only": false, "Usernames": []});
    v.as_object().unwrap().clone()
}

fn uuids(reply: &Value) -> BTreeSet<String> {
    reply["Channels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["uuid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Sends `queries` account queries (round-robin over `accounts` and `clients`)
/// all at once; returns, per query, its account and every reply it got.
async fn query_burst(
    clients: &[kazoo_channels::bus::BusClient],
    accounts: &[String],
    queries: usize,
    window: Duration,
) -> Vec<(String, Vec<Value>)> {
    let asks = (0..queries).map(|i| {
        let account = accounts[i % accounts.len()].clone();
        let client = &clients[i % clients.len()];
        async move {
            let rk = format!("call.status_req.{account}");
            let replies = client
                .request(
                    "callevt",
                    &rk,
                    "call_event",
                    "query_account_channels_req",
                    account_query(&account),
                    Collect::all(window),
                )
                .await
                .unwrap();
            (account, replies)
        }
    });
    futures_util::future::join_all(asks).await
}

fn accounts_of(w: &WorkerHandle) -> Vec<String> {
    let set: BTreeSet<String> = w
        .registry()
        .iter()
        .filter_map(|c| c.account_id.as_deref().map(str::to_owned))
        .collect();
    set.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_answer_each_query_exactly_once() {
    let vh = TestVhost::new("threeinst");
    let workers = [vh.worker().await, vh.worker().await, vh.worker().await];
    leave_up(&vh, 500, 50).await;
    for w in &workers {
        assert!(eventually(Duration::from_secs(30), || w.registry().len() == 1000).await);
    }
    let accounts = accounts_of(&workers[0]);
    assert_eq!(accounts.len(), 50);
    let clients = [
        vh.client("crossbar").await,
        vh.client("crossbar").await,
        vh.client("callflow").await,
    ];
    let began = std::time::Instant::now();
    let results = query_burst(&clients, &accounts, 1000, Duration::from_millis(4000)).await;
    let unanswered = results.iter().filter(|(_, r)| r.is_empty()).count();
    eprintln!("burst took {:?}; unanswered {unanswered}", began.elapsed());
    for w in &workers {
        eprintln!(
            "{} answered {} rejected {} warm {}",
            w.state.identity.node,
            Stats::get(&w.state.stats.requests_answered),
            Stats::get(&w.state.stats.requests_rejected),
            w.state.is_warm()
        );
    }
    let mut by_node: std::collections::BTreeMap<String, usize> = Default::default();
    for (account, replies) in &results {
        assert_eq!(
            replies.len(),
            1,
            "exactly one answer for {account}: {replies:?}"
        );
        let expected: BTreeSet<String> = workers[0]
            .registry()
            .by_account(account)
            .map(|c| c.uuid.to_string())
            .collect();
        assert_eq!(
            uuids(&replies[0]),
            expected,
            "the full channel set of {account}"
        );
        *by_node
            .entry(replies[0]["Node"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        by_node.len(),
        3,
        "the queries were spread over the three instances: {by_node:?}"
    );
    for c in &clients {
        assert_eq!(c.stray_replies(), 0, "no late or unmatched replies");
    }
    for c in clients {
        c.close().await;
    }
    for w in workers {
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_answers_its_first_query_with_everything() {
    let vh = TestVhost::new("newanswers");
    let mut system_wide = vh.settings();
    system_wide.queries.system_wide_listing = true;
    let peers = [
        vh.worker_with(system_wide.clone()).await,
        vh.worker_with(system_wide.clone()).await,
    ];
    leave_up(&vh, 1000, 5).await;
    assert!(
        eventually(Duration::from_secs(30), || peers
            .iter()
            .all(|p| p.registry().len() == 2000))
        .await
    );
    system_wide.cluster.snapshot_timeout_ms = 3000;
    let newcomer = vh.worker_with(system_wide).await;
    // Only the newcomer is left to answer.
    for p in peers {
        p.shutdown().await;
    }
    let client = vh.client("crossbar").await;
    let replies = client
        .request(
            "callevt",
            "call.status_req.all",
            "call_event",
            "query_account_channels_req",
            account_query("all"),
            Collect::first(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["Node"], newcomer.state.identity.node.as_str());
    assert_eq!(
        uuids(&replies[0]).len(),
        2000,
        "its first answer lists all 2,000 channels"
    );
    client.close().await;
    newcomer.shutdown().await;
}

/// A child process that is killed if the test ends without reaping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_mid_flight_loses_no_query() {
    let vh = TestVhost::new("kill");
    let mut children = vec![
        spawn_binary(&vh, &[]),
        spawn_binary(&vh, &[]),
        spawn_binary(&vh, &[]),
    ];
    wait_for_instances(&vh, 3, 0).await;
    leave_up(&vh, 500, 50).await;
    let status = wait_for_instances(&vh, 3, 1000).await;
    let nodes: Vec<String> = status
        .iter()
        .map(|r| r["Node"].as_str().unwrap().to_owned())
        .collect();

    // Learn the accounts and their channel sets from one answer each.
    let clients = [
        vh.client("crossbar").await,
        vh.client("crossbar").await,
        vh.client("crossbar").await,
    ];
    let mut observer = vh.settings();
    observer.cluster.snapshot_timeout_ms = 3000;
    let observer = vh.worker_with(observer).await;
    let accounts = accounts_of(&observer);
    observer.shutdown().await;
    assert_eq!(accounts.len(), 50);

    // Kill one instance (SIGKILL: no goodbye) while the burst is being answered.
    let mut victim = children.remove(0).take();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        victim.kill().unwrap();
        victim.wait().unwrap();
    });
    let results = query_burst(&clients, &accounts, 1000, Duration::from_millis(4000)).await;
    killer.await.unwrap();
    let live: Vec<String> = wait_for_instances(&vh, 2, 1000)
        .await
        .iter()
        .map(|r| r["Node"].as_str().unwrap().to_owned())
        .collect();
    let victim_node = nodes
        .iter()
        .find(|n| !live.contains(n))
        .expect("one node is gone")
        .clone();

    let mut twice = 0;
    let mut sets: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for (account, replies) in &results {
        assert!(!replies.is_empty(), "query for {account} unanswered");
        assert!(replies.len() <= 2, "answered {} times", replies.len());
        for r in replies {
            let got = uuids(r);
            assert_eq!(got.len(), 20, "the full set of {account}");
            let expected = sets.entry(account).or_insert_with(|| got.clone());
            assert_eq!(&got, expected, "every instance answers with the same set");
        }
        if replies.len() == 2 {
            twice += 1;
            // Only a request in flight on the killed instance can be answered twice:
            // it answered, died before its ack, and another instance got it again.
            let answered_by: Vec<&str> =
                replies.iter().filter_map(|r| r["Node"].as_str()).collect();
            assert!(
                answered_by.contains(&victim_node.as_str()),
                "answered twice by live instances: {answered_by:?}"
            );
        }
    }
    eprintln!("{twice} of 1000 queries were answered twice (in flight on the killed instance)");
    for c in clients {
        c.close().await;
    }
    drop(children);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_exits_zero() {
    let vh = TestVhost::new("sigterm");
    let child = spawn_binary(&vh, &[]);
    wait_for_instances(&vh, 1, 0).await;
    leave_up(&vh, 40, 4).await;
    wait_for_instances(&vh, 1, 80).await;
    let mut observer = vh.settings();
    observer.cluster.snapshot_timeout_ms = 3000;
    let observer = vh.worker_with(observer).await;
    let accounts = accounts_of(&observer);
    observer.shutdown().await;

    let clients = [vh.client("crossbar").await, vh.client("crossbar").await];
    let pid = child.id().to_string();
    let terminator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    });
    let results = query_burst(&clients, &accounts, 200, Duration::from_millis(4000)).await;
    terminator.await.unwrap();
    let answered = results.iter().filter(|(_, r)| r.len() == 1).count();
    assert_eq!(
        answered, 200,
        "every request in flight at SIGTERM is answered, once"
    );
    let status = exit_status(child).await;
    assert!(status.success(), "exit status {status:?}");
    for c in clients {
        c.close().await;
    }
}

/// `kazoo-channels health` with the liveness file at `file`: (exit code, stdout).
fn health_probe(file: &str) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
        .arg("health")
        .env("KAZOO_CHANNELS__HEALTH__FILE", file)
        .output()
        .expect("the probe runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The container HEALTHCHECK's path: the worker keeps its liveness file while
/// it is connected and warm, and removes it when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_probe_follows_the_worker() {
    let vh = TestVhost::new("health");
    let dir = std::env::temp_dir().join(format!("kc-health-{}", hex_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("alive").to_str().unwrap().to_owned();
    assert_eq!(health_probe("").0, 2, "no file configured");
    let (code, said) = health_probe(&file);
    assert_eq!(code, 1, "no worker yet: {said}");
    assert!(said.starts_with("unhealthy: no liveness file"), "{said}");

    let child = spawn_binary(&vh, &[("KAZOO_CHANNELS__HEALTH__FILE", &file)]);
    wait_for_instances(&vh, 1, 0).await;
    let mut probe = health_probe(&file);
    for _ in 0..40 {
        if probe.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        probe = health_probe(&file);
    }
    assert_eq!(probe.0, 0, "a warm worker is healthy: {}", probe.1);
    assert!(
        probe.1.starts_with("healthy: kazoo-channels-") && probe.1.contains("channels=0"),
        "{}",
        probe.1
    );

    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = exit_status(child).await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(health_probe(&file).0, 1, "a stopped worker is not healthy");
    std::fs::remove_dir_all(&dir).unwrap();
}
