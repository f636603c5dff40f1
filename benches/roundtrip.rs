//! Round trips through the broker, each against an echo responder measured in
//! the same run (absolute numbers on a shared machine drift; ratios hold):
//!
//! - account queries for an account of 100 channels in a registry of 100,000;
//! - metaflow commands: validation, a mandatory publish confirmed by the broker
//!   and routed to a stand-in Konami queue, then the `command_resp`.
//!
//! At 1, 16 and 64 requests in flight, from a Crossbar-like requester
//! ([`BusClient`]: its own reply queue on `targeted`, a fresh `Msg-ID` per request,
//! replies matched by `Msg-ID`). The worker under test is the real one, on a
//! runtime of its own; the echo responder is consumed, published and acked by the
//! same transport code (`bus::consumer`, `BusPublisher`) from a queue declared like
//! ours, and answers with a fixed reply of the real reply's size.
//!
//! `cargo bench --bench roundtrip`. Needs `rabbitmqctl` (a private vhost is
//! created and deleted). `ROUNDTRIP_SECS` (default 5): measured seconds per side
//! and in-flight level; `ROUNDTRIP_LEVELS` (default `1,16,64`).

mod support;

use std::sync::Arc;

use kazoo_channels::bus::{BusClient, topology::BindingDef};
use kazoo_channels::commands;
use kazoo_channels::kapi::new_msg_id;
use kazoo_channels::kapi::time::gregorian_now_secs;
use kazoo_channels::queries;
use serde_json::{Map, Value, json};

use support::echo::{Echo, Template};
use support::load::{Target, compare};
use support::{Machine, Vhost, runtime, table};

const ACCOUNTS: usize = 1000;
/// Calls per account: two legs each, so 100 channels.
const CALLS: usize = 50;

fn main() {
    let secs: f64 = env_or("ROUNDTRIP_SECS", 5.0);
    let levels: Vec<usize> = std::env::var("ROUNDTRIP_LEVELS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .map(|l| l.trim().parse().expect("ROUNDTRIP_LEVELS: numbers"))
        .collect();
    let began = std::time::Instant::now();
    let machine = Machine::probe();
    let vhost = Vhost::create("roundtrip");
    // Three runtimes, as three processes would be: the worker, the echo
    // responder (and the stand-in Konami), the requesters.
    let (worker_rt, echo_rt, client_rt) = (runtime("worker"), runtime("echo"), runtime("client"));

    let worker = worker_rt.block_on(support::start_worker(&vhost.url()));
    let scene = support::fill(&worker.shared.registry, ACCOUNTS, CALLS);
    let account = scene.account.id.clone();
    let prefetch = worker.shared.settings.amqp.prefetch;
    let topology = &worker.shared.topology;

    // Queries: the real reply to the bench's request is the echo's reply.
    let query = |server_id: &str| -> Map<String, Value> {
        object(json!({
            "Account-ID": account, "Active-Only": false, "Usernames": [],
            "App-Name": "crossbar", "App-Version": "4.0.0",
            "Event-Category": "call_event", "Event-Name": "query_account_channels_req",
            "Node": "crossbar@bench", "Server-ID": server_id,
        }))
    };
    let mut probe = query("crossbar@bench-<0.1.0>-00000000");
    probe.insert("Msg-ID".into(), json!(new_msg_id()));
    let answer = queries::handle(
        &worker.shared.registry(),
        &worker.shared.identity,
        &worker.shared.settings.queries,
        &serde_json::to_vec(&probe).expect("a map serializes"),
        gregorian_now_secs(),
    )
    .expect("the bench's query is valid");
    assert_eq!(answer.matched, CALLS * 2, "the account's channels");
    let query_reply = Template::new(
        answer.reply.expect("an account query is answered").body,
        probe["Msg-ID"].as_str().expect("Msg-ID"),
    );

    // Commands: an accepted `command_resp` for one of the account's calls.
    let reply_id = new_msg_id();
    let command_reply = Template::new(
        serde_json::to_vec(&commands::reply_body(
            &worker.shared.identity,
            &reply_id,
            Some(&scene.calls[0]),
            &Ok(()),
        ))
        .expect("a map serializes"),
        &reply_id,
    );
    let (query_bytes, command_bytes) = (query_reply.len(), command_reply.len());

    let echo = echo_rt.block_on(async {
        let queue = |role: &str, exchange: &str, routing_key: &str| {
            let mut q = topology.queue(role).expect("a queue of that role").clone();
            q.name = format!("kazoo-channels-bench.echo.{role}");
            q.bindings = vec![BindingDef {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
            }];
            q
        };
        Echo::start(
            &vhost.url(),
            prefetch,
            vec![
                (
                    queue("queries", "callevt", "bench.status_req.*"),
                    query_reply,
                ),
                (
                    queue("commands", "callctl", "bench.command"),
                    command_reply,
                ),
            ],
        )
        .await
    });

    let results = client_rt.block_on(async {
        let client = Arc::new(
            BusClient::connect(&vhost.url(), "crossbar")
                .await
                .expect("the requester connects"),
        );
        let reply_queue = client.reply_queue().to_owned();
        let account_key = kazoo_channels::kapi::encode(&account);
        let queries = |routing_key: String| Target {
            exchange: "callevt",
            routing_key,
            category: "call_event",
            name: "query_account_channels_req",
            bodies: Arc::new(vec![query(&reply_queue)]),
            check: |reply| {
                reply["Channels"]
                    .as_array()
                    .is_some_and(|c| c.len() == CALLS * 2)
            },
        };
        // One `metaflow` command per call of the account, in turn: a transfer
        // to a number, Konami's most common metaflow.
        let commands = |routing_key: &str| Target {
            exchange: "callctl",
            routing_key: routing_key.into(),
            category: "channels",
            name: "command_req",
            bodies: Arc::new(
                scene
                    .calls
                    .iter()
                    .map(|call| {
                        object(json!({
                            "Account-ID": account, "Call-ID": call, "Action": "metaflow",
                            "Data": {"module": "transfer", "data": {"target": "2600", "leg": "bleg"}},
                        }))
                    })
                    .collect(),
            ),
            check: |reply| reply["Status"] == "accepted",
        };
        let q = compare(
            &client,
            &queries(format!("call.status_req.{account_key}")),
            &queries(format!("bench.status_req.{account_key}")),
            &levels,
            secs,
        )
        .await;
        let konami = support::konami(&vhost.url()).await;
        let c = compare(
            &client,
            &commands("channels.command"),
            &commands("bench.command"),
            &levels,
            secs,
        )
        .await;
        let published = konami.received();
        konami.stop().await;
        (q, c, published)
    });
    let (q, c, published) = results;
    echo_rt.block_on(echo.stop());
    worker_rt.block_on(worker.shutdown());
    drop(vhost);

    println!();
    println!("{machine}");
    println!();
    println!(
        "Query round trip: account query for {} channels in a registry of {}; reply {query_bytes} bytes (echo: the same bytes, its Msg-ID copied in)",
        CALLS * 2,
        ACCOUNTS * CALLS * 2
    );
    println!("{}", table(&q));
    println!(
        "Commands: metaflow transfer, validated, mandatory publish confirmed and routed to a stand-in Konami, then command_resp ({command_bytes} bytes); echo: the fixed command_resp"
    );
    println!("{}", table(&c));
    println!("metaflow messages received by the stand-in Konami: {published}");
    println!(
        "{secs} s measured per side and level (two halves each, ours/echo/echo/ours); total {:.0} s",
        began.elapsed().as_secs_f64()
    );
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
