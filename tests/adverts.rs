//! Node advertisement on Kazoo's `nodes` exchange (NODES.md §1), seen by a
//! `nodes` consumer as every Kazoo node's `kz_nodes` sees it: the cadence, the
//! keys, the last advert on SIGTERM, `status`, and the setting that turns it
//! off. On the shared broker, each test in a vhost of its own.

mod common;

use std::time::Duration;

use common::{NodesTap, TestVhost, exit_status, spawn_binary, status_replies};
use kazoo_channels::kapi::time::gregorian_now_secs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adverts_come_at_the_cadence_and_the_last_one_expires_at_once() {
    let vh = TestVhost::new("advert");
    let mut nodes = NodesTap::open(&vh.url()).await;
    let node = format!("kazoo-channels-adv{}@test-host", &common::hex_id()[..6]);
    let child = spawn_binary(
        &vh,
        &[
            ("KAZOO_CHANNELS__NODE__NAME", node.as_str()),
            ("KAZOO_CHANNELS__NODE__ADVERTISE_INTERVAL_SECS", "1"),
            ("KAZOO_CHANNELS__AMQP__ZONE", "z100"),
        ],
    );
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let a = nodes
            .next(Duration::from_secs(15))
            .await
            .expect("an advert within 15 s of starting, then every second");
        eprintln!("nodes consumer: {}", a.body);
        seen.push(a);
    }
    for a in &seen {
        let v = &a.body;
        assert_eq!(v["Node"], node.as_str(), "the configured node, every time");
        assert_eq!(v["Expires"], 1500, "1.5 times the interval");
        assert_eq!(v["Zone"], "z100");
        assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
        let startup = v["WhApps"]["kazoo-channels"]["Startup"].as_u64().unwrap();
        assert!(gregorian_now_secs() - startup < 60, "started just now: {v}");
    }
    let startups: Vec<_> = seen
        .iter()
        .map(|a| a.body["WhApps"]["kazoo-channels"]["Startup"].clone())
        .collect();
    assert!(
        startups.windows(2).all(|w| w[0] == w[1]),
        "one startup per instance"
    );
    let ids: std::collections::HashSet<_> =
        seen.iter().map(|a| a.body["Msg-ID"].to_string()).collect();
    assert_eq!(ids.len(), 3, "a new Msg-ID each time");
    for w in seen.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(600) && gap <= Duration::from_millis(1800),
            "a steady cadence within Expires: {gap:?}"
        );
    }

    // `status` shows when it last advertised.
    let client = vh.client("operator").await;
    let replies = status_replies(&client, Duration::from_millis(500)).await;
    client.close().await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    let now_unix = gregorian_now_secs() - 62_167_219_200;
    let last = replies[0]["Last-Advert"].as_u64().expect("Last-Advert set");
    assert!(now_unix - last <= 3, "{}", replies[0]);
    assert_eq!(replies[0]["Zone"], "z100");

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let last = loop {
        let a = nodes
            .next(Duration::from_secs(10))
            .await
            .expect("the last advert after SIGTERM");
        if a.body["Expires"] == 0 {
            break a;
        }
    };
    eprintln!("nodes consumer: {}", last.body);
    assert_eq!(last.body["Node"], node.as_str());
    let status = exit_status(child).await;
    assert!(status.success(), "{status:?}");
    assert!(
        nodes.drain(Duration::from_millis(1500)).await.is_empty(),
        "nothing after the last advert"
    );
    nodes.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_worker_advertises_until_it_stops_and_not_when_turned_off() {
    let vh = TestVhost::new("advert-off");
    let mut nodes = NodesTap::open(&vh.url()).await;
    let mut s = vh.settings();
    s.node.advertise = false;
    let quiet = vh.worker_with(s).await;
    let client = vh.client("operator").await;
    let replies = status_replies(&client, Duration::from_millis(500)).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0]["Last-Advert"].is_null(), "{}", replies[0]);
    assert!(
        nodes.next(Duration::from_secs(2)).await.is_none(),
        "node.advertise = false: no advert"
    );
    quiet.shutdown().await;
    assert!(
        nodes.next(Duration::from_secs(1)).await.is_none(),
        "nor a last one"
    );

    let mut s = vh.settings();
    s.node.advertise_interval_secs = 1;
    let w = vh.worker_with(s).await;
    let first = nodes.next(Duration::from_secs(5)).await.expect("an advert");
    assert!(
        first.body.get("Zone").is_none(),
        "no zone configured, none sent"
    );
    assert_eq!(first.body["Node"], w.state.identity.node.as_str());
    assert!(w.state.identity.node.contains('@'));
    w.shutdown().await;
    let adverts = nodes.drain(Duration::from_millis(1500)).await;
    assert_eq!(
        adverts.last().map(|a| a.body["Expires"].clone()),
        Some(serde_json::json!(0)),
        "the last advert on stopping: {adverts:?}"
    );
    client.close().await;
    nodes.close().await;
}
