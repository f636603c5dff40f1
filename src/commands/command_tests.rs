use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Instant;

use serde_json::{Value, json};

use super::*;
use crate::kapi::schema::schemas;
use crate::kapi::{CallEvent, PublishError};
use crate::registry::RegistryConfig;

const CALL: &str = "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91";
const CALL_KEY: &str = "a1b2c3d4-e5f60718-29a3b4c5%4010%2E26%2E0%2E91";
const ACCOUNT: &str = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";
const UNBRIDGED: &str = "unbridged.1@10.26.0.92";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// `CALL` created and bridged, `UNBRIDGED` only created, both in `ACCOUNT`.
fn registry() -> RwLock<Registry> {
    let mut r = Registry::new(RegistryConfig::default());
    let mut lone = fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json");
    lone["Call-ID"] = json!(UNBRIDGED);
    for v in [
        fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json"),
        fixture("kazoo43.callevt.CHANNEL_BRIDGE.a-leg.json"),
        lone,
    ] {
        r.apply(
            CallEvent::decode(&serde_json::to_vec(&v).unwrap())
                .unwrap()
                .into_owned(),
            Instant::now(),
        );
    }
    assert!(r.get(CALL).unwrap().other_leg.is_some());
    RwLock::new(r)
}

/// Konami as the handler sees it: records what was published, answers `outcome`.
struct FakeKonami {
    outcome: Result<PublishOutcome, String>,
    sent: Mutex<Vec<Outgoing>>,
}

impl FakeKonami {
    fn new(outcome: Result<PublishOutcome, String>) -> Self {
        Self {
            outcome,
            sent: Mutex::default(),
        }
    }
    fn sent(&self) -> Vec<Outgoing> {
        self.sent.lock().unwrap().clone()
    }
}

impl Publish for FakeKonami {
    async fn publish(&self, msg: Outgoing) -> Result<PublishOutcome, PublishError> {
        self.sent.lock().unwrap().push(msg);
        self.outcome.clone().map_err(PublishError)
    }
}

fn identity() -> Identity {
    Identity::new("kazoo-channels@test")
}

fn req(action: &str, data: Value) -> Value {
    json!({
        "App-Name": "crossbar", "App-Version": "4.0.0",
        "Event-Category": "channels", "Event-Name": "command_req",
        "Msg-ID": "req-1", "Server-ID": "crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e",
        "Account-ID": ACCOUNT, "Call-ID": CALL, "Action": action, "Data": data,
    })
}

async fn run(konami: &FakeKonami, req: &Value) -> Option<Value> {
    let out = respond(
        &registry(),
        &identity(),
        konami,
        &serde_json::to_vec(req).unwrap(),
    )
    .await?;
    assert_eq!(out.exchange, "targeted");
    assert_eq!(
        out.routing_key,
        "crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e"
    );
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    schemas()
        .validate("channels.command_resp", &body, "")
        .unwrap();
    assert_eq!(body["Msg-ID"], "req-1");
    Some(body)
}

fn body(m: &Outgoing) -> Value {
    serde_json::from_slice(&m.body).unwrap()
}

/// The parts of a message that are not ours to choose (identity, fresh Msg-ID) removed.
fn shape(mut v: Value) -> Value {
    for k in ["App-Name", "App-Version", "Node", "Msg-ID"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[tokio::test]
async fn a_metaflow_is_published_as_crossbar_publishes_it() {
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    let reply = run(&konami, &req("metaflow", json!({"module": "hangup"})))
        .await
        .unwrap();
    assert_eq!(reply["Status"], "accepted");
    assert_eq!(reply["Call-ID"], CALL);
    let [m] = konami.sent().try_into().unwrap();
    assert_eq!((m.exchange.as_str(), m.mandatory), ("metaflow", true));
    assert_eq!(m.routing_key, format!("metaflow.flow.{CALL_KEY}"));
    let b = body(&m);
    schemas().validate("kapi.metaflow.flow", &b, "").unwrap();
    assert_eq!(b["App-Name"], "kazoo-channels");
    assert_eq!(b["Msg-ID"].as_str().unwrap().len(), 32);
    assert_ne!(b["Msg-ID"], "req-1");
    assert_eq!(shape(b), shape(fixture("metaflow.flow.from-crossbar.json")));
}

#[tokio::test]
async fn an_action_is_published_as_crossbar_publishes_it() {
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    let data = json!({"moh": "media_id", "target": "2600", "transfer-type": "blind"});
    let reply = run(&konami, &req("transfer", data)).await.unwrap();
    assert_eq!(reply["Status"], "accepted");
    let [m] = konami.sent().try_into().unwrap();
    assert_eq!(
        m.routing_key,
        format!("metaflow.action.{CALL_KEY}.transfer")
    );
    let b = body(&m);
    schemas().validate("kapi.metaflow.action", &b, "").unwrap();
    assert_eq!(
        shape(b),
        shape(fixture("metaflow.action.transfer.from-crossbar.json"))
    );
}

#[tokio::test]
async fn each_failure_is_answered_with_its_code_and_publishes_only_when_it_should() {
    let cases: Vec<(Result<PublishOutcome, String>, Value, u64, usize)> = vec![
        (
            Ok(PublishOutcome::Confirmed),
            req("metaflow", json!({"data": {"module": "hangup"}})),
            400,
            0,
        ),
        (
            Ok(PublishOutcome::Confirmed),
            req("transfer", json!({})),
            400,
            0,
        ),
        (
            Ok(PublishOutcome::Confirmed),
            {
                let mut r = req("hangup", json!({}));
                r["Account-ID"] = json!("another-account");
                r
            },
            404,
            0,
        ),
        (
            Ok(PublishOutcome::Confirmed),
            {
                let mut r = req("hangup", json!({}));
                r["Call-ID"] = json!("gone@10.0.0.1");
                r
            },
            404,
            0,
        ),
        (
            Ok(PublishOutcome::Confirmed),
            {
                let mut r = req("transfer", json!({"target": "2600"}));
                r["Call-ID"] = json!(UNBRIDGED);
                r
            },
            409,
            0,
        ),
        (
            Ok(PublishOutcome::Returned),
            req("hangup", json!({})),
            503,
            1,
        ),
        (Ok(PublishOutcome::Nacked), req("hangup", json!({})), 503, 1),
        (
            Err("channel closed".into()),
            req("hangup", json!({})),
            500,
            1,
        ),
    ];
    for (outcome, request, code, published) in cases {
        let konami = FakeKonami::new(outcome);
        let reply = run(&konami, &request).await.unwrap();
        assert_eq!(reply["Status"], "error", "{request}");
        assert_eq!(reply["Error-Code"], code, "{request}: {reply}");
        assert!(
            reply["Error-Message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(konami.sent().len(), published, "{request}");
    }
}

#[tokio::test]
async fn validation_comes_first_and_names_the_fields() {
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    // An invalid request about someone else's call is a 400, not a 404.
    let mut r = req("metaflow", json!({"data": {"module": "hangup"}}));
    r["Account-ID"] = json!("another-account");
    let reply = run(&konami, &r).await.unwrap();
    assert_eq!(reply["Error-Code"], 400);
    let paths: Vec<&str> = reply["Validation-Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/Data/module", "/Data/data/module"]);

    let mut r = req("hangup", json!({}));
    r.as_object_mut().unwrap().remove("Call-ID");
    let reply = run(&konami, &r).await.unwrap();
    assert_eq!(reply["Validation-Errors"][0]["path"], "/Call-ID");
    assert!(reply.get("Call-ID").is_none());
    assert!(konami.sent().is_empty());
}

#[tokio::test]
async fn without_a_reply_address_the_command_is_carried_out_silently() {
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    let mut r = req("hangup", json!({}));
    r.as_object_mut().unwrap().remove("Server-ID");
    assert!(run(&konami, &r).await.is_none());
    assert_eq!(konami.sent().len(), 1);
    // Not JSON, or JSON but not an object: nothing to answer, nothing done.
    for bad in [&b"not json"[..], b"[1,2]", b"\"hangup\""] {
        assert!(
            respond(&registry(), &identity(), &konami, bad)
                .await
                .is_none()
        );
    }
    assert_eq!(konami.sent().len(), 1);
}

#[tokio::test]
async fn a_pid_server_id_is_answered_with_deliver_to_pid() {
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    let mut r = req("hangup", json!({}));
    r["Server-ID"] = json!("pid://<0.5511.0>/crossbar@kz1-<0.9.0>-aa");
    let out = respond(
        &registry(),
        &identity(),
        &konami,
        &serde_json::to_vec(&r).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(out.routing_key, "crossbar@kz1-<0.9.0>-aa");
    assert_eq!(
        out.headers,
        [("Deliver-To-PID".to_owned(), "<0.5511.0>".to_owned())]
    );
}

/// Konami that takes its time to confirm, as a slow broker does.
struct SlowKonami(FakeKonami, std::time::Duration);

impl Publish for SlowKonami {
    async fn publish(&self, msg: Outgoing) -> Result<PublishOutcome, PublishError> {
        tokio::time::sleep(self.1).await;
        self.0.publish(msg).await
    }
}

#[tokio::test]
async fn a_command_past_its_deadline_is_not_published_one_published_is_answered() {
    let body = serde_json::to_vec(&req("hangup", json!({}))).unwrap();
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    let past = Instant::now() - std::time::Duration::from_millis(1);
    let carried = carry(&registry(), &identity(), &konami, &body, Some(past)).await;
    assert!(matches!(carried, Carried::Expired));
    assert!(konami.sent().is_empty(), "nothing published");
    // The deadline passes while the broker confirms: carried out, so answered.
    let slow = SlowKonami(
        FakeKonami::new(Ok(PublishOutcome::Confirmed)),
        std::time::Duration::from_millis(50),
    );
    let soon = Instant::now() + std::time::Duration::from_millis(10);
    let Carried::Answered(reply) = carry(&registry(), &identity(), &slow, &body, Some(soon)).await
    else {
        panic!("a published command is answered");
    };
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["Status"], "accepted");
    assert_eq!(slow.0.sent().len(), 1);
}

#[tokio::test]
async fn a_command_whose_reply_address_cannot_be_a_routing_key_is_not_carried_out() {
    let mut r = req("hangup", json!({}));
    r["Server-ID"] = json!("q".repeat(256));
    let konami = FakeKonami::new(Ok(PublishOutcome::Confirmed));
    let body = serde_json::to_vec(&r).unwrap();
    let carried = carry(&registry(), &identity(), &konami, &body, None).await;
    assert!(matches!(carried, Carried::Refused));
    assert!(konami.sent().is_empty());
}
