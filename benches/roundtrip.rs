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
//! ours, and answers with a fixed reply of the real reply's size. Commands get a
//! second baseline: an echo that also publishes a fixed metaflow message
//! (mandatory, confirmed) first, the broker work the command contract itself
//! costs.
//!
//! `cargo bench --bench roundtrip`. Needs `rabbitmqctl` (a private vhost is
//! created and deleted). `ROUNDTRIP_SECS` (default 5): measured seconds per side
//! and in-flight level; `ROUNDTRIP_LEVELS` (default `1,16,64`);
//! `ROUNDTRIP_VERBOSE`: each slice's rate on stderr.

mod support;

use std::sync::Arc;

use kazoo_channels::bus::topology::BindingDef;
use kazoo_channels::commands;
use kazoo_channels::kapi::new_msg_id;
use kazoo_channels::kapi::time::gregorian_now_secs;
use kazoo_channels::queries;
use serde_json::{Map, Value, json};

use support::common::TestVhost;
use support::echo::{Echo, Responder, Template};
use support::load::{Target, compare};
use support::{Machine, runtime, table};

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
    support::log_to_sink();
    let vhost = TestVhost::unwatched("bench-roundtrip");
    // Three runtimes, as three processes would be: the worker, the echo
    // responder (and the stand-in Konami), the requesters.
    let (worker_rt, echo_rt, client_rt) = (runtime("worker"), runtime("echo"), runtime("client"));

    let worker = worker_rt.block_on(support::start_worker(&vhost));
    let scene = support::fill(&worker.state.registry, ACCOUNTS, CALLS);
    let shared = &worker.state;
    let account = scene.account.id.clone();

    // What Crossbar sends (its Msg-ID and Server-ID come from the client).
    let query = object(json!({"Account-ID": account, "Active-Only": false, "Usernames": []}));
    // One `metaflow` command per call of the account, in turn: a transfer to a
    // number, Konami's most common metaflow.
    let command = |call: &str| {
        object(json!({
            "Account-ID": account, "Call-ID": call, "Action": "metaflow",
            "Data": {"module": "transfer", "data": {"target": "2600", "leg": "bleg"}},
        }))
    };
    // The request as it arrives, with the envelope the client adds.
    let addressed = |mut body: Map<String, Value>, category: &str, name: &str, msg_id: &str| {
        for (k, v) in [
            ("App-Name", "crossbar"),
            ("App-Version", "4.0.0"),
            ("Node", "crossbar@bench"),
            ("Event-Category", category),
            ("Event-Name", name),
            ("Msg-ID", msg_id),
            ("Server-ID", "crossbar@bench-<0.1.0>-00000000"),
        ] {
            body.insert(k.into(), json!(v));
        }
        serde_json::to_vec(&body).expect("a map serializes")
    };

    // The worker's own replies to these requests are the echo's replies.
    let msg_id = new_msg_id();
    let (probe_query, probe_command) = (
        addressed(
            query.clone(),
            "call_event",
            "query_account_channels_req",
            &msg_id,
        ),
        addressed(command(&scene.calls[0]), "channels", "command_req", &msg_id),
    );
    let answer = queries::answer_body(
        &shared.registry(),
        &shared.identity,
        &shared.settings.queries,
        &probe_query,
        gregorian_now_secs(),
    )
    .expect("the bench's query is valid");
    assert_eq!(answer.matched, CALLS * 2, "the account's channels");
    let query_reply = Template::new(
        answer.reply.expect("an account query is answered").body,
        &msg_id,
    );
    let command_reply = || {
        let body = commands::reply_body(&shared.identity, &msg_id, Some(&scene.calls[0]), &Ok(()));
        Template::new(
            serde_json::to_vec(&body).expect("a map serializes"),
            &msg_id,
        )
    };
    let (query_bytes, command_bytes) = (query_reply.len(), command_reply().len());
    let cost = worker_rt.block_on(support::handler_cost(
        shared,
        &probe_query,
        &probe_command,
        300,
    ));

    let echo = echo_rt.block_on(async {
        let queue = |role: &str, exchange: &str, routing_key: &str| {
            let mut q = shared
                .topology
                .queue(role)
                .expect("a queue of that role")
                .clone();
            q.name = format!(
                "kazoo-channels-bench.echo.{}",
                routing_key.trim_end_matches(".*")
            );
            q.bindings = vec![BindingDef {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                passive_exchange: false,
            }];
            q
        };
        let responders = vec![
            Responder {
                queue: queue("queries", "callevt", "bench.status_req.*"),
                reply: query_reply,
                first: None,
            },
            Responder {
                queue: queue("commands", "callctl", "bench.command"),
                reply: command_reply(),
                first: None,
            },
            Responder {
                queue: queue("commands", "callctl", "bench.command_metaflow"),
                reply: command_reply(),
                first: Some(cost.metaflow.clone()),
            },
        ];
        Echo::start(&vhost.url(), shared.settings.amqp.prefetch, responders).await
    });

    let (q, c, published) = client_rt.block_on(async {
        let client = Arc::new(vhost.client("crossbar").await);
        let account_key = kazoo_channels::kapi::encode(&account);
        let queries = |label, routing_key: String| Target {
            label,
            exchange: "callevt",
            routing_key,
            category: "call_event",
            name: "query_account_channels_req",
            bodies: Arc::new(vec![query.clone()]),
            check: |reply| {
                reply["Channels"]
                    .as_array()
                    .is_some_and(|c| c.len() == CALLS * 2)
            },
        };
        let commands = |label, routing_key: &str| Target {
            label,
            exchange: "callctl",
            routing_key: routing_key.into(),
            category: "channels",
            name: "command_req",
            bodies: Arc::new(scene.calls.iter().map(|call| command(call)).collect()),
            check: |reply| reply["Status"] == "accepted",
        };
        let q = compare(
            &client,
            &[
                &queries("ours", format!("call.status_req.{account_key}")),
                &queries("echo", format!("bench.status_req.{account_key}")),
            ],
            &levels,
            secs,
        )
        .await;
        let konami = support::konami(&vhost).await;
        let c = compare(
            &client,
            &[
                &commands("ours", "channels.command"),
                &commands("echo", "bench.command"),
                &commands("echo+metaflow", "bench.command_metaflow"),
            ],
            &levels,
            secs,
        )
        .await;
        let published = konami.received().len();
        konami.stop().await;
        (q, c, published)
    });
    echo_rt.block_on(echo.stop());
    worker_rt.block_on(worker.shutdown());
    drop(vhost);

    println!();
    println!("{machine}");
    println!(
        "{secs} s measured per side and in-flight level, in slices of about 1 s taken in turns (A B B A …)"
    );
    println!();
    println!(
        "1. Query round trip: account query for {} channels in a registry of {}; reply {query_bytes} bytes (echo: the same bytes, its Msg-ID copied in)",
        CALLS * 2,
        ACCOUNTS * CALLS * 2
    );
    println!("{}", table(&q, 1));
    println!(
        "2. Commands: metaflow transfer validated, published mandatory and confirmed (routed to a stand-in Konami), then command_resp ({command_bytes} bytes); echo: the fixed command_resp"
    );
    println!("{}", table(&c, 1));
    println!(
        "2b. The same commands against an echo that also publishes a fixed metaflow message (mandatory, confirmed) before its fixed command_resp: the broker work the contract itself costs"
    );
    println!("{}", table(&c, 2));
    println!("metaflow messages received by the stand-in Konami: {published}");
    println!(
        "handlers alone (in process, no broker), µs with warm / cold caches: query {:.0} / {:.0}, command {:.0} / {:.0} (its publish confirmed at once)",
        cost.query.0, cost.query.1, cost.command.0, cost.command.1
    );
    println!("total {:.0} s", began.elapsed().as_secs_f64());
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
