//! Channel commands against a real broker.

mod common;

use common::*;
use kazoo_channels::bus::BusPublisher;
use kazoo_channels::kapi::{Outgoing, PublishOutcome};
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_publish_outcomes_are_attributed_to_the_right_message() {
    let vh = TestVhost::new("returned");
    let client = vh.client("probe").await; // declares Kazoo's exchanges
    let conn = kazoo_channels::bus::connect(&vh.url(), "probe")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "routed".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "routed".into(),
        "metaflow".into(),
        "metaflow.action.routed.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let p = BusPublisher::open(&conn).await.unwrap();
    let msg = |rk: &str| Outgoing::new("metaflow", rk.to_owned(), b"{}".to_vec()).mandatory();
    assert_eq!(
        p.send(&msg("metaflow.action.nobody.hangup")).await.unwrap(),
        PublishOutcome::Returned
    );
    assert_eq!(
        p.send(&msg("metaflow.action.routed.hangup")).await.unwrap(),
        PublishOutcome::Confirmed
    );
    // Many at once on one publisher, routed and unroutable interleaved.
    let futs = (0..200).map(|i| {
        let p = p.clone();
        let m = msg(if i % 2 == 0 {
            "metaflow.action.routed.hangup"
        } else {
            "metaflow.action.nobody.hangup"
        });
        async move { (i, p.send(&m).await.unwrap()) }
    });
    let results = futures_util::future::join_all(futs).await;
    let wrong: Vec<_> = results
        .iter()
        .filter(|(i, o)| {
            *o != if i % 2 == 0 {
                PublishOutcome::Confirmed
            } else {
                PublishOutcome::Returned
            }
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of 200 misattributed: {wrong:?}",
        wrong.len()
    );
    client.close().await;
}
