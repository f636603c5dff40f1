//! The Kazoo 5.1+ channel-query dialect (WIRE-5.md) against a real broker:
//! requests in `Event-Category: channel` on exchange `channels` with routing key
//! `query.status`, beside the 4.3/5.0 dialect on `callevt`; the three 5.x APIs;
//! the `channels` exchange found passively, never declared by the worker.

mod common;

use std::time::Duration;

use common::*;
use kazoo_channels::app::WorkerHandle;
use kazoo_channels::bus::{BusClient, Collect};
use kazoo_channels::kapi::encode;
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::stats::Stats;
use lapin::ExchangeKind;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{Map, Value, json};

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for a reply that was going to come.
const SILENCE: Duration = Duration::from_millis(800);
/// Kazoo 5.1+'s exchange and routing key for channel queries (WIRE-5.md §1).
const CHANNELS: &str = "channels";
const QUERY_STATUS: &str = "query.status";

/// The two dialects a request can be in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    /// Kazoo 4.3 / 5.0: `call_event` on `callevt`, `call.status_req.<word>`.
    Four,
    /// Kazoo 5.1+: `channel` on `channels`, `query.status`.
    Five,
}

impl Dialect {
    fn category(self) -> &'static str {
        match self {
            Dialect::Four => "call_event",
            Dialect::Five => "channel",
        }
    }
}

/// The exchange `channels` as a Kazoo 5.1+ node declares it: `kind`, non-durable,
/// not auto-delete, no arguments (kz_amqp_util's defaults, WIRE.md §1).
async fn declare_channels(vh: &TestVhost, kind: ExchangeKind) {
    let conn = lapin::Connection::connect(&vh.url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        CHANNELS.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("channels declared with Kazoo's flags");
    let _ = ch.close(200, "bye".into()).await;
    let _ = conn.close(200, "bye".into()).await;
}

/// Whether `channels` exists: a passive declare, on a connection of the test's own.
async fn channels_exists(vh: &TestVhost) -> bool {
    let conn = lapin::Connection::connect(&vh.url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let opts = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = ch
        .exchange_declare(
            CHANNELS.into(),
            ExchangeKind::Topic,
            opts,
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = conn.close(200, "bye".into()).await;
    found
}

/// Checks a reply the way a Kazoo validator would, plus our schema: the
/// request's category, the reply's name, our App-Name.
fn check(reply: &Value, request_name: &str, dialect: Dialect) {
    let name = reply["Event-Name"].as_str().expect("Event-Name");
    assert_eq!(name, request_name.replace("_req", "_resp"));
    assert_eq!(reply["Event-Category"], dialect.category(), "{reply:#}");
    assert_eq!(reply["App-Name"], "kazoo-channels");
    schemas()
        .validate(&format!("kapi.call.{name}"), reply, "")
        .unwrap_or_else(|e| panic!("{name} fails its schema: {e:?}\n{reply:#}"));
}

/// Where each dialect publishes a request (`word`: the 4.x routing-key word).
fn route(dialect: Dialect, word: &str) -> (&'static str, String) {
    match dialect {
        Dialect::Four => ("callevt", format!("call.status_req.{}", encode(word))),
        Dialect::Five => (CHANNELS, QUERY_STATUS.to_owned()),
    }
}

async fn ask(
    c: &BusClient,
    d: Dialect,
    name: &str,
    word: &str,
    keys: Value,
    collect: Collect,
) -> Vec<Value> {
    let (exchange, rk) = route(d, word);
    let keys = keys.as_object().expect("keys are an object").clone();
    let replies = c
        .request(exchange, &rk, d.category(), name, keys, collect)
        .await
        .expect("request published");
    for r in &replies {
        check(r, name, d);
    }
    replies
}

async fn answered(c: &BusClient, d: Dialect, name: &str, word: &str, keys: Value) -> Value {
    let mut r = ask(c, d, name, word, keys.clone(), Collect::first(WAIT)).await;
    assert_eq!(r.len(), 1, "{d:?} {name} {keys} was not answered");
    r.remove(0)
}

/// [`answered`] in the 5.1+ dialect, on its usual routing key.
async fn answered5(c: &BusClient, name: &str, keys: Value) -> Value {
    answered(c, Dialect::Five, name, "", keys).await
}

async fn silent(c: &BusClient, d: Dialect, name: &str, keys: Value) {
    let r = ask(c, d, name, "x", keys.clone(), Collect::all(SILENCE)).await;
    assert!(r.is_empty(), "{name} {keys} should get no reply: {r:#?}");
}

/// A reply without what differs between two answers to one question: the
/// envelope, and the seconds a channel has been up (a second may pass between).
fn body(reply: &Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["elapsed_s", "Elapsed-Seconds"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = reply.clone();
    let m = v.as_object_mut().unwrap();
    for k in [
        "App-Name",
        "App-Version",
        "Event-Category",
        "Msg-ID",
        "Node",
    ] {
        m.remove(k);
    }
    strip(&mut v);
    v
}

/// The APIs Kazoo 5.x added: one shape in both categories.
const NEW_APIS: [&str; 3] = ["query_endpoint_channels_req", "count_req", "channels_req"];

/// A reply without the keys Kazoo 5.x's ecallmgr adds to the old APIs'
/// replies: its channel forms' (WIRE-5.md §3), and the status reply's.
fn without_5x(v: &Value) -> Value {
    const FORMS: [&str; 8] = [
        "custom_sip_headers",
        "custom_auth_headers",
        "request",
        "recording_status",
        "Custom-SIP-Headers",
        "Custom-AUTH-Headers",
        "Request",
        "Recording-Status",
    ];
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in FORMS {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = v.clone();
    strip(&mut v);
    // kapi_call:channel_status_extended_headers(): Kamailio 5.x reads it.
    v.as_object_mut().unwrap().remove("Answered");
    v
}

/// One SIP device of an account, making 5.x calls.
struct Device {
    account: String,
    id: String,
    owner: String,
    username: String,
}

const REALM: &str = "account.realm.com";

impl Device {
    fn new(account: &str, owner: &str, username: &str) -> Self {
        Self {
            account: account.into(),
            id: hex_id(),
            owner: owner.into(),
            username: username.into(),
        }
    }

    /// A Kazoo 5.x event of this device's call: the 5.x CREATE fixture's
    /// keys (Custom-SIP-Headers, Custom-AUTH-Headers, Request) on CREATE, the
    /// constructed ANSWER otherwise.
    fn event(&self, name: &str, call_id: &str, direction: &str) -> Value {
        let mut v = match name {
            "CHANNEL_CREATE" => fixture("kazoo5.callevt.CHANNEL_CREATE.a-leg.json"),
            n if n.starts_with("RECORD_") => fixture(&format!("kazoo5.callevt.{n}.a-leg.json")),
            n => {
                let mut v = fixture(&format!("kazoo43.callevt.{n}.a-leg.json"));
                v["Custom-SIP-Headers"] = json!({"X-Kazoo-Trace": "on", "X-Site": "east"});
                v
            }
        };
        v["Call-ID"] = json!(call_id);
        v["Call-Direction"] = json!(direction);
        let ccv = &mut v["Custom-Channel-Vars"];
        ccv["Account-ID"] = json!(self.account);
        ccv["Authorizing-ID"] = json!(self.id);
        ccv["Owner-ID"] = json!(self.owner);
        ccv["Realm"] = json!(REALM);
        ccv["Username"] = json!(self.username);
        v
    }

    async fn call(&self, c: &BusClient, call_id: &str, direction: &str, events: &[&str]) {
        for name in events {
            c.publish(&event_msg(&self.event(name, call_id, direction)))
                .await
                .unwrap();
        }
    }
}

fn sip_call_id() -> String {
    format!("{}@10.26.0.91", uuid::Uuid::new_v4())
}

/// A vhost where Kazoo 5.1+ declared `channels` (a topic exchange), a worker
/// on it and a requester named `app`.
async fn start5(vhost: &str, app: &str) -> (TestVhost, WorkerHandle, BusClient) {
    let vh = TestVhost::new(vhost);
    declare_channels(&vh, ExchangeKind::Topic).await;
    let w = vh.worker().await;
    let c = vh.client(app).await;
    (vh, w, c)
}

/// One answered call of a fresh device, in the registry.
async fn one_call(w: &WorkerHandle, c: &BusClient, username: &str) -> (Device, String) {
    let d = Device::new(&hex_id(), &hex_id(), username);
    let call = sip_call_id();
    d.call(c, &call, "inbound", &["CHANNEL_CREATE", "CHANNEL_ANSWER"])
        .await;
    until_answered(w, &[&call]).await;
    (d, call)
}

/// The eight questions, as (Event-Name, 4.x routing-key word, keys).
fn questions(
    a: &Device,
    b: &Device,
    call: &str,
    account: &str,
) -> Vec<(&'static str, String, Value)> {
    vec![
        (
            "query_account_channels_req",
            account.to_owned(),
            json!({"Account-ID": account, "Active-Only": false, "Usernames": []}),
        ),
        (
            "query_user_channels_req",
            format!("{}:{REALM}", a.username),
            json!({"Realm": REALM, "Usernames": [a.username, b.username], "Active-Only": false}),
        ),
        (
            "query_channels_req",
            "channels".to_owned(),
            json!({"Call-ID": call, "Fields": "all", "Active-Only": false}),
        ),
        (
            "channel_status_req",
            call.to_owned(),
            json!({"Call-ID": call}),
        ),
        ("query_auth_id_req", a.id.clone(), json!({"Auth-ID": a.id})),
        (
            "query_endpoint_channels_req",
            account.to_owned(),
            json!({"Account-ID": account, "Endpoint-ID": a.owner}),
        ),
        (
            "count_req",
            account.to_owned(),
            json!({"Account-ID": account, "Device-ID": a.id, "Owner-ID": a.owner,
                "Endpoint-ID": b.id, "Direction": "inbound"}),
        ),
        (
            "channels_req",
            account.to_owned(),
            json!({"Account-ID": account, "Device-ID": format!("{}@{account}", b.id),
                "User-ID": format!("{}@{account}", a.owner)}),
        ),
    ]
}

/// Kazoo 5.1+ declared `channels` (as `kind`) before the worker started: all
/// eight APIs answer in the `channel` category on `query.status`, and the same
/// questions in `call_event` on `callevt` get the same answers.
async fn both_dialects(kind: ExchangeKind, vhost: &str) {
    let vh = TestVhost::new(vhost);
    declare_channels(&vh, kind.clone()).await;
    let w = vh.worker().await;
    let c = vh.client("crossbar").await;
    let account = hex_id();
    let owner = hex_id();
    let a = Device::new(&account, &owner, "user_a");
    let b = Device::new(&account, &hex_id(), "user_b");
    let other = Device::new(&hex_id(), &owner, "user_x");
    let (call_a, call_b, call_x) = (sip_call_id(), sip_call_id(), sip_call_id());
    let up = ["CHANNEL_CREATE", "CHANNEL_ANSWER"];
    a.call(&c, &call_a, "inbound", &up).await;
    b.call(&c, &call_b, "outbound", &up).await;
    // Another account's call of the same owner: never in the account-scoped answers.
    other.call(&c, &call_x, "inbound", &up).await;
    a.call(&c, &call_a, "inbound", &["RECORD_START"]).await;
    until_answered(&w, &[&call_a, &call_b, &call_x]).await;
    assert!(
        eventually(WAIT, || w
            .registry()
            .get(&call_a)
            .is_some_and(|ch| ch.recordings().is_some()))
        .await,
        "RECORD_START not applied"
    );
    // The worker bound its query queue; it never declared `channels` (the
    // test's own declaration, type and flags, is still what the broker has).
    assert!(
        vh.bindings()
            .iter()
            .any(|(s, _, rk)| s == CHANNELS && rk == QUERY_STATUS)
    );
    declare_channels(&vh, kind).await;

    let mut five = Vec::new();
    for (name, word, keys) in questions(&a, &b, &call_a, &account) {
        let r5 = answered(&c, Dialect::Five, name, &word, keys.clone()).await;
        let r4 = answered(&c, Dialect::Four, name, &word, keys).await;
        let (mut b5, b4) = (body(&r5), body(&r4));
        if !NEW_APIS.contains(&name) {
            // The 4.3/5.0 forms are unchanged; 5.x's add these keys, and only these.
            assert_eq!(
                without_5x(&b4),
                b4,
                "{name}: a 5.x key in a call_event reply"
            );
            b5 = without_5x(&b5);
        }
        assert_eq!(b5, b4, "{name}: the dialects answer differently");
        five.push(r5);
    }
    let [
        account_r,
        user_r,
        channel_r,
        status_r,
        auth_r,
        endpoint_r,
        count_r,
        channels_r,
    ] = <[Value; 8]>::try_from(five).unwrap();

    let mut listed: Vec<&str> = account_r["Channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uuid"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut want = vec![call_a.as_str(), call_b.as_str()];
    want.sort();
    assert_eq!(listed, want, "the account's channels only");
    let ch_a = account_r["Channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uuid"] == call_a.as_str())
        .unwrap();
    // 5.x channel keys, as the events carried them.
    assert_eq!(
        ch_a["custom_sip_headers"],
        json!({"X-Kazoo-Trace": "on", "X-Site": "east"})
    );
    assert_eq!(
        ch_a["custom_auth_headers"],
        json!({"X-AUTH-IP": "10.26.0.50", "X-AUTH-PORT": "5060"})
    );
    assert_eq!(ch_a["request"], "2600@account.realm.com");
    assert_eq!(
        ch_a["recording_status"],
        json!({"call_recording_5f3e2d1c": "recording"})
    );
    assert_eq!(user_r["Channels"].as_array().unwrap().len(), 2);
    let api = &channel_r["Channels"][&call_a];
    assert_eq!(
        api["Recording-Status"],
        json!({"call_recording_5f3e2d1c": "recording"})
    );
    assert_eq!(api["Custom-AUTH-Headers"]["X-AUTH-IP"], "10.26.0.50");
    assert_eq!(status_r["Status"], "active");
    assert_eq!(status_r["Custom-SIP-Headers"]["X-Site"], "east");
    assert_eq!(auth_r["Channels"][0]["uuid"], call_a.as_str());
    // Endpoint a.owner: call_a (owner), not call_x (another account).
    assert_eq!(endpoint_r["Channels"], json!([call_a]));
    assert_eq!(
        count_r["Count"],
        json!({"account": 1, "device": 1, "owner": 1, "endpoint": 0}),
        "inbound only: call_b is outbound"
    );
    let keys: Vec<&String> = channels_r["Channels"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{channels_r:#}");
    assert_eq!(
        channels_r["Channels"]["device"],
        json!({ call_b.clone(): {"switch_url": "sip:mod_sofia@10.26.0.81:5060", "is_onhold": false, "destination": "2600"} })
    );
    assert_eq!(
        channels_r["Channels"]["user"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec![&call_a]
    );
    assert_eq!(
        channels_r["Channels"]["account"].as_object().unwrap().len(),
        2
    );

    // Count-Only, Direction, Fields, Channel-Record.
    let r = answered5(
        &c,
        "query_endpoint_channels_req",
        json!({
        "Account-ID": account, "Endpoint-ID": b.id, "Count-Only": "true"}),
    )
    .await;
    assert_eq!(r["Count"], 1);
    assert!(r.get("Channels").is_none());
    let r = answered5(
        &c,
        "query_endpoint_channels_req",
        json!({
        "Account-ID": account, "Endpoint-ID": b.id, "Direction": "inbound"}),
    )
    .await;
    assert_eq!(r["Channels"], json!([]));
    let r = answered5(
        &c,
        "channels_req",
        json!({
        "Device-ID": format!("{}@{account}", a.id),
        "Fields": ["uuid", "answered", "cshs", "recording_status", "former_node", "not_a_field"]}),
    )
    .await;
    assert_eq!(
        r["Channels"],
        json!({"device": { call_a.clone(): {
        "uuid": call_a, "answered": true, "cshs": {"X-Kazoo-Trace": "on", "X-Site": "east"},
        "recording_status": {"call_recording_5f3e2d1c": "recording"}}}})
    );
    let r = answered5(
        &c,
        "channel_status_req",
        json!({"Call-ID": call_a, "Channel-Record": true}),
    )
    .await;
    let m = r.as_object().unwrap();
    assert_eq!(m["Status"], "active");
    assert_eq!(m["Channel-Record"]["Call-ID"], call_a.as_str());
    assert_eq!(m["Channel-Record"]["Account-ID"], account.as_str());
    assert!(
        m.get("Switch-URL").is_none(),
        "Channel-Record replaces the status keys"
    );

    c.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_on_a_topic_channels_exchange() {
    both_dialects(ExchangeKind::Topic, "k5-topic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_on_a_direct_channels_exchange() {
    both_dialects(ExchangeKind::Direct, "k5-direct").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_is_bound_when_it_appears_and_never_declared() {
    let vh = TestVhost::new("k5-late");
    let mut s = vh.settings();
    s.queries.kazoo5_check_secs = 1;
    let w = vh.worker_with(s).await;
    let c = vh.client("crossbar").await;
    let account = hex_id();
    // The old dialect is served from the start.
    let r = answered(
        &c,
        Dialect::Four,
        "query_account_channels_req",
        &account,
        json!({"Account-ID": account}),
    )
    .await;
    assert_eq!(r["Channels"], json!([]));
    // Several checks later the worker has still not declared it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !channels_exists(&vh).await,
        "the worker declared `channels`"
    );
    // A Kazoo 5.1+ node starts: the worker binds within kazoo5_check_secs.
    declare_channels(&vh, ExchangeKind::Direct).await;
    assert!(
        eventually(Duration::from_secs(3), || vh
            .bindings()
            .iter()
            .any(|(s, _, rk)| s == CHANNELS && rk == QUERY_STATUS))
        .await,
        "query queue not bound to channels"
    );
    let r = answered5(&c, "count_req", json!({"Account-ID": account})).await;
    assert_eq!(r["Count"], json!({"account": 0}));
    // Still the test's direct exchange, flags unchanged (a different
    // declaration would have made this one fail with 406).
    declare_channels(&vh, ExchangeKind::Direct).await;
    c.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_the_new_apis_is_silent_and_logged() {
    let (vh, w, c) = start5("k5-bad", "callflow").await;
    let account = hex_id();
    let bad = [
        ("count_req", json!({"Device-ID": "d"})),
        ("count_req", json!({"Account-ID": 42})),
        (
            "channels_req",
            json!({"Account-ID": account, "Device-ID": "no-at-sign"}),
        ),
        (
            "channels_req",
            json!({"Owner-ID": "o@a", "Fields": "switch_url"}),
        ),
        (
            "channels_req",
            json!({"Owner-ID": "o@a", "Fields": ["switch_url", 3]}),
        ),
        (
            "query_endpoint_channels_req",
            json!({"Account-ID": account}),
        ),
        ("query_endpoint_channels_req", json!({"Endpoint-ID": "e"})),
    ];
    let n = bad.len() as u64;
    for (name, keys) in bad {
        silent(&c, Dialect::Five, name, keys).await;
    }
    // The worker keeps answering.
    let r = answered5(&c, "count_req", json!({"Account-ID": account})).await;
    assert_eq!(r["Count"], json!({"account": 0}));
    assert!(
        eventually(WAIT, || Stats::get(&w.state.stats.requests_rejected) == n).await,
        "rejected {} of {n}",
        Stats::get(&w.state.stats.requests_rejected)
    );
    assert_eq!(c.stray_replies(), 0);
    // Acked, never requeued.
    let q = &w.state.topology.queue("queries").unwrap().name;
    assert_eq!(vh.queue_depth(q), Some((0, 0)), "messages left on {q}");
    c.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_fast_pickup_is_answered() {
    let (_vh, w, c) = start5("k5-kamailio", "kamailio").await;
    let (d, call) = one_call(&w, &c, "user_zu0bf7").await;
    // The body presence-fast-pickup.cfg sends, with what the kazoo module adds
    // (App-Name, App-Version, Node, Msg-ID); Server-ID is our reply queue.
    let mut body: Map<String, Value> = fixture("kazoo5.kamailio.channel_status_req.json")
        .as_object()
        .unwrap()
        .clone();
    body.remove("Server-ID");
    body.insert("Call-ID".into(), json!(call));
    let r = c
        .request(
            CHANNELS,
            QUERY_STATUS,
            "channel",
            "channel_status_req",
            body.clone(),
            Collect::first(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "fast pickup not answered");
    check(&r[0], "channel_status_req", Dialect::Five);
    assert_eq!(r[0]["Msg-ID"], body["Msg-ID"]);
    assert_eq!(
        r[0]["Switch-URL"], "sip:mod_sofia@10.26.0.81:5060",
        "what Kamailio redirects to"
    );
    assert_eq!(r[0]["Answered"], true);
    // Unknown call under Active-Only: silence, as ecallmgr (Kamailio times out).
    body.insert("Call-ID".into(), json!(sip_call_id()));
    body.insert("Msg-ID".into(), json!(uuid::Uuid::new_v4().to_string()));
    let r = c
        .request(
            CHANNELS,
            QUERY_STATUS,
            "channel",
            "channel_status_req",
            body,
            Collect::all(SILENCE),
        )
        .await
        .unwrap();
    assert!(r.is_empty());
    // The park lookup: a channel parked on slot *3101 (dialled, not bridged).
    let parked = sip_call_id();
    let mut create = d.event("CHANNEL_CREATE", &parked, "inbound");
    create["Caller-Destination-Number"] = json!("*3101");
    c.publish(&event_msg(&create)).await.unwrap();
    c.publish(&event_msg(&d.event("CHANNEL_ANSWER", &parked, "inbound")))
        .await
        .unwrap();
    until_answered(&w, &[&parked]).await;
    let mut park: Map<String, Value> = fixture("kazoo5.kamailio.query_user_channels_req.park.json")
        .as_object()
        .unwrap()
        .clone();
    park.remove("Server-ID");
    let r = c
        .request(
            CHANNELS,
            QUERY_STATUS,
            "channel",
            "query_user_channels_req",
            park,
            Collect::first(WAIT),
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 1, "park lookup not answered");
    check(&r[0], "query_user_channels_req", Dialect::Five);
    assert_eq!(r[0]["Channels"][0]["uuid"], parked.as_str());
    assert_eq!(
        r[0]["Channels"][0]["switch_url"],
        "sip:mod_sofia@10.26.0.81:5060"
    );
    c.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_client_speaks_both_dialects() {
    let (vh, w, c) = start5("k5-cli", "crossbar").await;
    let (d, _call) = one_call(&w, &c, "user_a").await;
    let device = format!("{}@{}", d.id, d.account);
    for (dialect, args) in [
        (Dialect::Four, vec!["account", d.account.as_str()]),
        (Dialect::Five, vec!["account", d.account.as_str()]),
        (
            Dialect::Five,
            vec!["endpoint", d.account.as_str(), d.owner.as_str()],
        ),
        (
            Dialect::Four,
            vec!["count", d.account.as_str(), "--device", d.id.as_str()],
        ),
        (
            Dialect::Five,
            vec!["channels", "--device", device.as_str(), "--field", "uuid"],
        ),
    ] {
        let n = if dialect == Dialect::Five { "5" } else { "4" };
        let mut all = vec!["query", "--dialect", n, "--json", "--timeout", "1"];
        all.extend(args.iter().copied());
        let out = cli(&vh, &all).await;
        assert!(
            out.status.success(),
            "{all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let replies: Vec<Value> = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
        assert_eq!(replies.len(), 1, "{all:?}");
        let name = replies[0]["Event-Name"]
            .as_str()
            .unwrap()
            .replace("_resp", "_req");
        check(&replies[0], &name, dialect);
    }
    // The table of a 5.x lookup.
    let out = cli(
        &vh,
        &[
            "query",
            "--dialect",
            "5",
            "count",
            &d.account,
            "--owner",
            &d.owner,
            "--timeout",
            "1",
        ],
    )
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().next().unwrap().contains("account"), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .skip(1)
            .eq(["1", "-", "-", "1", "-"]),
        "{table}"
    );
    c.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_never_declares_channels_either() {
    let vh = TestVhost::new("k5-cli-none");
    let out = cli(
        &vh,
        &[
            "query",
            "--dialect",
            "5",
            "account",
            &hex_id(),
            "--timeout",
            "1",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!channels_exists(&vh).await);
}
