//! The five channel queries against a real broker, asked the way Kazoo asks
//! them (routing keys, keys, a private reply queue bound to `targeted`), every
//! reply checked against its schema (WIRE.md §3, §4).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use kazoo_channels::app::WorkerHandle;
use kazoo_channels::bus::{BusClient, Collect};
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::kapi::{Outgoing, encode};
use kazoo_channels::stats::Stats;
use lapin::types::AMQPValue;
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for a reply that was going to come; every silence is awaited this long.
const SILENCE: Duration = Duration::from_millis(800);

/// The keys of ecallmgr's lower-case channel (WIRE.md §4.1).
const SECTION_4_1: [&str; 43] = [
    "uuid",
    "direction",
    "destination",
    "account_id",
    "account_billing",
    "reseller_id",
    "reseller_billing",
    "authorizing_id",
    "authorizing_type",
    "channel_authorized",
    "owner_id",
    "resource_id",
    "fetch_id",
    "bridge_id",
    "callflow_id",
    "interaction_id",
    "precedence",
    "presence_id",
    "realm",
    "username",
    "answered",
    "other_leg",
    "is_onhold",
    "is_loopback",
    "loopback_leg_name",
    "loopback_other_leg",
    "to_tag",
    "from_tag",
    "node",
    "switch_nodename",
    "switch_url",
    "profile",
    "context",
    "dialplan",
    "handling_locally",
    "timestamp",
    "elapsed_s",
    "custom_application_vars",
    "custom_channel_vars",
    "caller_id_name",
    "caller_id_number",
    "callee_id_name",
    "callee_id_number",
];

/// The keys Crossbar deletes before answering a list endpoint (WIRE.md §4.3).
const CROSSBAR_DELETES: [&str; 20] = [
    "account_id",
    "bridge_id",
    "context",
    "dialplan",
    "handling_locally",
    "node",
    "precedence",
    "profile",
    "realm",
    "switch_hostname",
    "switch_nodename",
    "switch_url",
    "media_node",
    "fetch_id",
    "app_name",
    "app_version",
    "event_category",
    "event_name",
    "msg_id",
    "server_id",
];

fn status_req_key(word: &str) -> String {
    format!("call.status_req.{}", encode(word))
}

/// A call id shaped like a SIP one: `@` and `.` exercise the routing-key escaping.
fn sip_call_id() -> String {
    format!("{}@10.26.0.91", uuid::Uuid::new_v4())
}

/// Checks a reply the way a Kazoo validator would, plus our schema.
fn check(reply: &Value, request_name: &str) {
    let name = reply["Event-Name"].as_str().expect("Event-Name");
    assert_eq!(name, request_name.replace("_req", "_resp"));
    assert_eq!(reply["Event-Category"], "call_event");
    assert_eq!(reply["App-Name"], "kazoo-channels");
    schemas()
        .validate(&format!("kapi.call.{name}"), reply, "")
        .unwrap_or_else(|e| panic!("{name} fails its schema: {e:?}\n{reply:#}"));
}

/// Asks like Crossbar (a fresh Msg-ID, replies matched by it) and checks every reply.
async fn ask(c: &BusClient, name: &str, rk: &str, keys: Value, collect: Collect) -> Vec<Value> {
    let keys = keys.as_object().expect("keys are an object").clone();
    let replies = c
        .request("callevt", rk, "call_event", name, keys, collect)
        .await
        .expect("request published");
    for r in &replies {
        check(r, name);
    }
    replies
}

/// The one reply a request must get.
async fn answered(c: &BusClient, name: &str, rk: &str, keys: Value) -> Value {
    let mut r = ask(c, name, rk, keys.clone(), Collect::first(WAIT)).await;
    assert_eq!(r.len(), 1, "{name} {keys} was not answered");
    r.remove(0)
}

/// Crossbar's account query, answered.
async fn account_query(c: &BusClient, account: &str) -> Value {
    answered(
        c,
        "query_account_channels_req",
        &status_req_key(account),
        json!({"Account-ID": account, "Active-Only": false, "Usernames": []}),
    )
    .await
}

/// Asserts that nothing answers within [`SILENCE`].
async fn silent(c: &BusClient, name: &str, rk: &str, keys: Value) {
    let r = ask(c, name, rk, keys.clone(), Collect::all(SILENCE)).await;
    assert!(r.is_empty(), "{name} {keys} should get no reply: {r:#?}");
}

fn uuids(reply: &Value) -> Vec<String> {
    let mut u: Vec<String> = reply["Channels"]
        .as_array()
        .expect("Channels is an array")
        .iter()
        .map(|c| c["uuid"].as_str().unwrap().to_owned())
        .collect();
    u.sort();
    u
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A SIP device of an account.
struct Device {
    account: String,
    realm: String,
    username: String,
    id: String,
    owner: String,
}

impl Device {
    fn new(account: &str, realm: &str, username: &str) -> Self {
        Self {
            account: account.into(),
            realm: realm.into(),
            username: username.into(),
            id: hex_id(),
            owner: hex_id(),
        }
    }

    /// The constructed 4.3 A-leg event, as this device's call `call_id`.
    fn event(&self, name: &str, call_id: &str) -> Value {
        let mut v = a_leg_event(name, call_id, &self.account);
        let ccv = &mut v["Custom-Channel-Vars"];
        ccv["Realm"] = json!(self.realm);
        ccv["Username"] = json!(self.username);
        ccv["Authorizing-ID"] = json!(self.id);
        ccv["Owner-ID"] = json!(self.owner);
        v
    }

    /// CREATE and ANSWER of a call from this device.
    async fn call(&self, c: &BusClient, call_id: &str) {
        for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
            c.publish(&event_msg(&self.event(name, call_id)))
                .await
                .unwrap();
        }
    }
}

/// A private vhost, a worker on it and a requester named `app`.
async fn start(vhost: &str, app: &str) -> (TestVhost, WorkerHandle, BusClient) {
    let vh = TestVhost::new(vhost);
    let w = vh.worker().await;
    let c = vh.client(app).await;
    (vh, w, c)
}

async fn stop(c: BusClient, w: WorkerHandle) {
    c.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_query_gives_crossbar_the_seed_fields() {
    let (vh, w, c) = start("q-account", "crossbar").await;
    let (account, other_account) = (hex_id(), hex_id());
    let call = sip_call_id();
    let other_call = sip_call_id();
    for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
        c.publish(&event_msg(&a_leg_event(name, &call, &account)))
            .await
            .unwrap();
        c.publish(&event_msg(&a_leg_event(name, &other_call, &other_account)))
            .await
            .unwrap();
    }
    until_answered(&w, &[&call, &other_call]).await;

    // The CLI, as an operator runs it: exactly one reply, one channel.
    let out = cli(
        &vh,
        &["query", "account", &account, "--json", "--timeout", "1"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Vec<Value> = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(replies.len(), 1, "one instance, one reply");
    check(&replies[0], "query_account_channels_req");
    assert_eq!(uuids(&replies[0]), vec![call.clone()], "only that account");
    let channel = replies[0]["Channels"][0].as_object().unwrap().clone();
    for key in channel.keys() {
        assert!(SECTION_4_1.contains(&key.as_str()), "{key} is not in §4.1");
    }
    let mut shown = channel.clone();
    for k in CROSSBAR_DELETES {
        shown.remove(k);
    }
    let create = a_leg_event("CHANNEL_CREATE", &call, &account);
    let ccv = &create["Custom-Channel-Vars"];
    let expect = json!({
        "answered": true,
        "authorizing_id": ccv["Authorizing-ID"],
        "authorizing_type": ccv["Authorizing-Type"],
        "destination": "2600",
        "direction": create["Call-Direction"],
        "owner_id": ccv["Owner-ID"],
        "presence_id": create["Presence-ID"],
        "timestamp": create["Timestamp"],
        "username": ccv["Username"],
        "uuid": call,
    });
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&shown[k], v, "{k}");
    }
    let ts = shown["timestamp"].as_u64().unwrap();
    assert!(
        ts > 63_000_000_000 && ts < 65_000_000_000,
        "Gregorian seconds: {ts}"
    );

    // Bridged: other_leg appears, and then every field of the documentation example.
    c.publish(&event_msg(&a_leg_event("CHANNEL_BRIDGE", &call, &account)))
        .await
        .unwrap();
    until_bridged(&w, &call).await;
    let r = account_query(&c, &account).await;
    let ch = &r["Channels"][0];
    assert_eq!(ch["other_leg"], "5e0c1c3a-2b7d-4a4f-9a51-0f2e7b7e6c11");
    let doc = fixture("crossbar-channels.md.get-account-channels.response.json");
    for (k, v) in doc["data"][0].as_object().unwrap() {
        let ours = ch
            .get(k)
            .unwrap_or_else(|| panic!("seed field {k} missing"));
        assert_eq!(
            std::mem::discriminant(ours),
            std::mem::discriminant(v),
            "{k}: {ours} vs {v}"
        );
    }

    // An account with no channels: an empty array. `all` is not allowed by default.
    let r = account_query(&c, &hex_id()).await;
    assert_eq!(r["Channels"], json!([]));
    let r = account_query(&c, "all").await;
    assert_eq!(r["Channels"], json!([]));
    // The other account sees only its own.
    let r = account_query(&c, &other_account).await;
    assert_eq!(uuids(&r), vec![other_call.clone()]);

    // The table form and the exit status when nobody answers.
    let out = cli(&vh, &["query", "account", &account, "--expect", "1"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains(&call) && table.contains("1 channel(s)"),
        "{table}"
    );
    w.shutdown().await;
    let out = cli(&vh, &["query", "account", &account, "--timeout", "0.3"]).await;
    assert_eq!(out.status.code(), Some(1), "nobody answered");
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_wide_listing_is_the_operators_choice() {
    let vh = TestVhost::new("q-all");
    let mut settings = vh.settings();
    settings.queries.system_wide_listing = true;
    let w = vh.worker_with(settings).await;
    let c = vh.client("crossbar").await;
    let calls: Vec<String> = (0..3).map(|_| sip_call_id()).collect();
    for call in &calls {
        for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
            c.publish(&event_msg(&a_leg_event(name, call, &hex_id())))
                .await
                .unwrap();
        }
    }
    let ids: Vec<&str> = calls.iter().map(String::as_str).collect();
    until_answered(&w, &ids).await;
    let r = account_query(&c, "all").await;
    assert_eq!(uuids(&r), sorted(calls));
    // Still silent without an Account-ID at all.
    silent(
        &c,
        "query_account_channels_req",
        "call.status_req.",
        json!({}),
    )
    .await;
    stop(c, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_queries_match_as_ecallmgr_matches() {
    let (_vh, w, c) = start("q-user", "crossbar").await;
    let (acct, other) = (hex_id(), hex_id());
    let alice = Device::new(&acct, "one.realm.example", "alice");
    let bob = Device::new(&acct, "one.realm.example", "bob");
    let carol = Device::new(&other, "two.realm.example", "carol");
    let (a, b, k) = (sip_call_id(), sip_call_id(), sip_call_id());
    alice.call(&c, &a).await;
    bob.call(&c, &b).await;
    carol.call(&c, &k).await;
    // Alice's second call dials park slot *3101 and is not bridged.
    let park = sip_call_id();
    let mut ev = alice.event("CHANNEL_CREATE", &park);
    ev["Request"] = json!("*3101@one.realm.example");
    c.publish(&event_msg(&ev)).await.unwrap();
    until_answered(&w, &[&a, &b, &k]).await;
    assert!(eventually(WAIT, || w.registry().get(&park).is_some()).await);

    let q = "query_user_channels_req";
    let user_key = |u: &str, r: &str| status_req_key(&format!("{u}:{r}"));
    // Crossbar's /users/{U}/channels: Realm + the devices' usernames, Active-Only false.
    let r = answered(
        &c,
        q,
        &user_key("bob", &bob.realm),
        json!({"Realm": bob.realm, "Usernames": ["bob"], "Active-Only": false, "Account-ID": acct}),
    )
    .await;
    assert_eq!(uuids(&r), vec![b.clone()]);
    // callflow's form: no Active-Only; the query side is lower-cased.
    let r = answered(
        &c,
        q,
        &user_key("alice", "ONE.realm.example"),
        json!({"Realm": "ONE.realm.example", "Username": "Alice"}),
    )
    .await;
    assert_eq!(uuids(&r), sorted(vec![a.clone(), park.clone()]));
    // A realm alone lists the realm, never another account's.
    let r = answered(
        &c,
        q,
        &user_key("", &alice.realm),
        json!({"Realm": alice.realm}),
    )
    .await;
    assert_eq!(uuids(&r), sorted(vec![a.clone(), b.clone(), park.clone()]));
    // The park slot: unbridged channels dialling it.
    let r = answered(
        &c,
        q,
        &user_key("*3101", &alice.realm),
        json!({"Realm": alice.realm, "Username": "*3101"}),
    )
    .await;
    assert_eq!(uuids(&r), vec![park.clone()]);
    // Authorizing-IDs (group pickup's form), keyed on the empty word.
    let r = answered(
        &c,
        q,
        "call.status_req.",
        json!({"Authorizing-IDs": [carol.id, bob.id], "Active-Only": false}),
    )
    .await;
    assert_eq!(uuids(&r), sorted(vec![b.clone(), k.clone()]));
    // Both ways at once: concatenated, so Bob's call is listed twice, as ecallmgr lists it.
    let r = answered(
        &c,
        q,
        &user_key("bob", &bob.realm),
        json!({"Realm": bob.realm, "Username": "bob", "Authorizing-IDs": [bob.id]}),
    )
    .await;
    assert_eq!(uuids(&r), vec![b.clone(), b.clone()]);
    // Our Owner-IDs extension.
    let r = answered(
        &c,
        q,
        "call.status_req.",
        json!({"Owner-IDs": [alice.owner], "Active-Only": false}),
    )
    .await;
    assert_eq!(uuids(&r), sorted(vec![a.clone(), park.clone()]));
    // Active-Only false: an empty answer.
    let r = answered(
        &c,
        q,
        &user_key("nobody", &alice.realm),
        json!({"Realm": alice.realm, "Usernames": ["nobody"], "Active-Only": false}),
    )
    .await;
    assert_eq!(r["Channels"], json!([]));

    // Silences, all awaited together: nothing matched under Active-Only (absent,
    // true or "true"), Usernames [] (a user without devices), wrong types.
    let silences = [
        json!({"Realm": alice.realm, "Usernames": ["nobody"]}),
        json!({"Realm": alice.realm, "Usernames": ["nobody"], "Active-Only": true}),
        json!({"Realm": alice.realm, "Username": "nobody", "Active-Only": "true"}),
        json!({"Realm": alice.realm, "Usernames": []}),
        json!({"Realm": carol.realm, "Username": "alice"}),
        json!({"Username": "alice"}),
        json!({"Realm": alice.realm, "Usernames": "alice", "Active-Only": false}),
        json!({"Authorizing-IDs": alice.id, "Active-Only": false}),
        json!({"Realm": alice.realm, "Active-Only": "yes"}),
    ];
    let rk = user_key("alice", &alice.realm);
    futures_util::future::join_all(silences.into_iter().map(|keys| silent(&c, q, &rk, keys))).await;
    assert_eq!(
        Stats::get(&w.state.stats.requests_rejected),
        3,
        "the wrong types"
    );
    stop(c, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_status_and_auth_id_queries() {
    let (_vh, w, c) = start("q-channels", "crossbar").await;
    let acct = hex_id();
    let dev = Device::new(&acct, "r.example", "dave");
    let (x, y) = (
        sip_call_id(),
        format!("{}.leg.two@[::1]", uuid::Uuid::new_v4()),
    );
    dev.call(&c, &x).await;
    dev.call(&c, &y).await;
    until_answered(&w, &[&x, &y]).await;
    let q = "query_channels_req";
    let channels_key = "call.status_req.channels";

    // Crossbar's GET /channels/{id}: Fields all, Active-Only true.
    let r = answered(
        &c,
        q,
        channels_key,
        json!({"Call-ID": x, "Fields": "all", "Active-Only": true}),
    )
    .await;
    let obj = r["Channels"].as_object().unwrap();
    assert_eq!(obj.len(), 1);
    let ch = &obj[&x];
    assert_eq!(ch["Account-ID"], acct.as_str(), "what Crossbar checks");
    assert_eq!(ch["Call-ID"], x.as_str());
    assert_eq!(ch["Username"], "dave");
    assert_eq!(ch["Answered"], true);
    // A Fields list: only those keys (unknown and absent ones omitted).
    let r = answered(
        &c,
        q,
        channels_key,
        json!({"Call-ID": y, "Fields": ["Account-ID", "Other-Leg-Call-ID", "Nope"]}),
    )
    .await;
    assert_eq!(r["Channels"], json!({ y.clone(): {"Account-ID": acct} }));
    // jonny5's form: no Fields, no Call-ID: every call id, with {}.
    let r = answered(&c, q, channels_key, json!({})).await;
    assert_eq!(r["Channels"], json!({ x.clone(): {}, y.clone(): {} }));
    // Unknown call: {} by default, silence under Active-Only.
    let r = answered(&c, q, channels_key, json!({"Call-ID": "gone@1.2.3.4"})).await;
    assert_eq!(r["Channels"], json!({}));

    let s = "channel_status_req";
    let r = answered(&c, s, &status_req_key(&x), json!({"Call-ID": x})).await;
    assert_eq!(r["Status"], "active");
    assert_eq!(r["Call-ID"], x.as_str());
    assert_eq!(r["Switch-Nodename"], "freeswitch@fs1.example.com");
    assert_eq!(r["Switch-Hostname"], "fs1.example.com");
    assert_eq!(r["Username"], "dave");
    let r = answered(
        &c,
        s,
        &status_req_key(&y),
        json!({"Call-ID": y, "Active-Only": "true"}),
    )
    .await;
    assert_eq!(r["Status"], "active");
    let unknown = sip_call_id();
    let r = answered(
        &c,
        s,
        &status_req_key(&unknown),
        json!({"Call-ID": unknown}),
    )
    .await;
    assert_eq!(
        (&r["Status"], &r["Error-Msg"]),
        (&json!("terminated"), &json!("no node found with channel"))
    );

    let a = "query_auth_id_req";
    let r = answered(&c, a, &status_req_key(&dev.id), json!({"Auth-ID": dev.id})).await;
    assert_eq!(uuids(&r), sorted(vec![x.clone(), y.clone()]));
    let r = answered(
        &c,
        a,
        &status_req_key("nobody"),
        json!({"Auth-ID": "nobody"}),
    )
    .await;
    assert_eq!(r["Channels"], json!([]));

    futures_util::future::join(
        silent(
            &c,
            q,
            channels_key,
            json!({"Call-ID": "gone@1.2.3.4", "Active-Only": true}),
        ),
        silent(
            &c,
            s,
            &status_req_key(&unknown),
            json!({"Call-ID": unknown, "Active-Only": true}),
        ),
    )
    .await;
    stop(c, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pid_server_id_is_answered_on_its_queue_with_deliver_to_pid() {
    let (vh, w, c) = start("q-pid", "callflow").await;
    let call = sip_call_id();
    Device::new(&hex_id(), "r.example", "erin")
        .call(&c, &call)
        .await;
    until_answered(&w, &[&call]).await;

    let conn = Connection::connect(&vh.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let queue = "QUEUE";
    let (_, mut consumer) = tap(&ch, queue, &[("targeted", queue)]).await;
    let request = json!({
        "App-Name": "callflow", "App-Version": "5.0.0", "Node": "callflow@kz1.example.com",
        "Event-Category": "call_event", "Event-Name": "channel_status_req",
        "Msg-ID": "pid-request-1", "Call-ID": call,
        "Server-ID": format!("pid://<0.5511.0>/{queue}"),
    });
    c.publish(&Outgoing::json("callevt", status_req_key(&call), &request))
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a reply on QUEUE")
        .unwrap()
        .unwrap();
    assert_eq!(d.exchange.as_str(), "targeted");
    assert_eq!(d.routing_key.as_str(), queue);
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    let headers = d.properties.headers().as_ref().expect("AMQP headers");
    let pid = headers
        .inner()
        .iter()
        .find(|(k, _)| k.as_str() == "Deliver-To-PID")
        .map(|(_, v)| v);
    match pid {
        Some(AMQPValue::LongString(s)) => assert_eq!(s.to_string(), "<0.5511.0>"),
        other => panic!("Deliver-To-PID: {other:?}"),
    }
    let reply: Value = serde_json::from_slice(&d.data).unwrap();
    check(&reply, "channel_status_req");
    assert_eq!(reply["Msg-ID"], "pid-request-1");
    assert_eq!(reply["Status"], "active");
    conn.close(200, "bye".into()).await.unwrap();
    stop(c, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswerable_requests_are_acked_logged_and_silent() {
    let (vh, w, c) = start("q-bad", "crossbar").await;
    let acct = hex_id();
    let base = json!({
        "App-Name": "crossbar", "App-Version": "4.0.0", "Event-Category": "call_event",
        "Event-Name": "query_account_channels_req", "Account-ID": acct,
        "Msg-ID": "bad-1", "Server-ID": c.reply_queue(),
    });
    let without = |key: &str| {
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove(key);
        v
    };
    let with = |key: &str, value: Value| {
        let mut v = base.clone();
        v[key] = value;
        v
    };
    let rk = status_req_key(&acct);
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        b"[\"an\", \"array\"]".to_vec(),
        serde_json::to_vec(&without("Msg-ID")).unwrap(),
        serde_json::to_vec(&without("Server-ID")).unwrap(),
        serde_json::to_vec(&without("Account-ID")).unwrap(),
        serde_json::to_vec(&with("Event-Name", json!("query_everything_req"))).unwrap(),
        serde_json::to_vec(&with("Event-Category", json!("call"))).unwrap(),
        serde_json::to_vec(&with("Account-ID", json!(42))).unwrap(),
    ];
    let n = bodies.len() as u64;
    for body in bodies {
        c.publish(&Outgoing::new("callevt", rk.clone(), body))
            .await
            .unwrap();
    }
    // A good request behind them is answered: nothing got stuck.
    let r = account_query(&c, &acct).await;
    assert_eq!(r["Channels"], json!([]));
    assert!(
        eventually(WAIT, || Stats::get(&w.state.stats.requests_rejected) == n).await,
        "rejected {} of {n}",
        Stats::get(&w.state.stats.requests_rejected)
    );
    assert_eq!(Stats::get(&w.state.stats.requests_answered), 1);
    assert_eq!(c.stray_replies(), 0, "no reply to any bad request");
    // Acked, never requeued: the queue is empty.
    let q = &w.state.topology.queue("queries").unwrap().name;
    assert_eq!(vh.queue_depth(q), Some((0, 0)), "messages left on {q}");
    stop(c, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_older_than_crossbar_waits_is_never_answered() {
    let vh = TestVhost::new("q-ttl");
    // The first worker declares the shared queue, then goes away.
    vh.worker().await.shutdown().await;
    let c = vh.client("crossbar").await;
    let acct = hex_id();
    let rk = status_req_key(&acct);
    let stale = ask(
        &c,
        "query_account_channels_req",
        &rk,
        json!({"Account-ID": acct}),
        Collect::all(Duration::from_millis(4500)),
    );
    let later = async {
        // Past the 2 s TTL, a worker comes back: the request has expired.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        vh.worker().await
    };
    let (stale, w) = tokio::join!(stale, later);
    assert!(stale.is_empty(), "answered late: {stale:?}");
    assert_eq!(c.stray_replies(), 0);
    let r = account_query(&c, &acct).await;
    assert_eq!(r["Channels"], json!([]));
    stop(c, w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_query_queue() {
    let vh = TestVhost::new("q-shared");
    let (w1, w2) = (vh.worker().await, vh.worker().await);
    let c = vh.client("crossbar").await;
    let acct = hex_id();
    let call = sip_call_id();
    Device::new(&acct, "r.example", "fay").call(&c, &call).await;
    until_answered(&w1, &[&call]).await;
    until_answered(&w2, &[&call]).await;
    let rk = status_req_key(&acct);
    let asks = (0..60).map(|_| {
        ask(
            &c,
            "query_account_channels_req",
            &rk,
            json!({"Account-ID": acct}),
            Collect::all(Duration::from_millis(1500)),
        )
    });
    let replies = futures_util::future::join_all(asks).await;
    for r in &replies {
        assert_eq!(r.len(), 1, "exactly one instance answers each request");
        assert_eq!(uuids(&r[0]), vec![call.clone()]);
    }
    let (a1, a2) = (
        Stats::get(&w1.state.stats.requests_answered),
        Stats::get(&w2.state.stats.requests_answered),
    );
    assert_eq!(a1 + a2, 60);
    c.close().await;
    w1.shutdown().await;
    w2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_queries_are_each_answered_once() {
    let (vh, w, feeder) = start("q-load", "ecallmgr").await;
    let devices: Vec<Device> = (0..5)
        .map(|i| Device::new(&hex_id(), &format!("r{i}.example"), &format!("user{i}")))
        .collect();
    let mut calls = Vec::new();
    for d in &devices {
        for _ in 0..2 {
            let call = sip_call_id();
            d.call(&feeder, &call).await;
            calls.push(call);
        }
    }
    let ids: Vec<&str> = calls.iter().map(String::as_str).collect();
    until_answered(&w, &ids).await;

    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(vh.client(&format!("crossbar{i}")).await);
    }
    // 250 requests per requester, cycling through the APIs; each with its own Msg-ID.
    let started = Instant::now();
    let asks = (0..1000usize).map(|i| {
        let c = &clients[i % clients.len()];
        let d = &devices[i % devices.len()];
        let call = &calls[(i % devices.len()) * 2];
        let msg_id = format!("load-{i}-{}", hex_id());
        let (name, rk, mut keys, want): (&str, String, Value, usize) = match i % 5 {
            0 => (
                "query_account_channels_req",
                status_req_key(&d.account),
                json!({"Account-ID": d.account, "Active-Only": false, "Usernames": []}),
                2,
            ),
            1 => (
                "query_user_channels_req",
                status_req_key(&format!("{}:{}", d.username, d.realm)),
                json!({"Realm": d.realm, "Usernames": [d.username], "Active-Only": false}),
                2,
            ),
            2 => (
                "query_channels_req",
                "call.status_req.channels".into(),
                json!({"Call-ID": call, "Fields": "all", "Active-Only": true}),
                1,
            ),
            3 => (
                "channel_status_req",
                status_req_key(call),
                json!({"Call-ID": call}),
                1,
            ),
            _ => (
                "query_auth_id_req",
                status_req_key(&d.id),
                json!({"Auth-ID": d.id}),
                2,
            ),
        };
        keys["Msg-ID"] = json!(msg_id);
        async move {
            let r = ask(c, name, &rk, keys, Collect::all(Duration::from_secs(3))).await;
            (msg_id, name, want, r)
        }
    });
    let results = futures_util::future::join_all(asks).await;
    let elapsed = started.elapsed();
    let mut seen = HashSet::new();
    for (msg_id, name, want, replies) in &results {
        assert_eq!(
            replies.len(),
            1,
            "{name} {msg_id}: {} replies",
            replies.len()
        );
        let r = &replies[0];
        assert_eq!(r["Msg-ID"], msg_id.as_str());
        assert!(seen.insert(msg_id.clone()));
        let n = match &r["Channels"] {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => usize::from(r["Status"] == "active"),
        };
        assert_eq!(n, *want, "{name} {msg_id}");
    }
    for c in &clients {
        assert_eq!(c.stray_replies(), 0, "no duplicate or unmatched reply");
    }
    assert_eq!(Stats::get(&w.state.stats.requests_answered), 1000);
    eprintln!(
        "1000 concurrent queries from 4 requesters: all answered once, collected in {elapsed:?} (each waited its 3 s window)"
    );
    for c in clients {
        c.close().await;
    }
    stop(feeder, w).await;
}
