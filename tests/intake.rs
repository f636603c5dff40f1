//! The foundation against a real broker: topology, event intake, bad input,
//! and the simulator.

mod common;

use std::time::Duration;

use common::*;
use kazoo_channels::bus::Topology;
use kazoo_channels::cli::simulate::{self, SimulateArgs};
use kazoo_channels::kapi::Outgoing;
use kazoo_channels::stats::Stats;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_on_exchanges_kazoo_declared_and_binds_what_the_files_say() {
    let vh = TestVhost::new("topology");
    // Kazoo got there first, with kz_amqp_util's flags.
    let conn = Connection::connect(&vh.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for (name, kind) in [
        ("callevt", ExchangeKind::Topic),
        ("targeted", ExchangeKind::Direct),
        ("callctl", ExchangeKind::Direct),
        ("metaflow", ExchangeKind::Topic),
    ] {
        let opts = ExchangeDeclareOptions {
            durable: false,
            auto_delete: false,
            ..Default::default()
        };
        ch.exchange_declare(name.into(), kind, opts, FieldTable::default())
            .await
            .unwrap();
    }

    let w = vh.worker().await;
    let topo = Topology::for_instance(&w.state.instance);
    let bound = vh.bindings();
    // Bindings to Kazoo 5.1+'s `channels` wait for that exchange (tests/kazoo5.rs).
    for q in &topo.queues {
        for b in q.bindings.iter().filter(|b| !b.passive_exchange) {
            assert!(
                bound
                    .iter()
                    .any(|(s, d, k)| s == &b.exchange && d == &q.name && k == &b.routing_key),
                "missing binding {} -> {} ({}) in {bound:?}",
                b.exchange,
                q.name,
                b.routing_key
            );
        }
    }
    let ours: Vec<_> = bound
        .iter()
        .filter(|(_, d, _)| d.starts_with("kazoo-channels."))
        .collect();
    let declared = topo
        .queues
        .iter()
        .flat_map(|q| &q.bindings)
        .filter(|b| !b.passive_exchange)
        .count();
    assert_eq!(
        ours.len(),
        declared,
        "no binding beyond amqp-bindings/: {ours:?}"
    );
    w.shutdown().await;
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_events_build_and_clear_the_registry() {
    let vh = TestVhost::new("intake");
    let w = vh.worker().await;
    let client = vh.client("ecallmgr").await;
    let account = hex_id();
    let call = format!("{}@10.26.0.91", uuid::Uuid::new_v4());

    for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE"] {
        client
            .publish(&event_msg(&a_leg_event(name, &call, &account)))
            .await
            .unwrap();
    }
    until_bridged(&w, &call).await;
    {
        let reg = w.registry();
        let ch = reg.get(&call).unwrap();
        assert!(ch.answered);
        assert_eq!(ch.account_id.as_deref(), Some(account.as_str()));
        assert_eq!(reg.by_account(&account).count(), 1);
    }
    // A second ecallmgr's copy of the CREATE changes nothing.
    client
        .publish(&event_msg(&a_leg_event("CHANNEL_CREATE", &call, &account)))
        .await
        .unwrap();
    client
        .publish(&event_msg(&a_leg_event("CHANNEL_DESTROY", &call, &account)))
        .await
        .unwrap();
    assert!(eventually(WAIT, || w.registry().get(&call).is_none()).await);
    assert_eq!(w.registry().by_account(&account).count(), 0);
    client.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_acked_logged_and_skipped() {
    let vh = TestVhost::new("badinput");
    let w = vh.worker().await;
    let client = vh.client("ecallmgr").await;
    let account = hex_id();
    let call = format!("{}@10.26.0.91", uuid::Uuid::new_v4());

    client
        .publish(&Outgoing::new(
            "callevt",
            "call.CHANNEL_CREATE.x",
            b"not json".to_vec(),
        ))
        .await
        .unwrap();
    let mut no_id = a_leg_event("CHANNEL_CREATE", &call, &account);
    no_id.as_object_mut().unwrap().remove("Call-ID");
    client
        .publish(&Outgoing::json("callevt", "call.CHANNEL_CREATE.y", &no_id))
        .await
        .unwrap();
    client
        .publish(&Outgoing::new(
            "callevt",
            "call.CHANNEL_ANSWER.z",
            vec![0xff, 0xfe],
        ))
        .await
        .unwrap();
    client
        .publish(&event_msg(&a_leg_event("CHANNEL_CREATE", &call, &account)))
        .await
        .unwrap();

    assert!(
        eventually(WAIT, || w.registry().get(&call).is_some()).await,
        "worker stopped after bad input"
    );
    assert_eq!(Stats::get(&w.state.stats.events_rejected), 3);
    // Acked, not requeued: the queue is empty.
    let q = &w.state.topology.queue("events").unwrap().name;
    assert_eq!(vh.queue_depth(q), Some((0, 0)), "messages left on {q}");
    client.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_leaves_both_legs_up_or_cleans_up() {
    let vh = TestVhost::new("simulate");
    let w = vh.worker().await;
    let args = SimulateArgs {
        calls: 1000,
        rate: 5000.0,
        accounts: 4,
        hold_ms: 50,
        leave_up: true,
        progress: false,
        account_ids: Vec::new(),
    };
    let r = simulate::run(&vh.url(), &args).await.unwrap();
    assert_eq!(r.calls, 1000);
    assert!(
        eventually(Duration::from_secs(30), || w.registry().len() == 2000).await,
        "have {}",
        w.registry().len()
    );
    // The last calls' BRIDGE events may still be on their way.
    let bridged = || {
        w.registry()
            .iter()
            .filter(|c| c.other_leg.is_some() && c.answered)
            .count()
    };
    assert!(
        eventually(Duration::from_secs(10), || bridged() == 2000).await,
        "every leg answered and bridged: {}",
        bridged()
    );

    let r = simulate::run(
        &vh.url(),
        &SimulateArgs {
            leave_up: false,
            calls: 300,
            ..args
        },
    )
    .await
    .unwrap();
    assert_eq!(r.destroyed_calls, 300);
    // 6 events per call set up, 2 more per call hung up.
    let all_events = 1000 * 6 + 300 * 8;
    assert!(
        eventually(Duration::from_secs(30), || {
            Stats::get(&w.state.stats.events_applied) == all_events && w.registry().len() == 2000
        })
        .await,
        "count did not come back to 2000: {}",
        w.registry().len()
    );
    w.shutdown().await;
}
