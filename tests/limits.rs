//! Hostile input without a broker (issue 10): the fuzz findings and the
//! defects of the pure parts, each a regression test, and the cost of big
//! input shown to be linear. Timings are printed (`--nocapture`) and bounded
//! far above linear cost and far below what the old superlinear paths took,
//! so a loaded machine does not fail them but a regression does.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use kazoo_channels::cluster::snapshot;
use kazoo_channels::commands;
use kazoo_channels::config::Settings;
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::kapi::{
    CallEvent, Identity, Incoming, Outgoing, Publish, PublishError, PublishOutcome, Request,
};
use kazoo_channels::queries;
use kazoo_channels::registry::Registry;
use serde_json::{Map, Value, json};

const NOW: u64 = 63_869_600_100;
const ACCOUNT: &str = "acct-limits-1";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A 4.3 call event of the fixtures for `call_id`, event time `msg_id` (µs).
fn event(name: &str, call_id: &str, msg_id: u64) -> Value {
    let mut v = fixture(&format!("kazoo43.callevt.CHANNEL_{name}.a-leg.json"));
    v["Call-ID"] = json!(call_id);
    v["Msg-ID"] = json!(msg_id.to_string());
    v["Custom-Channel-Vars"]["Account-ID"] = json!(ACCOUNT);
    v
}

fn apply(reg: &mut Registry, v: &Value) {
    let body = serde_json::to_vec(v).unwrap();
    reg.apply(CallEvent::decode(&body).unwrap(), Instant::now());
}

fn identity() -> Identity {
    Identity::new("kazoo-channels-limits@host")
}

fn request(name: &str, keys: Value) -> Vec<u8> {
    let mut v = json!({
        "App-Name": "crossbar", "App-Version": "4.0.0", "Node": "crossbar@kz1",
        "Event-Category": "call_event", "Event-Name": name,
        "Msg-ID": "limits-1", "Server-ID": "crossbar@kz1-<0.1.0>-q1",
    });
    v.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    serde_json::to_vec(&v).unwrap()
}

/// The reply to a query, parsed by serde_json's strict reader and checked
/// against its schema; `None` for no reply.
fn ask(reg: &Registry, name: &str, keys: Value) -> Option<Value> {
    ask_timed(None, reg, name, keys).0
}

/// [`ask`], timing the answer alone (request bytes in, reply bytes out) as `what`.
fn ask_timed(
    what: Option<&str>,
    reg: &Registry,
    name: &str,
    keys: Value,
) -> (Option<Value>, Duration) {
    let mut settings = Settings::defaults().queries;
    settings.system_wide_listing = true;
    let body = request(name, keys);
    let began = Instant::now();
    let answer = queries::answer_body(reg, &identity(), &settings, &body, NOW);
    let took = began.elapsed();
    if let Some(what) = what {
        println!("{what}: {:.1} ms", took.as_secs_f64() * 1e3);
    }
    let reply = answer.ok().and_then(|a| a.reply);
    (reply.map(|r| checked(&r.body)), took)
}

/// A reply body, parsed by the strict reader and valid against its schema.
fn checked(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("our reply is not strict JSON: {e}"));
    let schema = format!("kapi.call.{}", v["Event-Name"].as_str().unwrap());
    schemas()
        .validate(&schema, &v, "")
        .unwrap_or_else(|e| panic!("{schema}: {e:?}"));
    v
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let began = Instant::now();
    let out = f();
    let took = began.elapsed();
    println!("{what}: {:.1} ms", took.as_secs_f64() * 1e3);
    (out, took)
}

/// Defect 2: a BRIDGE held for its CREATE, stamped a little earlier than the
/// CREATE (two ecallmgr nodes' clocks), still bridges the channel.
#[test]
fn held_bridge_stamped_before_its_create_keeps_the_other_leg() {
    let mut reg = Registry::default();
    let call = "held-bridge@10.0.0.1";
    apply(&mut reg, &event("BRIDGE", call, 1_702_380_800_100_000));
    assert!(reg.get(call).is_none(), "held, not created");
    apply(&mut reg, &event("CREATE", call, 1_702_380_800_200_000));
    let ch = reg.get(call).expect("created");
    assert_eq!(
        ch.other_leg.as_deref(),
        Some("5e0c1c3a-2b7d-4a4f-9a51-0f2e7b7e6c11")
    );
    // A later UNBRIDGE still wins over the held BRIDGE.
    let mut unbridge = event("BRIDGE", call, 1_702_380_800_300_000);
    unbridge["Event-Name"] = json!("CHANNEL_UNBRIDGE");
    apply(&mut reg, &unbridge);
    assert_eq!(reg.get(call).unwrap().other_leg, None);
}

/// Defect 3: Kazoo's call ids are strings; anything else is refused like a
/// missing one, in events and in requests.
#[test]
fn a_call_id_that_is_not_a_non_empty_string_is_refused() {
    for id in [
        json!(12345),
        json!(true),
        json!(["x"]),
        json!({"a": 1}),
        json!(""),
        json!(null),
    ] {
        let mut v = event("CREATE", "x", 1);
        v["Call-ID"] = id.clone();
        let body = serde_json::to_vec(&v).unwrap();
        assert!(CallEvent::decode(&body).is_err(), "event Call-ID {id}");
        let reg = Registry::default();
        // Without a Call-ID, query_channels_req asks for every channel.
        let apis: &[&str] = match id {
            Value::String(_) | Value::Null => &["channel_status_req"],
            _ => &["channel_status_req", "query_channels_req"],
        };
        for api in apis {
            assert_eq!(
                ask(&reg, api, json!({"Call-ID": id.clone()})),
                None,
                "{api} Call-ID {id}"
            );
        }
    }
}

/// Finding 3: one id repeated lists each matching channel once, as
/// ecallmgr's one match per list does.
#[test]
fn repeated_authorizing_and_owner_ids_match_each_channel_once() {
    let mut reg = Registry::default();
    apply(&mut reg, &event("CREATE", "dup-ids@10.0.0.1", 1));
    let device = "63fbb9ac78e11f3ccb387928a423798a";
    let owner = "72855158432d790dfb22d03ff64c033e";
    let (reply, took) = ask_timed(
        Some("10,000 repeated Authorizing-IDs and Owner-IDs"),
        &reg,
        "query_user_channels_req",
        json!({"Authorizing-IDs": vec![device; 10_000], "Owner-IDs": vec![owner; 10_000]}),
    );
    let channels = reply.unwrap()["Channels"].as_array().unwrap().len();
    // Once per list: the device's match, then the owner's (ecallmgr
    // concatenates the lists' matches).
    assert_eq!(channels, 2);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// Finding 4: `Fields` is resolved once, not looked through per key per
/// channel.
#[test]
fn many_fields_cost_in_proportion() {
    let mut reg = Registry::default();
    for i in 0..2_000 {
        apply(
            &mut reg,
            &event("CREATE", &format!("fields-{i}@10.0.0.1"), 1),
        );
    }
    let mut fields: Vec<String> = (0..100_000).map(|i| format!("Not-A-Key-{i}")).collect();
    fields.push("Account-ID".into());
    let (reply, took) = ask_timed(
        Some("100,000 Fields over 2,000 channels"),
        &reg,
        "query_channels_req",
        json!({"Fields": fields}),
    );
    let reply = reply.unwrap();
    let channels = reply["Channels"].as_object().unwrap();
    assert_eq!(channels.len(), 2_000);
    for ch in channels.values() {
        assert_eq!(ch, &json!({"Account-ID": ACCOUNT}));
    }
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Finding 2: a later event of a call carrying custom variables the channel
/// lacks costs in proportion to the variables, not old × new.
#[test]
fn new_custom_variables_cost_in_proportion() {
    let n = 25_000;
    let vars = |prefix: &str| -> Map<String, Value> {
        (0..n)
            .map(|i| (format!("{prefix}-{i:06}"), json!(format!("v{i}"))))
            .collect()
    };
    let call = "many-ccvs@10.0.0.1";
    let mut create = event("CREATE", call, 1);
    create["Custom-Channel-Vars"] = Value::Object(vars("A"));
    let mut answer = event("ANSWER", call, 2);
    answer["Custom-Channel-Vars"] = Value::Object(vars("B"));
    let (create, answer) = (
        serde_json::to_vec(&create).unwrap(),
        serde_json::to_vec(&answer).unwrap(),
    );
    let mut reg = Registry::default();
    let (_, first) = timed("CREATE with 25,000 custom variables", || {
        reg.apply(CallEvent::decode(&create).unwrap(), Instant::now())
    });
    let (_, second) = timed("ANSWER with 25,000 other custom variables", || {
        reg.apply(CallEvent::decode(&answer).unwrap(), Instant::now())
    });
    let ccv = reg.get(call).unwrap().custom_channel_vars.as_ref().unwrap();
    assert_eq!(ccv.len(), n);
    assert!(first < Duration::from_secs(3), "{first:?}");
    assert!(second < Duration::from_secs(3), "{second:?}");
}

/// 100,000-deep nesting costs in proportion: a request's is refused by the
/// parser's depth limit, an event's custom variable (read as raw text, with
/// no such limit) is not kept, and every reply stays strict JSON.
#[test]
fn deep_nesting_costs_in_proportion() {
    let deep = |key: &str| -> Vec<u8> {
        let d = 100_000;
        format!(
            r#"{{"Event-Category":"call_event","Event-Name":"CHANNEL_CREATE","Call-ID":"deep@1","Msg-ID":"m","Server-ID":"q","{key}":{{"Account-ID":"{ACCOUNT}","Deep":{}1{}}}}}"#,
            "[".repeat(d),
            "]".repeat(d)
        )
        .into_bytes()
    };
    let body = deep("Custom-Channel-Vars");
    let mut reg = Registry::default();
    let (_, took) = timed("event nested 100,000 deep", || {
        if let Ok(ev) = CallEvent::decode(&body) {
            reg.apply(ev, Instant::now());
        }
    });
    assert!(took < Duration::from_secs(1), "{took:?}");
    if let Some(ch) = reg.get("deep@1") {
        let ccv = ch.custom_channel_vars.as_ref().unwrap().to_json();
        assert!(!ccv.contains("Deep"), "the deep value is not kept");
    }
    ask(&reg, "query_channels_req", json!({"Fields": "all"})).unwrap();
    let reg = Registry::default();
    let mut settings = Settings::defaults().queries;
    settings.system_wide_listing = true;
    let body = deep("Fields");
    let (answered, took) = timed("query nested 100,000 deep", || {
        queries::answer_body(&reg, &identity(), &settings, &body, NOW).is_ok()
    });
    assert!(!answered);
    assert!(took < Duration::from_secs(1), "{took:?}");
    let registry = RwLock::new(Registry::default());
    let held = Held::default();
    let body = deep("Data");
    let (reply, took) = timed("command nested 100,000 deep", || {
        block_on(commands::respond(&registry, &identity(), &held, &body))
    });
    assert!(reply.is_none(), "not JSON: no reply address can be read");
    assert!(held.0.lock().unwrap().is_empty());
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// Finding 5: custom variables a strict reader refuses are normalised once,
/// at intake: every reply and every snapshot part parses, and the snapshot
/// carries every channel it counts.
#[test]
fn custom_variables_are_strict_json_once_taken_in() {
    let deep = format!("{}1{}", "[".repeat(124), "]".repeat(124));
    let text = format!(
        r#"{{"Account-ID":"{ACCOUNT}","Lone-High":"\ud800","Lone-Low":"x\udc00y","Pair":"\ud83d\ude00","Huge":1e400,"Deep":{deep},"Inner":{{"a":["\udfff",-1e999]}}}}"#
    );
    let mut reg = Registry::default();
    for i in 0..3 {
        let call = format!("strict-{i}@10.0.0.1");
        let mut v = event("CREATE", &call, 1);
        v["Custom-Channel-Vars"] = json!("CCV");
        let body = serde_json::to_string(&v)
            .unwrap()
            .replace(r#""CCV""#, &text);
        let ev = CallEvent::decode(body.as_bytes()).expect("grammar is fine");
        reg.apply(ev, Instant::now());
    }
    assert_eq!(reg.len(), 3);
    let reply = ask(
        &reg,
        "query_account_channels_req",
        json!({"Account-ID": ACCOUNT}),
    )
    .unwrap();
    let ccv = &reply["Channels"][0]["custom_channel_vars"];
    assert_eq!(ccv["Lone-High"], "\u{fffd}");
    assert_eq!(ccv["Lone-Low"], "x\u{fffd}y");
    assert_eq!(ccv["Pair"], "\u{1f600}");
    assert_eq!(ccv["Huge"], "1e400");
    assert_eq!(ccv["Deep"], Value::String(deep.clone()));
    assert_eq!(ccv["Inner"], json!(r#"{"a":["\ufffd",-1e999]}"#));
    let fields_all = ask(&reg, "query_channels_req", json!({"Fields": "all"})).unwrap();
    assert_eq!(fields_all["Channels"].as_object().unwrap().len(), 3);

    // The snapshot a starting peer reads: every part strict, every channel in it.
    let msg = Incoming::new(
        "channels.snapshot",
        serde_json::to_vec(&json!({
            "Event-Category": "channels", "Event-Name": "snapshot_req",
            "Msg-ID": "snap-1", "Server-ID": "peer@host-<0.1.0>-q", "Node": "peer@host",
        }))
        .unwrap(),
    );
    let req = Request::parse(&msg).unwrap();
    let bodies: Vec<Vec<u8>> = snapshot::replies(&reg, &identity(), &req)
        .into_iter()
        .map(|m| m.body)
        .collect();
    let parts: Vec<Value> = bodies
        .iter()
        .map(|b| serde_json::from_slice(b).expect("a snapshot part is strict JSON"))
        .collect();
    let counted = parts[0]["Channel-Count"].as_u64().unwrap();
    let carried: usize = parts
        .iter()
        .map(|p| p["Channels"].as_array().unwrap().len())
        .sum();
    assert_eq!(counted as usize, carried);
    let peer = std::sync::RwLock::new(Registry::default());
    let mut receiving = snapshot::Receiving::default();
    for b in &bodies {
        receiving.apply(&peer, b, Instant::now()).unwrap();
    }
    assert!(receiving.done);
    assert_eq!(receiving.added, 3);
}

/// Finding 2 (values): a custom variable past 64 KiB is not kept.
#[test]
fn an_oversized_custom_variable_is_not_kept() {
    let mut reg = Registry::default();
    let call = "big-ccv@10.0.0.1";
    let mut v = event("CREATE", call, 1);
    v["Custom-Channel-Vars"]["Big"] = json!("x".repeat(1 << 20));
    apply(&mut reg, &v);
    let ch = reg.get(call).unwrap();
    let ccv = ch.custom_channel_vars.as_ref().unwrap().to_json();
    assert!(ccv.len() < 4096, "{} bytes kept", ccv.len());
    assert_eq!(
        ch.account_id.as_deref(),
        Some(ACCOUNT),
        "the others are kept"
    );
}

/// Finding 1: a reply address that cannot be a routing key (over 255 bytes)
/// is refused before any reply is built; 255 bytes is fine.
#[test]
fn a_reply_address_that_cannot_be_a_routing_key_is_refused() {
    let reg = Registry::default();
    let mut settings = Settings::defaults().queries;
    settings.system_wide_listing = true;
    for (server_id, answered) in [
        ("q".repeat(255), true),
        ("q".repeat(256), false),
        (format!("pid://<0.1.0>/{}", "q".repeat(255)), true),
        (format!("pid://<0.1.0>/{}", "q".repeat(256)), false),
    ] {
        let mut body: Value = serde_json::from_slice(&request(
            "channel_status_req",
            json!({"Call-ID": "nobody@1"}),
        ))
        .unwrap();
        body["Server-ID"] = json!(server_id);
        let answer = queries::answer_body(
            &reg,
            &identity(),
            &settings,
            &serde_json::to_vec(&body).unwrap(),
            NOW,
        );
        let reply = answer.ok().and_then(|a| a.reply);
        assert_eq!(reply.is_some(), answered, "{} bytes", server_id.len());
        if let Some(r) = reply {
            assert!(r.routing_key.len() <= 255);
        }
    }
}

/// A publisher that confirms everything without sending it.
#[derive(Default)]
struct Held(Mutex<Vec<Outgoing>>);

impl Publish for Held {
    async fn publish(&self, msg: Outgoing) -> Result<PublishOutcome, PublishError> {
        self.0.lock().unwrap().push(msg);
        Ok(PublishOutcome::Confirmed)
    }
}

/// Finding 1 (Konami): a live call whose escaped id makes the metaflow
/// routing key too long is answered with an error, and nothing is published.
#[test]
fn a_command_whose_routing_key_cannot_be_built_is_refused() {
    // '%' escapes to three bytes (WIRE.md §2.6): 90 of them are 270.
    let call = format!("{}@10.0.0.1", "%".repeat(90));
    let mut reg = Registry::default();
    apply(&mut reg, &event("CREATE", &call, 1));
    let registry = RwLock::new(reg);
    let held = Held::default();
    let body = serde_json::to_vec(&json!({
        "App-Name": "crossbar", "App-Version": "4.0.0", "Node": "crossbar@kz1",
        "Event-Category": "channels", "Event-Name": "command_req",
        "Msg-ID": "cmd-1", "Server-ID": "crossbar@kz1-<0.1.0>-q1",
        "Account-ID": ACCOUNT, "Call-ID": call, "Action": "hangup",
    }))
    .unwrap();
    let reply =
        block_on(commands::respond(&registry, &identity(), &held, &body)).expect("answered");
    assert!(held.0.lock().unwrap().is_empty(), "nothing published");
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["Status"], "error", "{v}");
    schemas().validate("channels.command_resp", &v, "").unwrap();
}
