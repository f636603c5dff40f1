//! Channel commands against a real broker, with a stand-in for Konami: a queue
//! of the test's own bound to `metaflow` as Konami binds for a call, reading
//! whatever arrives.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use kazoo_channels::app::WorkerHandle;
use kazoo_channels::bus::{BusClient, BusPublisher, Collect, Topology};
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::kapi::{Identity, Outgoing, PublishOutcome, encode, new_msg_id};
use kazoo_channels::stats::Stats;
use lapin::{Connection, ConnectionProperties};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrived" is watched for, after the reply (which comes
/// only once the metaflow publish, if any, was confirmed and so enqueued).
const QUIET: Duration = Duration::from_millis(300);

/// A call id with `@` and `.`, as SIP gives them, so routing keys must escape it.
fn sip_call_id() -> String {
    format!("{}@10.26.0.91", uuid::Uuid::new_v4())
}

/// One message as Konami would receive it.
#[derive(Debug)]
struct Arrived {
    routing_key: String,
    content_type: Option<String>,
    body: Value,
}

struct Konami {
    conn: Connection,
    rx: mpsc::UnboundedReceiver<Arrived>,
}

impl Konami {
    async fn bind(vh: &TestVhost) -> Self {
        let conn = Connection::connect(&vh.url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let bindings = [
            ("metaflow", "metaflow.flow.*"),
            ("metaflow", "metaflow.action.*.*"),
        ];
        let (_, mut consumer) = tap(&ch, "", &bindings).await;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let _ = tx.send(Arrived {
                    routing_key: d.routing_key.to_string(),
                    content_type: d.properties.content_type().as_ref().map(|c| c.to_string()),
                    body: serde_json::from_slice(&d.data).expect("Konami gets JSON"),
                });
            }
        });
        Self { conn, rx }
    }

    /// The next message, which must be a valid kapi `metaflow` message.
    async fn next(&mut self) -> Arrived {
        let a = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("nothing reached Konami")
            .unwrap();
        let schema = format!("kapi.metaflow.{}", a.body["Event-Name"].as_str().unwrap());
        schemas()
            .validate(&schema, &a.body, "")
            .unwrap_or_else(|e| panic!("{schema}: {e:?} in {}", a.body));
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        a
    }

    async fn got_nothing(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.rx.recv()).await.is_err()
    }

    async fn leave(self) {
        self.conn.close(200, "bye".into()).await.unwrap();
    }
}

/// A live channel of `account` in the worker's registry, bridged or not.
async fn live_call(w: &WorkerHandle, client: &BusClient, call: &str, account: &str, bridged: bool) {
    let mut events = vec!["CHANNEL_CREATE", "CHANNEL_ANSWER"];
    if bridged {
        events.push("CHANNEL_BRIDGE");
    }
    for name in events {
        client
            .publish(&event_msg(&a_leg_event(name, call, account)))
            .await
            .unwrap();
    }
    assert!(
        eventually(WAIT, || w
            .registry()
            .get(call)
            .is_some_and(|c| c.answered && c.other_leg.is_some() == bridged))
        .await,
        "channel {call} not in the registry"
    );
}

/// A worker on a vhost of its own, a requester, and one live bridged call.
struct Scene {
    vh: TestVhost,
    w: WorkerHandle,
    client: BusClient,
    account: String,
    call: String,
}

impl Scene {
    async fn new(name: &str) -> Self {
        let vh = TestVhost::new(name);
        let w = vh.worker().await;
        let client = vh.client("crossbar").await;
        let (account, call) = (hex_id(), sip_call_id());
        live_call(&w, &client, &call, &account, true).await;
        Self {
            vh,
            w,
            client,
            account,
            call,
        }
    }
}

fn cmd(call: &str, account: &str, action: &str, data: Value) -> Map<String, Value> {
    let Value::Object(m) =
        json!({"Account-ID": account, "Call-ID": call, "Action": action, "Data": data})
    else {
        unreachable!()
    };
    m
}

/// Sends a command as a whapp would and returns the (schema-checked) answer.
async fn send(client: &BusClient, body: Map<String, Value>) -> Value {
    let msg_id = new_msg_id();
    let mut body = body;
    body.insert("Msg-ID".into(), json!(msg_id));
    let replies = client
        .request(
            "callctl",
            "channels.command",
            "channels",
            "command_req",
            body,
            Collect::first(WAIT),
        )
        .await
        .unwrap();
    let reply = replies.into_iter().next().expect("no command_resp");
    schemas()
        .validate("channels.command_resp", &reply, "")
        .unwrap_or_else(|e| panic!("command_resp invalid: {e:?} in {reply}"));
    assert_eq!(reply["Msg-ID"], msg_id.as_str());
    assert_eq!(reply["App-Name"], "kazoo-channels");
    reply
}

fn error_paths(reply: &Value) -> Vec<&str> {
    reply["Validation-Errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["path"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// The parts of a message the publisher chooses (identity, fresh `Msg-ID`) removed.
fn shape(v: &Value) -> Value {
    let mut v = v.clone();
    for k in ["App-Name", "App-Version", "Node", "Msg-ID"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_commands_reach_konami_as_wire_md_shows_them() {
    let Scene {
        vh,
        w,
        client,
        account,
        call,
    } = Scene::new("cmd-accepted").await;
    let mut konami = Konami::bind(&vh).await;
    let key = encode(&call);
    assert!(key.contains("%40") && key.contains("%2E") && !key.contains('.'));

    // The metaflow of WIRE.md §6.1, with the one default Crossbar fills.
    let reply = send(
        &client,
        cmd(&call, &account, "metaflow", json!({"module": "hangup"})),
    )
    .await;
    assert_eq!(
        (reply["Status"].as_str(), reply["Call-ID"].as_str()),
        (Some("accepted"), Some(call.as_str()))
    );
    let a = konami.next().await;
    assert_eq!(a.routing_key, format!("metaflow.flow.{key}"));
    let mut want = fixture("metaflow.flow.from-crossbar.json");
    want["Call-ID"] = json!(call);
    assert_eq!(shape(&a.body), shape(&want));
    assert_eq!(a.body["App-Name"], "kazoo-channels");
    assert_eq!(a.body["Node"], w.state.identity.node.as_str());
    assert_eq!(a.body["Msg-ID"].as_str().unwrap().len(), 32);
    assert_ne!(
        a.body["Msg-ID"], reply["Msg-ID"],
        "a fresh Msg-ID, not the request's"
    );

    // A tree with children goes as it came (plus data: {} where a node had none).
    let tree = json!({"module": "hold", "data": {"unhold_key": "5"},
                      "children": {"_": {"module": "transfer", "data": {"target": "2600", "leg": "bleg"}}}});
    assert_eq!(
        send(&client, cmd(&call, &account, "metaflow", tree.clone())).await["Status"],
        "accepted"
    );
    assert_eq!(konami.next().await.body["Flow"], tree);

    // The actions of WIRE.md §6.2: Data untouched, Action a plain word.
    for (fixture_name, action, data) in [
        (
            "metaflow.action.hangup.from-crossbar.json",
            "hangup",
            json!({}),
        ),
        (
            "metaflow.action.transfer.from-crossbar.json",
            "transfer",
            json!({"moh": "media_id", "target": "2600", "transfer-type": "blind"}),
        ),
    ] {
        let reply = send(&client, cmd(&call, &account, action, data)).await;
        assert_eq!(reply["Status"], "accepted", "{reply}");
        let a = konami.next().await;
        assert_eq!(a.routing_key, format!("metaflow.action.{key}.{action}"));
        let mut want = fixture(fixture_name);
        want["Call-ID"] = json!(call);
        assert_eq!(shape(&a.body), shape(&want));
    }
    for (action, data) in [
        ("play", json!({"id": "media-1", "leg": "both"})),
        ("break", json!({})),
        ("callflow", json!({"id": "cf-1"})),
        (
            "intercept",
            json!({"target_type": "device", "target_id": "d-1"}),
        ),
        ("record_call", json!({"action": "start", "format": "mp3"})),
        ("park", json!({"anything": ["goes", 1]})),
    ] {
        let reply = send(&client, cmd(&call, &account, action, data.clone())).await;
        assert_eq!(reply["Status"], "accepted", "{action}: {reply}");
        let a = konami.next().await;
        assert_eq!(a.routing_key, format!("metaflow.action.{key}.{action}"));
        assert_eq!(
            (&a.body["Action"], &a.body["Data"]),
            (&json!(action), &data)
        );
    }
    assert!(konami.got_nothing().await, "one message per command");
    // 2 metaflows + 2 documented actions + 6 others, counted in the status.
    let status = status_replies(&client, Duration::from_millis(500)).await;
    assert_eq!(status.len(), 1);
    assert_eq!(
        (
            &status[0]["Commands-Answered"],
            &status[0]["Queries-Answered"]
        ),
        (&json!(10), &json!(0))
    );
    assert_eq!(status[0]["Requests-Answered"], 10);
    schemas()
        .validate("channels.status_resp", &status[0], "")
        .unwrap();
    konami.leave().await;
    client.close().await;
    w.shutdown().await;
}

/// The documentation's examples (`kazoo/examples/`, copied verbatim), as commands: metaflow bodies (`action:
/// metaflow` PUT bodies and the nodes of `metaflows` documents) and POST
/// action bodies.
fn doc_examples() -> Vec<(String, String, Value)> {
    let dir = format!("{}/tests/fixtures/examples", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if doc["action"] == "metaflow" {
            out.push((name.clone(), "metaflow".into(), doc["data"].clone()));
        } else if let Some(action) = doc["data"]["action"].as_str() {
            let mut data = doc["data"].clone();
            data.as_object_mut().unwrap().remove("action");
            out.push((name.clone(), action.into(), data));
        }
        let metaflows = [&doc["metaflows"], &doc["data"]];
        for m in metaflows {
            for group in ["numbers", "patterns"] {
                for (k, node) in m[group].as_object().into_iter().flatten() {
                    out.push((
                        format!("{name} {group}.{k}"),
                        "metaflow".into(),
                        node.clone(),
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documentation_examples_that_work_are_accepted_and_the_broken_one_refused() {
    let Scene {
        vh,
        w,
        client,
        account,
        call,
    } = Scene::new("cmd-examples").await;
    let mut konami = Konami::bind(&vh).await;

    let examples = doc_examples();
    assert!(examples.len() >= 10, "examples found: {examples:?}");
    // WIRE.md §9.20: the PUT example nests the node one level too deep.
    let broken = "crossbar-channels.md.put-metaflow-hangup.request.json";
    assert!(examples.iter().any(|(n, _, _)| n == broken));
    for (name, action, data) in &examples {
        let reply = send(&client, cmd(&call, &account, action, data.clone())).await;
        if name == broken {
            assert_eq!(reply["Error-Code"], 400, "{name}: {reply}");
            assert_eq!(
                error_paths(&reply),
                ["/Data/module", "/Data/data/module"],
                "{reply}"
            );
            assert!(konami.got_nothing().await, "{name} was published");
        } else {
            assert_eq!(reply["Status"], "accepted", "{name}: {reply}");
            let a = konami.next().await;
            match action.as_str() {
                "metaflow" => assert_eq!(a.body["Flow"]["module"], data["module"]),
                _ => assert_eq!(a.body["Data"], *data, "{name}"),
            }
        }
    }
    konami.leave().await;
    client.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_publish_nothing_and_the_worker_keeps_going() {
    let Scene {
        vh,
        w,
        client,
        account,
        call: bridged,
    } = Scene::new("cmd-refused").await;
    let mut konami = Konami::bind(&vh).await;
    let (other_account, lone) = (hex_id(), sip_call_id());
    live_call(&w, &client, &lone, &account, false).await;

    // Another account's call, and a call that does not exist: the same 404.
    for (call, acc) in [
        (&bridged, &other_account),
        (&"gone@10.0.0.1".to_owned(), &account),
    ] {
        let reply = send(&client, cmd(call, acc, "hangup", json!({}))).await;
        assert_eq!(reply["Error-Code"], 404, "{reply}");
        assert!(konami.got_nothing().await);
    }
    let reply = send(
        &client,
        cmd(&lone, &account, "transfer", json!({"target": "2600"})),
    )
    .await;
    assert_eq!(reply["Error-Code"], 409, "{reply}");
    assert!(konami.got_nothing().await);

    // 400s, each naming the field.
    let mut no_call = cmd(&bridged, &account, "hangup", json!({}));
    no_call.remove("Call-ID");
    let reply = send(&client, no_call).await;
    assert_eq!(
        (reply["Error-Code"].as_u64(), error_paths(&reply)),
        (Some(400), vec!["/Call-ID"])
    );
    assert!(reply.get("Call-ID").is_none());
    for (action, data, path) in [
        ("hangup", json!("now"), "/Data"),
        ("hangup", json!([]), "/Data"),
        ("explode", json!({}), "/Action"),
        ("transfer", json!({}), "/Data/target"),
        (
            "intercept",
            json!({"target_type": "phone", "target_id": "x"}),
            "/Data/target_type",
        ),
        (
            "metaflow",
            json!({"module": "play", "data": {"leg": "everyone"}}),
            "/Data/data/leg",
        ),
    ] {
        let reply = send(&client, cmd(&bridged, &account, action, data)).await;
        assert_eq!(reply["Error-Code"], 400, "{reply}");
        assert_eq!(error_paths(&reply), [path], "{reply}");
    }
    assert!(konami.got_nothing().await);

    // Not JSON, not an object: acked and dropped (no reply address to answer).
    for raw in [&b"not json"[..], b"[\"hangup\"]", &[0xff, 0xfe]] {
        client
            .publish(&Outgoing::new("callctl", "channels.command", raw.to_vec()))
            .await
            .unwrap();
    }
    // No Server-ID: carried out, not answered.
    let mut silent = cmd(&bridged, &account, "hangup", json!({}));
    Identity::new("crossbar@kz1").stamp(&mut silent, "channels", "command_req", &new_msg_id());
    client
        .publish(&Outgoing::json("callctl", "channels.command", &silent))
        .await
        .unwrap();
    assert_eq!(konami.next().await.body["Action"], "hangup");

    // Still serving; nothing left on the queue.
    let reply = send(&client, cmd(&bridged, &account, "break", json!({}))).await;
    assert_eq!(reply["Status"], "accepted");
    assert_eq!(konami.next().await.body["Action"], "break");
    assert_eq!(
        client.stray_replies(),
        0,
        "nothing answered that was not asked"
    );
    let q = &w.state.topology.queue("commands").unwrap().name;
    assert_eq!(vh.queue_depth(q), Some((0, 0)), "messages left on {q}");
    konami.leave().await;
    client.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_konami_a_command_is_answered_503_not_accepted() {
    let Scene {
        vh,
        w,
        client,
        account,
        call,
    } = Scene::new("cmd-unrouted").await;
    for (action, data) in [
        ("hangup", json!({})),
        ("metaflow", json!({"module": "hangup"})),
    ] {
        let reply = send(&client, cmd(&call, &account, action, data)).await;
        assert_eq!(
            (reply["Status"].as_str(), reply["Error-Code"].as_u64()),
            (Some("error"), Some(503)),
            "{reply}"
        );
    }
    // Konami binds for this call only (as it does, per call): others stay 503.
    let mut konami = Konami::bind(&vh).await;
    assert_eq!(
        send(&client, cmd(&call, &account, "hangup", json!({}))).await["Status"],
        "accepted"
    );
    konami.next().await;
    konami.leave().await;
    assert_eq!(
        send(&client, cmd(&call, &account, "hangup", json!({}))).await["Error-Code"],
        503
    );
    client.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_older_than_its_requester_waits_is_never_carried_out() {
    let vh = TestVhost::new("cmd-stale");
    // The queue exists (an earlier worker declared it) but nobody consumes.
    let conn = kazoo_channels::bus::connect(&vh.url(), "setup")
        .await
        .unwrap();
    kazoo_channels::bus::declare(
        &conn.create_channel().await.unwrap(),
        &Topology::for_instance("x"),
    )
    .await
    .unwrap();
    let client = vh.client("crossbar").await;
    let mut konami = Konami::bind(&vh).await;
    let mut stale = cmd("c@1", &hex_id(), "hangup", json!({}));
    Identity::new("crossbar@kz1").stamp(&mut stale, "channels", "command_req", &new_msg_id());
    stale.insert("Server-ID".into(), json!(client.reply_queue()));
    client
        .publish(&Outgoing::json("callctl", "channels.command", &stale))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let w = vh.worker().await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(client.stray_replies(), 0, "a stale request was answered");
    assert!(konami.got_nothing().await);
    konami.leave().await;
    client.close().await;
    w.shutdown().await;
    conn.close(200, "bye".into()).await.unwrap();
}

/// Runs the CLI against the test's vhost: (exit code, stdout, stderr).
async fn cli(vh: &TestVhost, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
        .env("KAZOO_CHANNELS__AMQP__URL", vh.url())
        .env("RUST_LOG", "warn")
        .arg("command")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_the_real_outcome() {
    let Scene {
        vh,
        w,
        client,
        account: a,
        call,
    } = Scene::new("cmd-cli").await;
    let mut konami = Konami::bind(&vh).await;
    let b = hex_id();

    let (code, out, err) = cli(
        &vh,
        &[&call, "--account", &a, "metaflow", r#"{"module":"hangup"}"#],
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, format!("accepted: {call}\n").as_str()),
        "{err}"
    );
    let got = konami.next().await;
    assert_eq!(got.routing_key, format!("metaflow.flow.{}", encode(&call)));
    assert_eq!(got.body["Flow"], json!({"module": "hangup", "data": {}}));
    assert!(konami.got_nothing().await, "exactly one flow");

    let (code, out, _) = cli(
        &vh,
        &[&call, "--account", &b, "metaflow", r#"{"module":"hangup"}"#],
    )
    .await;
    assert_eq!(code, 1);
    assert!(out.starts_with("error 404: no active channel"), "{out}");
    assert!(konami.got_nothing().await);

    let (code, out, _) = cli(
        &vh,
        &[
            &call,
            "--account",
            &a,
            "metaflow",
            r#"{"data":{"data":{"module":"hangup"}}}"#,
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        out.starts_with("error 400") && out.contains("  /Data/data/data/module: module is nested"),
        "{out}"
    );

    let (code, out, err) = cli(
        &vh,
        &[
            &call,
            "--account",
            &a,
            "transfer",
            "--target",
            "2600",
            "--moh",
            "m1",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        konami.next().await.body["Data"],
        json!({"target": "2600", "transfer-type": "blind", "moh": "m1"})
    );

    let (code, _, err) = cli(&vh, &[&call, "--account", &a, "metaflow", "{not json"]).await;
    assert_eq!(code, 2, "{err}");

    konami.leave().await;
    let (code, out, _) = cli(&vh, &[&call, "--account", &a, "hangup"]).await;
    assert_eq!(code, 1);
    assert!(out.starts_with("error 503: "), "{out}");

    w.shutdown().await;
    let (code, _, err) = cli(&vh, &[&call, "--account", &a, "--timeout", "0.5", "hangup"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("no answer within 0.5s"), "{err}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_publish_outcomes_are_attributed_to_the_right_message() {
    let vh = TestVhost::new("cmd-returned");
    let client = vh.client("probe").await; // declares Kazoo's exchanges
    let conn = kazoo_channels::bus::connect(&vh.url(), "probe")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let _routed = tap(&ch, "routed", &[("metaflow", "metaflow.action.routed.*")]).await;
    let p = BusPublisher::open(&conn).await.unwrap();
    let msg = |rk: &str| Outgoing::new("metaflow", rk.to_owned(), b"{}".to_vec()).mandatory();
    let (routed, unroutable) = (
        "metaflow.action.routed.hangup",
        "metaflow.action.nobody.hangup",
    );
    assert_eq!(
        p.send(&msg(unroutable)).await.unwrap(),
        PublishOutcome::Returned
    );
    assert_eq!(
        p.send(&msg(routed)).await.unwrap(),
        PublishOutcome::Confirmed
    );
    // Many at once, routed and unroutable interleaved: lapin alone misattributes
    // returns here (it gives each to the next confirm). On one mandatory channel,
    // and on several as the worker's publisher has them.
    let want = |i: usize| {
        if i.is_multiple_of(2) {
            PublishOutcome::Confirmed
        } else {
            PublishOutcome::Returned
        }
    };
    for (channels, p) in [
        (1, p.clone()),
        (8, BusPublisher::open_with(&conn, 8).await.unwrap()),
    ] {
        let futs = (0..200usize).map(|i| {
            let p = p.clone();
            let m = msg(if want(i) == PublishOutcome::Confirmed {
                routed
            } else {
                unroutable
            });
            async move { (i, p.send(&m).await.unwrap()) }
        });
        let results = futures_util::future::join_all(futs).await;
        let wrong: Vec<_> = results.iter().filter(|(i, o)| *o != want(*i)).collect();
        assert!(
            wrong.is_empty(),
            "{channels} mandatory channel(s): {} of 200 misattributed: {wrong:?}",
            wrong.len()
        );
    }
    // Plain (non-mandatory) publishes still confirm as before.
    assert_eq!(
        p.send(&Outgoing::new("metaflow", unroutable, b"{}".to_vec()))
            .await
            .unwrap(),
        PublishOutcome::Confirmed
    );
    client.close().await;
    conn.close(200, "bye".into()).await.unwrap();
}

/// A publish the broker refuses by closing the channel (here: to an exchange
/// that does not exist) costs that one message: the channel is reopened, the
/// session, its consumers and the registry go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_closes_one_channel_not_the_session() {
    let Scene {
        vh,
        w,
        client,
        account,
        call,
    } = Scene::new("cmd-chanerr").await;
    let conn = kazoo_channels::bus::connect(&vh.url(), "saboteur")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete(
        "metaflow".into(),
        lapin::options::ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let reply = send(&client, cmd(&call, &account, "hangup", json!({}))).await;
        assert_eq!(
            (reply["Status"].as_str(), reply["Error-Code"].as_u64()),
            (Some("error"), Some(503)),
            "{reply}"
        );
    }
    let stats = &w.state.stats;
    assert_eq!(Stats::get(&stats.reconnects), 0, "the session went on");
    assert!(
        Stats::get(&stats.channel_errors) >= 2,
        "each refusal counted"
    );
    // The registry and the other consumers are untouched: a query is answered.
    let replies = client
        .ask(
            kazoo_channels::kapi::asks::account_channels(&account),
            Collect::first(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(replies[0]["Channels"].as_array().map_or(0, Vec::len), 1);
    let _ = conn.close(200, "bye".into()).await;
    client.close().await;
    w.shutdown().await;
}
