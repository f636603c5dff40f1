//! The Kazoo 5.x side of the handler without a broker: the `channel` dialect,
//! the three 5.x APIs' selection and shapes, and what they refuse
//! (`ecallmgr_fs_channels.erl`, WIRE-5.md §2).

use std::time::Instant;

use serde_json::{Value, json};

use super::*;
use crate::config::QuerySettings;
use crate::kapi::CallEvent;
use crate::kapi::schema::schemas;

const NOW: u64 = 63_869_600_100;
const ACCT: &str = "acct1";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A 5.x CREATE (or `name`) of `call` in `account`, by `device` of `owner`.
fn event(
    name: &str,
    call: &str,
    account: &str,
    device: &str,
    owner: &str,
    dir: &str,
    user: &str,
) -> CallEvent<'static> {
    let mut v = match name {
        "CHANNEL_CREATE" => fixture("kazoo5.callevt.CHANNEL_CREATE.a-leg.json"),
        n => fixture(&format!("kazoo5.callevt.{n}.a-leg.json")),
    };
    v["Call-ID"] = json!(call);
    v["Call-Direction"] = json!(dir);
    let ccv = &mut v["Custom-Channel-Vars"];
    ccv["Account-ID"] = json!(account);
    ccv["Authorizing-ID"] = json!(device);
    ccv["Owner-ID"] = json!(owner);
    ccv["Username"] = json!(user);
    ccv["Realm"] = json!("one.example.com");
    CallEvent::decode(&serde_json::to_vec(&v).unwrap())
        .unwrap()
        .into_owned()
}

/// c1: dev1/own1 inbound; c2: dev2/own1 outbound; c3: dev3/dev1-as-owner
/// inbound (an endpoint id that is one channel's device and another's owner);
/// x1: another account's call of own1.
fn registry() -> Registry {
    let mut reg = Registry::default();
    for (call, account, device, owner, dir, user) in [
        ("c1", ACCT, "dev1", "own1", "inbound", "Alice"),
        ("c2", ACCT, "dev2", "own1", "outbound", "bob"),
        ("c3", ACCT, "dev3", "dev1", "inbound", "carol"),
        ("x1", "acct2", "dev9", "own1", "inbound", "Alice"),
    ] {
        reg.apply(
            event("CHANNEL_CREATE", call, account, device, owner, dir, user),
            Instant::now(),
        );
    }
    reg
}

fn request(category: &str, name: &str, keys: Value) -> Vec<u8> {
    let mut v = json!({
        "App-Name": "callflow", "App-Version": "5.1.0", "Node": "callflow@kz1",
        "Event-Category": category, "Event-Name": name,
        "Msg-ID": "msg-1", "Server-ID": "callflow@kz1-<0.1.0>-q1",
    });
    v.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    serde_json::to_vec(&v).unwrap()
}

fn settings() -> QuerySettings {
    QuerySettings {
        system_wide_listing: false,
        ..crate::config::Settings::defaults().queries
    }
}

/// The reply in `category`, checked against its schema; `None` for silence.
fn ask_in(reg: &Registry, category: &str, name: &str, keys: Value) -> Option<Value> {
    let identity = Identity::new("kazoo-channels-test@host");
    let a = answer_body(
        reg,
        &identity,
        &settings(),
        &request(category, name, keys),
        NOW,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&a.reply?.body).unwrap();
    assert_eq!(
        v["Event-Category"], category,
        "a reply carries its request's category"
    );
    let reply_name = v["Event-Name"].as_str().unwrap().to_owned();
    schemas()
        .validate(&format!("kapi.call.{reply_name}"), &v, "")
        .unwrap_or_else(|e| panic!("{reply_name}: {e:?}\n{v:#}"));
    Some(v)
}

fn ask(reg: &Registry, name: &str, keys: Value) -> Option<Value> {
    ask_in(reg, "channel", name, keys)
}

fn refused(reg: &Registry, name: &str, keys: Value) -> QueryError {
    let identity = Identity::new("kazoo-channels-test@host");
    answer_body(
        reg,
        &identity,
        &settings(),
        &request("channel", name, keys),
        NOW,
    )
    .unwrap_err()
}

fn sorted(v: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn endpoint_channels_are_the_accounts_by_device_or_owner() {
    let reg = registry();
    for (endpoint, want, why) in [
        ("own1", &["c1", "c2"][..], "not x1: another account"),
        ("dev1", &["c1", "c3"][..], "device of c1, owner of c3"),
        ("none", &[][..], "always answered"),
    ] {
        let keys = json!({"Account-ID": ACCT, "Endpoint-ID": endpoint});
        let r = ask(&reg, "query_endpoint_channels_req", keys).unwrap();
        assert_eq!(sorted(&r["Channels"]), want, "{endpoint}: {why}");
    }
    let r = ask(&reg, "query_endpoint_channels_req",
        json!({"Account-ID": ACCT, "Endpoint-ID": "own1", "Direction": "outbound", "Count-Only": "true"})).unwrap();
    assert_eq!(r["Count"], 1);
    assert!(r.get("Channels").is_none());
    for keys in [
        json!({"Account-ID": ACCT}),
        json!({"Endpoint-ID": "own1"}),
        json!({"Account-ID": ACCT, "Endpoint-ID": 7}),
    ] {
        assert!(matches!(
            refused(&reg, "query_endpoint_channels_req", keys),
            QueryError::Missing(_) | QueryError::WrongType { .. }
        ));
    }
}

#[test]
fn count_has_one_integer_per_key_given() {
    let reg = registry();
    for (keys, want) in [
        (
            json!({"Account-ID": ACCT, "Device-ID": "dev1", "Endpoint-ID": "dev1",
                "Owner-ID": "own1", "User-ID": "own1"}),
            json!({"account": 3, "device": 1, "endpoint": 2, "owner": 2, "user": 2}),
        ),
        (
            json!({"Account-ID": ACCT, "Owner-ID": "own1", "Direction": "inbound"}),
            json!({"account": 2, "owner": 1}),
        ),
        (json!({"Account-ID": "nobody"}), json!({"account": 0})),
    ] {
        let r = ask(&reg, "count_req", keys.clone()).unwrap();
        assert_eq!(r["Count"], want, "{keys}");
    }
    // ecallmgr's count/1 crashes without an account: silence.
    assert!(matches!(
        refused(&reg, "count_req", json!({"Owner-ID": "own1"})),
        QueryError::Missing("Account-ID")
    ));
    assert!(matches!(
        refused(&reg, "count_req", json!({"Account-ID": ["a"]})),
        QueryError::WrongType {
            key: "Account-ID",
            ..
        }
    ));
}

#[test]
fn channels_are_keyed_by_selector_then_call_id_with_record_fields() {
    let reg = registry();
    let r = ask(
        &reg,
        "channels_req",
        json!({"Device-ID": "dev1@acct1", "Owner-ID": "own1@acct2"}),
    )
    .unwrap();
    assert_eq!(
        r["Channels"],
        json!({
            "device": {"c1": {"switch_url": "sip:mod_sofia@10.26.0.81:5060", "is_onhold": false, "destination": "2600"}},
            "owner": {"x1": {"switch_url": "sip:mod_sofia@10.26.0.81:5060", "is_onhold": false, "destination": "2600"}},
        }),
        "each id names its own account; default fields; other_leg unknown, left out"
    );
    let r = ask(&reg, "channels_req", json!({"Account-ID": ACCT, "Direction": "outbound",
        "Fields": ["uuid", "request", "is_authorized", "cshs", "cahs", "node", "former_node", "precedence", "nope"]})).unwrap();
    assert_eq!(
        r["Channels"],
        json!({"account": {"c2": {
        "uuid": "c2", "request": "2600@account.realm.com", "is_authorized": false,
        "cshs": {"X-Kazoo-Trace": "on", "X-Site": "east"},
        "cahs": {"X-AUTH-IP": "10.26.0.50", "X-AUTH-PORT": "5060"},
        "node": "freeswitch@fs1.example.com", "precedence": 5}}})
    );
    let r = ask(&reg, "channels_req", json!({"Fields": []})).unwrap();
    assert_eq!(
        r["Channels"],
        json!({}),
        "no key given: nothing selected, still answered"
    );
    for keys in [
        json!({"Device-ID": "dev1"}),
        json!({"User-ID": "own1@acct1", "Fields": "uuid"}),
        json!({"User-ID": "own1@acct1", "Fields": ["uuid", 1]}),
    ] {
        assert!(
            matches!(
                refused(&reg, "channels_req", keys.clone()),
                QueryError::WrongType { .. }
            ),
            "{keys}"
        );
    }
}

#[test]
fn the_three_apis_answer_in_either_category_alike() {
    let reg = registry();
    for (name, keys) in [
        ("count_req", json!({"Account-ID": ACCT, "Owner-ID": "own1"})),
        ("channels_req", json!({"Account-ID": ACCT})),
        (
            "query_endpoint_channels_req",
            json!({"Account-ID": ACCT, "Endpoint-ID": "own1"}),
        ),
    ] {
        let mut five = ask_in(&reg, "channel", name, keys.clone()).unwrap();
        let mut four = ask_in(&reg, "call_event", name, keys).unwrap();
        for v in [&mut five, &mut four] {
            v.as_object_mut().unwrap().remove("Event-Category");
        }
        assert_eq!(five, four, "{name}");
    }
}

#[test]
fn five_does_not_lower_case_usernames_or_park_slots() {
    let reg = registry();
    let keys = json!({"Realm": "ONE.example.com", "Username": "Alice"});
    let r = ask(&reg, "query_user_channels_req", keys.clone()).unwrap();
    let mut ids: Vec<&str> = r["Channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uuid"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["c1", "x1"],
        "the realm is lower-cased, the username matched as asked"
    );
    // 4.3/5.0 lower-case the username too: `alice` matches nothing stored as `Alice`.
    assert!(ask_in(&reg, "call_event", "query_user_channels_req", keys).is_none());
}

#[test]
fn five_status_shapes() {
    let mut reg = registry();
    let r = ask(&reg, "channel_status_req", json!({"Call-ID": "c1"})).unwrap();
    assert_eq!(r["Status"], "active");
    assert_eq!(r["Answered"], false);
    assert_eq!(
        r["Custom-SIP-Headers"],
        json!({"X-Kazoo-Trace": "on", "X-Site": "east"})
    );
    assert_eq!(r["Custom-AUTH-Headers"]["X-AUTH-PORT"], "5060");
    let four = ask_in(
        &reg,
        "call_event",
        "channel_status_req",
        json!({"Call-ID": "c1"}),
    )
    .unwrap();
    for k in ["Answered", "Custom-SIP-Headers", "Custom-AUTH-Headers"] {
        assert!(four.get(k).is_none(), "{k} in a call_event status reply");
    }
    // A 4.3 channel in 5.x's shape: empty headers objects, as ecallmgr 5.x sends them.
    let mut v = fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json");
    v["Call-ID"] = json!("old1");
    reg.apply(
        CallEvent::decode(&serde_json::to_vec(&v).unwrap()).unwrap(),
        Instant::now(),
    );
    let r = ask(&reg, "channel_status_req", json!({"Call-ID": "old1"})).unwrap();
    assert_eq!(
        (&r["Custom-SIP-Headers"], &r["Custom-AUTH-Headers"]),
        (&json!({}), &json!({}))
    );
    // Channel-Record: the whole capitalised channel instead of the status keys.
    let r = ask(
        &reg,
        "channel_status_req",
        json!({"Call-ID": "c1", "Channel-Record": "true"}),
    )
    .unwrap();
    assert_eq!(r["Channel-Record"]["Call-ID"], "c1");
    assert_eq!(r["Channel-Record"]["Request"], "2600@account.realm.com");
    assert!(r.get("Switch-URL").is_none());
    // 4.3/5.0 ignore Channel-Record.
    let r = ask_in(
        &reg,
        "call_event",
        "channel_status_req",
        json!({"Call-ID": "c1", "Channel-Record": true}),
    )
    .unwrap();
    assert!(r.get("Channel-Record").is_none() && r.get("Switch-URL").is_some());
}

#[test]
fn recordings_show_in_the_5x_forms_only() {
    let mut reg = registry();
    for name in ["RECORD_START", "RECORD_PAUSE", "RECORD_MASK"] {
        reg.apply(
            event(name, "c1", ACCT, "dev1", "own1", "inbound", "Alice"),
            Instant::now(),
        );
    }
    let five = ask(
        &reg,
        "query_channels_req",
        json!({"Call-ID": "c1", "Fields": "all"}),
    )
    .unwrap();
    assert_eq!(
        five["Channels"]["c1"]["Recording-Status"],
        json!({"call_recording_5f3e2d1c": "paused_and_masked"})
    );
    let five = ask(&reg, "query_auth_id_req", json!({"Auth-ID": "dev1"})).unwrap();
    assert_eq!(
        five["Channels"][0]["recording_status"],
        json!({"call_recording_5f3e2d1c": "paused_and_masked"})
    );
    let four = ask_in(
        &reg,
        "call_event",
        "query_auth_id_req",
        json!({"Auth-ID": "dev1"}),
    )
    .unwrap();
    assert!(four["Channels"][0].get("recording_status").is_none());
    for name in ["RECORD_RESUME", "RECORD_STOP"] {
        let ev = event(name, "c1", ACCT, "dev1", "own1", "inbound", "Alice");
        reg.apply(ev, Instant::now());
    }
    let r = ask(
        &reg,
        "channels_req",
        json!({"Device-ID": "dev1@acct1", "Fields": ["recording_status"]}),
    )
    .unwrap();
    assert_eq!(
        r["Channels"]["device"]["c1"]["recording_status"],
        json!({"call_recording_5f3e2d1c": "stopped"})
    );
    // A recording event names no channel's variables: the CCVs stay the CREATE's.
    assert_eq!(reg.get("c1").unwrap().owner_id.as_deref(), Some("own1"));
}
