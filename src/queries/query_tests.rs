//! The handler without a broker: a registry built from the constructed 4.3
//! events, requests as Kazoo sends them, replies checked against WIRE.md §3 and
//! the schemas.
//!
//! Over 400 lines as one job: every API's answers, one test each, sharing the
//! registry and request builders above.

use std::time::Instant;

use serde_json::{Value, json};

use super::*;
use crate::kapi::CallEvent;
use crate::kapi::schema::schemas;

const NOW: u64 = 63_869_600_100;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A device's A-leg, created and answered, on a fresh call id.
struct Leg {
    call_id: &'static str,
    account: &'static str,
    username: &'static str,
    realm: &'static str,
    device: &'static str,
    owner: &'static str,
}

const ALICE: Leg = Leg {
    call_id: "a1@10.0.0.1",
    account: "acct1",
    username: "alice",
    realm: "one.example.com",
    device: "dev-alice",
    owner: "user-alice",
};
const BOB: Leg = Leg {
    call_id: "b1@10.0.0.2",
    account: "acct1",
    username: "bob",
    realm: "one.example.com",
    device: "dev-bob",
    owner: "user-bob",
};
const CAROL: Leg = Leg {
    call_id: "c1@10.0.0.3",
    account: "acct2",
    username: "carol",
    realm: "two.example.com",
    device: "dev-carol",
    owner: "user-carol",
};

fn event(name: &str, leg: &Leg) -> CallEvent<'static> {
    let mut v = fixture(&format!("kazoo43.callevt.{name}.a-leg.json"));
    v["Call-ID"] = json!(leg.call_id);
    let ccv = &mut v["Custom-Channel-Vars"];
    ccv["Account-ID"] = json!(leg.account);
    ccv["Username"] = json!(leg.username);
    ccv["Realm"] = json!(leg.realm);
    ccv["Authorizing-ID"] = json!(leg.device);
    ccv["Owner-ID"] = json!(leg.owner);
    CallEvent::decode(&serde_json::to_vec(&v).unwrap())
        .unwrap()
        .into_owned()
}

fn registry() -> Registry {
    let mut reg = Registry::default();
    for leg in [&ALICE, &BOB, &CAROL] {
        reg.apply(event("CHANNEL_CREATE", leg), Instant::now());
        reg.apply(event("CHANNEL_ANSWER", leg), Instant::now());
    }
    reg
}

fn identity() -> Identity {
    Identity::new("kazoo-channels-test@host")
}

fn settings(system_wide_listing: bool) -> QuerySettings {
    QuerySettings {
        system_wide_listing,
        kazoo5_check_secs: 60,
    }
}

fn request(name: &str, keys: Value) -> Vec<u8> {
    let mut v = json!({
        "App-Name": "crossbar", "App-Version": "4.0.0", "Node": "crossbar@kz1",
        "Event-Category": "call_event", "Event-Name": name,
        "Msg-ID": "msg-1", "Server-ID": "crossbar@kz1-<0.1.0>-q1",
    });
    v.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    serde_json::to_vec(&v).unwrap()
}

/// The reply's body, after checking its address, `Msg-ID` and schema.
fn ask_with(reg: &Registry, s: &QuerySettings, name: &str, keys: Value) -> Option<Value> {
    let a = answer_body(reg, &identity(), s, &request(name, keys), NOW).unwrap();
    let out = a.reply?;
    assert_eq!(out.exchange, "targeted");
    assert_eq!(out.routing_key, "crossbar@kz1-<0.1.0>-q1");
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["Msg-ID"], "msg-1");
    assert_eq!(v["App-Name"], "kazoo-channels");
    assert_eq!(v["Node"], "kazoo-channels-test@host");
    let reply_name = v["Event-Name"].as_str().unwrap().to_owned();
    assert_eq!(reply_name, name.replace("_req", "_resp"));
    schemas()
        .validate(&format!("kapi.call.{reply_name}"), &v, "")
        .unwrap_or_else(|e| panic!("{reply_name}: {e:?}\n{v:#}"));
    Some(v)
}

fn ask(reg: &Registry, name: &str, keys: Value) -> Option<Value> {
    ask_with(reg, &settings(false), name, keys)
}

fn uuids(reply: &Value) -> Vec<&str> {
    let mut u: Vec<&str> = reply["Channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uuid"].as_str().unwrap())
        .collect();
    u.sort_unstable();
    u
}

#[test]
fn account_query_lists_only_that_account() {
    let reg = registry();
    let r = ask(
        &reg,
        "query_account_channels_req",
        json!({"Account-ID": "acct1", "Active-Only": false, "Usernames": []}),
    )
    .unwrap();
    assert_eq!(uuids(&r), vec![ALICE.call_id, BOB.call_id]);
    let alice = r["Channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uuid"] == ALICE.call_id)
        .unwrap();
    assert_eq!(alice["elapsed_s"], NOW - 63_869_600_000);
    assert_eq!(alice["account_id"], "acct1");
    let r = ask(
        &reg,
        "query_account_channels_req",
        json!({"Account-ID": "nobody"}),
    )
    .unwrap();
    assert_eq!(r["Channels"], json!([]), "always answered");
}

#[test]
fn account_all_needs_the_operator() {
    let reg = registry();
    let r = ask(
        &reg,
        "query_account_channels_req",
        json!({"Account-ID": "all"}),
    )
    .unwrap();
    assert_eq!(r["Channels"], json!([]));
    let r = ask_with(
        &reg,
        &settings(true),
        "query_account_channels_req",
        json!({"Account-ID": "all"}),
    )
    .unwrap();
    assert_eq!(uuids(&r).len(), 3);
}

#[test]
fn user_query_by_realm_and_usernames() {
    let reg = registry();
    let user = |keys| ask(&reg, "query_user_channels_req", keys);
    let r = user(json!({"Realm": "ONE.example.com", "Usernames": ["Alice", "alice", "nobody"], "Active-Only": false})).unwrap();
    assert_eq!(
        uuids(&r),
        vec![ALICE.call_id],
        "query side lower-cased, names ORed"
    );
    let r = user(json!({"Realm": "one.example.com", "Username": "bob", "Usernames": ["alice"]}))
        .unwrap();
    assert_eq!(uuids(&r), vec![BOB.call_id], "Username wins");
    let r = user(json!({"Realm": "one.example.com"})).unwrap();
    assert_eq!(
        uuids(&r),
        vec![ALICE.call_id, BOB.call_id],
        "the whole realm"
    );
    assert!(
        user(json!({"Realm": "one.example.com", "Usernames": []})).is_none(),
        "[] matches nothing"
    );
    let r =
        user(json!({"Realm": "one.example.com", "Usernames": [], "Active-Only": false})).unwrap();
    assert_eq!(r["Channels"], json!([]));
    assert!(
        user(json!({"Username": "alice"})).is_none(),
        "no realm, no user match"
    );
    assert!(
        user(json!({"Realm": "two.example.com", "Username": "alice", "Active-Only": "true"}))
            .is_none()
    );
}

#[test]
fn user_query_ids_concatenate() {
    let reg = registry();
    let user = |keys| ask(&reg, "query_user_channels_req", keys);
    let r = user(json!({"Authorizing-IDs": ["dev-carol", "dev-bob"]})).unwrap();
    assert_eq!(uuids(&r), vec![BOB.call_id, CAROL.call_id]);
    let r = user(
        json!({"Realm": "one.example.com", "Username": "alice", "Authorizing-IDs": ["dev-alice"]}),
    )
    .unwrap();
    assert_eq!(
        uuids(&r),
        vec![ALICE.call_id, ALICE.call_id],
        "listed twice, as ecallmgr does"
    );
    let r = user(json!({"Owner-IDs": ["user-carol"], "Authorizing-IDs": ["dev-alice"]})).unwrap();
    assert_eq!(uuids(&r), vec![ALICE.call_id, CAROL.call_id]);
    assert!(user(json!({"Owner-IDs": ["nobody"]})).is_none());
}

#[test]
fn user_query_park_slot() {
    let mut reg = registry();
    // Alice dials the park slot *3101 (4.3: destination from the user part of Request).
    let mut v = fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json");
    v["Call-ID"] = json!("parker@10.0.0.9");
    v["Request"] = json!("*3101@one.example.com");
    v["Custom-Channel-Vars"]["Realm"] = json!("one.example.com");
    reg.apply(
        CallEvent::decode(&serde_json::to_vec(&v).unwrap())
            .unwrap()
            .into_owned(),
        Instant::now(),
    );
    let park = json!({"Realm": "one.example.com", "Username": "*3101"});
    let r = ask(&reg, "query_user_channels_req", park.clone()).unwrap();
    assert_eq!(uuids(&r), vec!["parker@10.0.0.9"]);
    // Once bridged, the slot is taken by a real call: no longer listed.
    let mut b = v.clone();
    b["Event-Name"] = json!("CHANNEL_BRIDGE");
    b["Other-Leg-Call-ID"] = json!("peer@10.0.0.10");
    b["Msg-ID"] = json!("1702380809001122");
    reg.apply(
        CallEvent::decode(&serde_json::to_vec(&b).unwrap())
            .unwrap()
            .into_owned(),
        Instant::now(),
    );
    assert!(ask(&reg, "query_user_channels_req", park).is_none());
}

#[test]
fn channels_query_forms() {
    let reg = registry();
    let r = ask(
        &reg,
        "query_channels_req",
        json!({"Call-ID": ALICE.call_id, "Fields": "all", "Active-Only": true}),
    )
    .unwrap();
    let ch = &r["Channels"][ALICE.call_id];
    assert_eq!(ch["Account-ID"], "acct1");
    assert_eq!(ch["Call-ID"], ALICE.call_id);
    assert_eq!(ch["Elapsed-Seconds"], NOW - 63_869_600_000);
    assert_eq!(r["Channels"].as_object().unwrap().len(), 1);
    let r = ask(
        &reg,
        "query_channels_req",
        json!({"Fields": ["Account-ID", "Username"]}),
    )
    .unwrap();
    assert_eq!(r["Channels"].as_object().unwrap().len(), 3);
    assert_eq!(
        r["Channels"][CAROL.call_id],
        json!({"Account-ID": "acct2", "Username": "carol"})
    );
    let r = ask(&reg, "query_channels_req", json!({})).unwrap();
    assert_eq!(r["Channels"][BOB.call_id], json!({}));
    assert!(
        ask(
            &reg,
            "query_channels_req",
            json!({"Call-ID": "gone", "Active-Only": true})
        )
        .is_none()
    );
    let r = ask(&reg, "query_channels_req", json!({"Call-ID": "gone"})).unwrap();
    assert_eq!(r["Channels"], json!({}));
}

#[test]
fn channel_status_forms() {
    let reg = registry();
    let r = ask(
        &reg,
        "channel_status_req",
        json!({"Call-ID": ALICE.call_id}),
    )
    .unwrap();
    assert_eq!(r["Status"], "active");
    assert_eq!(r["Call-ID"], ALICE.call_id);
    assert_eq!(r["Switch-Hostname"], "fs1.example.com");
    assert_eq!(r["Custom-Channel-Vars"]["Username"], "alice");
    let r = ask(&reg, "channel_status_req", json!({"Call-ID": "gone"})).unwrap();
    assert_eq!(r["Status"], "terminated");
    assert_eq!(r["Error-Msg"], "no node found with channel");
    assert!(
        ask(
            &reg,
            "channel_status_req",
            json!({"Call-ID": "gone", "Active-Only": "true"})
        )
        .is_none()
    );
}

#[test]
fn auth_id_query_always_answers() {
    let reg = registry();
    let r = ask(&reg, "query_auth_id_req", json!({"Auth-ID": "dev-bob"})).unwrap();
    assert_eq!(uuids(&r), vec![BOB.call_id]);
    let r = ask(&reg, "query_auth_id_req", json!({"Auth-ID": "nobody"})).unwrap();
    assert_eq!(r["Channels"], json!([]));
}

#[test]
fn unanswerable_requests_are_errors() {
    let reg = registry();
    let s = settings(false);
    let run =
        |body: &[u8]| answer_body(&reg, &identity(), &s, body, NOW).map(|a| a.reply.is_some());
    assert!(matches!(run(b"nope"), Err(QueryError::Malformed(_))));
    let mut v: Value =
        serde_json::from_slice(&request("query_account_channels_req", json!({}))).unwrap();
    assert!(matches!(
        run(&serde_json::to_vec(&v).unwrap()),
        Err(QueryError::Missing("Account-ID"))
    ));
    v["Account-ID"] = json!("acct1");
    v.as_object_mut().unwrap().remove("Server-ID");
    assert!(matches!(
        run(&serde_json::to_vec(&v).unwrap()),
        Err(QueryError::Envelope(crate::kapi::EnvelopeError::NoServerId))
    ));
    let bad = request(
        "query_user_channels_req",
        json!({"Realm": "one.example.com", "Usernames": "alice"}),
    );
    assert!(matches!(
        run(&bad),
        Err(QueryError::WrongType {
            key: "Usernames",
            ..
        })
    ));
}

#[tokio::test]
async fn the_handler_says_what_to_count() {
    let state = State::new(crate::config::Settings::defaults());
    *state.registry.write().unwrap() = registry();
    let msg = |body| Incoming {
        routing_key: "call.status_req.acct1".into(),
        body,
        redelivered: false,
    };
    let out = handle(
        &state,
        &msg(request(
            "query_account_channels_req",
            json!({"Account-ID": "acct1"}),
        )),
    );
    assert_eq!((out.publish.len(), out.tally), (1, Tally::QueryAnswered));
    let out = handle(&state, &msg(b"{}".to_vec()));
    assert_eq!((out.publish.len(), out.tally), (0, Tally::RequestRejected));
    let out = handle(
        &state,
        &msg(request("query_user_channels_req", json!({"Realm": "x"}))),
    );
    assert_eq!(
        (out.publish.len(), out.tally),
        (0, Tally::Nothing),
        "silence is not an error"
    );
}

#[test]
fn pid_server_id_gets_deliver_to_pid() {
    let reg = registry();
    let mut v: Value =
        serde_json::from_slice(&request("query_auth_id_req", json!({"Auth-ID": "dev-bob"})))
            .unwrap();
    v["Server-ID"] = json!("pid://<0.5511.0>/ecallmgr@kz1-<0.900.0>-7e6d5c4b");
    let a = answer_body(
        &reg,
        &identity(),
        &settings(false),
        &serde_json::to_vec(&v).unwrap(),
        NOW,
    )
    .unwrap();
    let out = a.reply.unwrap();
    assert_eq!(out.routing_key, "ecallmgr@kz1-<0.900.0>-7e6d5c4b");
    assert_eq!(
        out.headers,
        vec![("Deliver-To-PID".to_owned(), "<0.5511.0>".to_owned())]
    );
}

#[tokio::test]
async fn large_replies_go_gzip_and_too_large_ones_not_at_all() {
    let msg = |body| Incoming {
        routing_key: "call.status_req.acct1".into(),
        body,
        redelivered: false,
    };
    let ask = || {
        msg(request(
            "query_account_channels_req",
            json!({"Account-ID": "acct1"}),
        ))
    };
    let with = |max: usize, above: usize| {
        let mut s = crate::config::Settings::defaults();
        (s.amqp.max_message_bytes, s.amqp.compress_above_bytes) = (max, above);
        let state = State::new(s);
        *state.registry.write().unwrap() = registry();
        state
    };
    let plain = handle(&with(1 << 20, 1 << 19), &ask());
    assert_eq!(plain.publish[0].content_encoding, None);

    let out = handle(&with(1 << 20, 100), &ask());
    assert_eq!(out.tally, Tally::QueryAnswered);
    let reply = &out.publish[0];
    assert_eq!(reply.content_encoding, Some("gzip"));
    let body =
        crate::kapi::compress::decode(reply.body.clone(), reply.content_encoding, 1 << 20).unwrap();
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    let mut p: Value = serde_json::from_slice(&plain.publish[0].body).unwrap();
    (v["Node"], p["Node"]) = (json!("n"), json!("n"));
    assert!(v == p, "the same reply, compressed");
    schemas()
        .validate("kapi.call.query_account_channels_resp", &v, "")
        .unwrap();

    let refused = handle(&with(300, 100), &ask());
    assert_eq!(
        (refused.publish.len(), refused.tally),
        (0, Tally::ReplyTooLarge)
    );
}

#[tokio::test]
async fn a_peers_seed_request_is_left_to_ecallmgr() {
    let state = State::new(crate::config::Settings::defaults());
    *state.registry.write().unwrap() = registry();
    let mut v: Value = serde_json::from_slice(&request(
        "query_channels_req",
        json!({"Fields": "all", "Active-Only": false}),
    ))
    .unwrap();
    let asked = |v: &Value| {
        handle(
            &state,
            &Incoming {
                routing_key: "call.status_req.channels".into(),
                body: serde_json::to_vec(v).unwrap(),
                redelivered: false,
            },
        )
    };
    assert_eq!(asked(&v).publish.len(), 1, "jonny5's is answered");
    v["App-Name"] = json!("kazoo-channels");
    assert_eq!(asked(&v).publish.len(), 0, "a peer's is not");
    v["Call-ID"] = json!(ALICE.call_id);
    assert_eq!(asked(&v).publish.len(), 1, "a peer asking for one call is");
}
