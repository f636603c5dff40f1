//! Broker faults: a killed connection and a broker restart. These disturb every
//! connection on the broker, so this target is not run by a plain `cargo test`;
//! `scripts/test` runs it last, one test at a time.

mod common;

use std::time::Duration;

use common::*;
use kazoo_channels::cli::simulate::{self, SimulateArgs};
use kazoo_channels::stats::Stats;

fn calls(n: u64) -> SimulateArgs {
    SimulateArgs {
        calls: n,
        rate: 2000.0,
        accounts: 2,
        hold_ms: 100,
        leave_up: true,
        progress: false,
        account_ids: Vec::new(),
    }
}

/// Asks every instance for its status; true when `node` answered.
async fn answers_status(vh: &TestVhost, node: &str) -> bool {
    let Ok(client) = kazoo_channels::bus::BusClient::connect(&vh.url(), "operator").await else {
        return false;
    };
    let replies = status_replies(&client, Duration::from_secs(1)).await;
    client.close().await;
    replies.iter().any(|r| r["Node"] == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_closed_connection() {
    let vh = TestVhost::new("closeconn");
    let w = vh.worker().await;
    simulate::run(&vh.url(), &calls(50)).await.unwrap();
    assert!(eventually(Duration::from_secs(20), || w.registry().len() == 100).await);

    rabbitmqctl(&["close_all_connections", "--vhost", &vh.name, "fault test"]);
    assert!(
        eventually(Duration::from_secs(15), || Stats::get(
            &w.state.stats.reconnects
        ) >= 1)
        .await
    );
    assert!(
        w.wait_connected(Duration::from_secs(15)).await,
        "reconnected"
    );
    assert!(eventually(Duration::from_secs(15), || w.state.is_warm()).await);
    assert_eq!(w.registry().len(), 100, "the registry was kept");
    simulate::run(&vh.url(), &calls(5)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(15), || w.registry().len() == 110).await,
        "events flow again"
    );
    assert!(answers_status(&vh, &w.state.identity.node).await);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart() {
    let vh = TestVhost::new("restart");
    let w = vh.worker().await;
    simulate::run(&vh.url(), &calls(50)).await.unwrap();
    assert!(eventually(Duration::from_secs(20), || w.registry().len() == 100).await);

    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_ne!(w.status(), kazoo_channels::app::BusStatus::Connected);
    assert_eq!(w.registry().len(), 100, "kept while the broker is down");
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    let restarted = tokio::time::Instant::now();

    // Serving again within 15 s, without being restarted.
    assert!(
        eventually(Duration::from_secs(15), || w.state.is_warm()
            && w.status() == kazoo_channels::app::BusStatus::Connected)
        .await,
        "not serving again"
    );
    let mut serving = false;
    while !serving && restarted.elapsed() < Duration::from_secs(15) {
        serving = answers_status(&vh, &w.state.identity.node).await;
    }
    assert!(serving, "no status answer within 15 s of the restart");
    assert!(
        Stats::get(&w.state.stats.warmups) >= 2,
        "its event queue was lost, so it re-warmed"
    );
    assert_eq!(
        w.registry().len(),
        100,
        "re-warming merged; the channels up before are still listed"
    );
    simulate::run(&vh.url(), &calls(5)).await.unwrap();
    assert!(
        eventually(Duration::from_secs(15), || w.registry().len() == 110).await,
        "a call made after the restart shows up"
    );
    w.shutdown().await;
}
