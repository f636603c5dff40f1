//! Our queues on every RabbitMQ from 3.10 to 4.3 with its defaults: none of
//! them a deprecated kind (kazoo/BROKERS.md, "RabbitMQ 4.x"); a rolling
//! upgrade from a release that declared the shared queues transient, served
//! at once beside the old instances; a broker that refuses the session right
//! after connecting met with backoff and one log line per refusal.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestVhost, a_leg_event, event_msg, hex_id, until_answered};
use futures_util::StreamExt;
use kazoo_channels::bus::{self, BusClient, Collect, Topology};
use kazoo_channels::config::QueueType;
use kazoo_channels::kapi::asks;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

/// What RabbitMQ 4.3 refuses or removed, in a queue as the broker lists it.
fn deprecated(q: &Value) -> Option<String> {
    let name = q["name"].as_str().unwrap_or_default();
    let args = q["arguments"].to_string();
    if q["durable"] != true && q["exclusive"] != true {
        return Some(format!("{name}: transient and not exclusive"));
    }
    ["x-queue-master-locator", "x-queue-mode"]
        .iter()
        .find(|a| args.contains(*a))
        .map(|a| format!("{name}: {a}"))
}

/// Crossbar's account query: every reply collected as `collect` says.
async fn account_query(client: &BusClient, account: &str, collect: Collect) -> Vec<Value> {
    client
        .ask(asks::account_channels(account), collect)
        .await
        .unwrap()
}

/// Starts a call in `account` and waits until `w` holds it.
async fn call_in(vh: &TestVhost, w: &kazoo_channels::app::WorkerHandle, account: &str) -> String {
    let call = hex_id();
    let client = vh.client("ecallmgr").await;
    for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
        client
            .publish(&event_msg(&a_leg_event(name, &call, account)))
            .await
            .unwrap();
    }
    client.close().await;
    until_answered(w, &[call.as_str()]).await;
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queue_a_run_leaves_is_one_rabbitmq_4_3_accepts_by_default() {
    for kind in [QueueType::Classic, QueueType::Quorum] {
        let vh = TestVhost::new("queue-kinds");
        let mut settings = vh.settings();
        settings.amqp.queue_type = kind;
        let first = vh.worker_with(settings.clone()).await;
        let account = hex_id();
        let call = call_in(&vh, &first, &account).await;
        // A second instance warms from the first (snapshots), an operator
        // asks for status, Crossbar asks a query: every queue of a run.
        let second = vh.worker_with(settings).await;
        assert!(second.registry().get(&call).is_some(), "{kind:?}");
        let client = vh.client("crossbar").await;
        let replies =
            account_query(&client, &account, Collect::first(Duration::from_secs(5))).await;
        assert_eq!(replies.len(), 1, "{kind:?}");
        assert_eq!(
            common::status_replies(&client, Duration::from_millis(500))
                .await
                .len(),
            2
        );

        let queues = vh.queues();
        let ours: Vec<&Value> = queues
            .iter()
            .filter(|q| q["name"].as_str().unwrap().starts_with("kazoo-channels."))
            .collect();
        // Shared queries, commands, snapshots; events and status per instance.
        assert_eq!(ours.len(), 3 + 2 * 2, "{kind:?}: {queues:?}");
        let refused: Vec<String> = queues.iter().filter_map(deprecated).collect();
        assert!(refused.is_empty(), "{kind:?}: {refused:?}");
        for q in &ours {
            let quorum = q["arguments"].to_string().contains("quorum");
            assert_eq!(quorum, kind == QueueType::Quorum, "{kind:?}: {q}");
        }
        client.close().await;
        second.shutdown().await;
        first.shutdown().await;
    }
}

/// The shared queues exactly as the previous release declared them
/// (transient, not exclusive), with a consumer of the old release answering
/// queries on them.
struct OldRelease {
    conn: Connection,
    /// The Event-Name of each request it answered.
    answered: Arc<Mutex<Vec<String>>>,
}

impl OldRelease {
    /// None on a broker that denies transient non-exclusive queues (RabbitMQ
    /// 4.3's default), where the previous release could not run at all.
    async fn start(vh: &TestVhost) -> Option<Self> {
        let mut old = Topology::for_instance("0ld0ld0ld0ld");
        for q in &mut old.queues {
            q.durable = false;
        }
        let conn = Connection::connect(&vh.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        if let Err(e) = bus::declare(&ch, &old).await {
            // The whole connection closed with 541, which our worker reads
            // as a refusal naming the broker setting to change.
            let refusal = e.refusal().unwrap_or_else(|| panic!("not a refusal: {e}"));
            assert!(
                refusal.broker_says.contains("transient_nonexcl_queues"),
                "{refusal:?}"
            );
            assert_eq!(refusal.key, "rabbitmq.conf");
            println!("upgrade: the broker denies the previous release's queues: {refusal:?}");
            return None;
        }
        let queries = old.queue("queries").unwrap().name.clone();
        let mut consumer = ch
            .basic_consume(
                queries.as_str().into(),
                "old-release".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let answered: Arc<Mutex<Vec<String>>> = Default::default();
        let log = answered.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let req: Value = serde_json::from_slice(&d.data).unwrap_or_default();
                let msg_id = req["Msg-ID"].as_str().unwrap_or_default().to_owned();
                let reply = json!({
                    "Msg-ID": msg_id, "App-Name": "kazoo-channels", "App-Version": "0.0.9",
                    "Event-Category": "channels", "Event-Name": "query_account_channels_resp",
                    "Node": "old-release@test", "Channels": [],
                });
                if let Some(to) = req["Server-ID"].as_str() {
                    ch.basic_publish(
                        "targeted".into(),
                        to.into(),
                        BasicPublishOptions::default(),
                        &serde_json::to_vec(&reply).unwrap(),
                        BasicProperties::default().with_content_type("application/json".into()),
                    )
                    .await
                    .unwrap();
                }
                let name = req["Event-Name"].as_str().unwrap_or_default();
                log.lock().unwrap().push(name.to_owned());
                let _ = d.ack(BasicAckOptions::default()).await;
            }
        });
        Some(Self { conn, answered })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_release_serves_at_once_beside_the_old_one_on_its_transient_queues() {
    let vh = TestVhost::new("rolling-upgrade");
    let Some(old) = OldRelease::start(&vh).await else {
        return;
    };
    let began = Instant::now();
    // Declaring ours would be a 406 (inequivalent arg 'durable'): used as
    // they are, so the new instance is up and warm as if they were ours.
    let new = vh.worker().await;
    let up_in = began.elapsed();
    let account = hex_id();
    let call = call_in(&vh, &new, &account).await;
    let reconnects = new
        .state
        .stats
        .reconnects
        .load(std::sync::atomic::Ordering::Relaxed);

    let client = vh.client("crossbar").await;
    let (mut from_new, mut from_old) = (0, 0);
    for _ in 0..40 {
        let replies =
            account_query(&client, &account, Collect::all(Duration::from_millis(300))).await;
        assert_eq!(replies.len(), 1, "each request answered once: {replies:?}");
        if replies[0]["Node"] == "old-release@test" {
            from_old += 1;
        } else {
            assert_eq!(replies[0]["Node"], new.state.identity.node.as_str());
            assert_eq!(replies[0]["Channels"][0]["uuid"], call.as_str());
            from_new += 1;
        }
    }
    println!(
        "upgrade: new instance warm in {up_in:?}; 40 queries: {from_new} by the new instance, {from_old} by the old one"
    );
    assert!(
        from_new > 0 && from_old > 0,
        "{from_new} new, {from_old} old"
    );
    // The old consumer also took the new instance's seeding request
    // (query_channels_req, on the same queue); its account queries are ours.
    let old_account_queries = old
        .answered
        .lock()
        .unwrap()
        .iter()
        .filter(|name| *name == "query_account_channels_req")
        .count();
    assert_eq!(old_account_queries, from_old);
    // The old queue stayed as it was, transient; no session was lost over it.
    let queues = vh.queues();
    let queries = queues
        .iter()
        .find(|q| q["name"] == "kazoo-channels.queries")
        .unwrap();
    assert_eq!(queries["durable"], false);
    assert_eq!(
        new.state
            .stats
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed),
        reconnects
    );

    // The old release is gone and the operator deletes its queue: the new
    // instance declares its own kind and serves from it.
    old.conn.close(200, "upgraded".into()).await.unwrap();
    vh.delete_queue("kazoo-channels.queries");
    let durable = || {
        vh.queues()
            .iter()
            .any(|q| q["name"] == "kazoo-channels.queries" && q["durable"] == true)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !durable() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(durable(), "ours declared once the old one went");
    assert!(new.wait_warm(Duration::from_secs(10)).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = Vec::new();
    while answered.len() != 1 && Instant::now() < deadline {
        answered = account_query(&client, &account, Collect::all(Duration::from_millis(300))).await;
    }
    assert_eq!(answered.len(), 1, "answered from our own queue");
    assert_eq!(answered[0]["Node"], new.state.identity.node.as_str());
    client.close().await;
    new.shutdown().await;
}

/// The worker binary on `vh` for `run_for`, its JSON log lines.
fn run_binary(vh: &TestVhost, run_for: Duration) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
        .arg("run")
        .env("KAZOO_CHANNELS__AMQP__URL", vh.url())
        .env("KAZOO_CHANNELS__AMQP__MIN_BACKOFF_MS", "100")
        .env("KAZOO_CHANNELS__AMQP__MAX_BACKOFF_SECS", "1")
        .env("KAZOO_CHANNELS__LOG__FORMAT", "json")
        .env("KAZOO_CHANNELS__LOG__SUMMARY_INTERVAL_SECS", "0")
        .env("KAZOO_CHANNELS__LOG__LEVEL", "warn,kazoo_channels=debug")
        .env_remove("KAZOO_CHANNELS_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker binary starts");
    let lines: Arc<Mutex<Vec<Value>>> = Default::default();
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|out| {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    lines.lock().unwrap().push(v);
                }
            }
        })
    })
    .collect();
    std::thread::sleep(run_for);
    let _ = child.kill();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    Arc::try_unwrap(lines).unwrap().into_inner().unwrap()
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

#[test]
fn a_session_refused_after_connecting_backs_off_and_says_why_once() {
    // Refused at the first declare, the connection itself accepted: an
    // exchange of Kazoo's declared durable by someone (406), and a user
    // without the configure permission (403).
    let in_the_way = TestVhost::new("refused-406");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = Connection::connect(&in_the_way.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let opts = lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            "callevt".into(),
            lapin::ExchangeKind::Topic,
            opts,
            FieldTable::default(),
        )
        .await
        .unwrap();
        conn.close(200, "bye".into()).await.unwrap();
    });
    let no_configure = TestVhost::new("refused-403");
    no_configure.set_permissions("^$", ".*", ".*");

    let run_for = Duration::from_secs(6);
    let cases = [
        (&in_the_way, "broker exchange", "inequivalent arg 'durable'"),
        (&no_configure, "amqp.url", "ACCESS_REFUSED"),
    ];
    let runs: Vec<Vec<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(vh, _, _)| s.spawn(|| run_binary(vh, run_for)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((vh, key, says), lines) in cases.iter().zip(&runs) {
        let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
        assert_eq!(
            errors.len(),
            1,
            "{}: one line per refusal: {errors:?}",
            vh.name
        );
        let e = errors[0];
        assert!(message(errors[0]).starts_with("configuration error"), "{e}");
        assert_eq!(e["key"], *key, "{e}");
        let broker_says = e["broker_says"].as_str().unwrap();
        assert!(
            broker_says.contains(says) && !broker_says.contains('\n'),
            "{e}"
        );
        // Every attempt after the first is a debug line, spaced by the backoff
        // (100 ms doubling to 1 s: 0.1, 0.3, 0.7, 1.5, 2.5, 3.5 … s).
        let again = lines
            .iter()
            .filter(|l| message(l) == "still refused by the broker")
            .count();
        let attempts = again + 1;
        println!("{}: {attempts} attempts in {run_for:?}", vh.name);
        assert!(
            (3..=12).contains(&attempts),
            "{}: {attempts} attempts in {run_for:?}",
            vh.name
        );
    }
}
