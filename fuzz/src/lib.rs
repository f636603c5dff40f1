//! What the fuzz targets share: a registry populated from the fixtures' call
//! events, and the checks every message we would send must pass (it parses
//! as JSON with serde_json's defaults, a strict reader, and validates
//! against its schema).

use std::sync::LazyLock;
use std::time::Instant;

use kazoo_channels::kapi::CallEvent;
use kazoo_channels::kapi::schema::schemas;
use kazoo_channels::registry::Registry;
use serde_json::{Value, json};

/// The answer time of every query (Gregorian seconds), so runs repeat.
pub const NOW: u64 = 63_869_600_100;

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("fixture exists")).expect("fixture is JSON")
}

/// A call event of the fixtures, on another call and account.
pub fn event(name: &str, call_id: &str, account: &str, user: &str) -> Vec<u8> {
    let mut v = fixture(&format!("kazoo43.callevt.{name}.a-leg.json"));
    v["Call-ID"] = json!(call_id);
    let ccv = &mut v["Custom-Channel-Vars"];
    ccv["Account-ID"] = json!(account);
    ccv["Username"] = json!(user);
    ccv["Realm"] = json!("fuzz.example.com");
    ccv["Authorizing-ID"] = json!(format!("dev-{user}"));
    ccv["Owner-ID"] = json!(format!("owner-{user}"));
    serde_json::to_vec(&v).expect("serializes")
}

/// The calls of [`registry`]'s channels.
const BASE_CALLS: [&str; 3] = ["fa@10.0.0.1", "fb@10.0.0.2", "fc@10.0.0.3"];

/// The events [`registry`] applies, read from the fixtures once.
static EVENTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for (call, account, user) in BASE_CALLS
        .into_iter()
        .zip(["acct-fuzz-1", "acct-fuzz-1", "acct-fuzz-2"])
        .zip(["alice", "bob", "carol"])
        .map(|((c, a), u)| (c, a, u))
    {
        for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
            out.push(event(name, call, account, user));
        }
    }
    out
});

/// Three answered channels in two accounts.
pub fn registry() -> Registry {
    let mut reg = Registry::default();
    for body in EVENTS.iter() {
        reg.apply(
            CallEvent::decode(body).expect("fixture decodes"),
            Instant::now(),
        );
    }
    reg
}

/// The query settings of the targets: system-wide listing on, so `all` lists.
pub fn settings() -> kazoo_channels::config::QuerySettings {
    let mut s = kazoo_channels::config::Settings::defaults().queries;
    s.system_wide_listing = true;
    s
}

/// A message body we would publish: strict JSON, an object, valid against
/// `schema` when one is named. Panics (a fuzz finding) otherwise.
pub fn check_sent(body: &[u8], schema: Option<&str>) -> Value {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => panic!(
            "a message we send is not JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        ),
    };
    assert!(v.is_object(), "a message we send is an object");
    if let Some(id) = schema
        && let Err(errors) = schemas().validate(id, &v, "")
    {
        panic!("{id}: {errors:?}");
    }
    v
}

/// A channel query's reply: strict JSON, valid against the schema its
/// `Event-Name` names.
pub fn check_reply(body: &[u8]) -> Value {
    let v = check_sent(body, None);
    let id = format!(
        "kapi.call.{}",
        v["Event-Name"].as_str().expect("a reply names itself")
    );
    if let Err(errors) = schemas().validate(&id, &v, "") {
        panic!("{id}: {errors:?}");
    }
    v
}

/// Asks every query API about every channel, account, user and device the
/// registry holds, and checks each reply.
pub fn ask_all(reg: &Registry) {
    use kazoo_channels::kapi::Identity;
    use kazoo_channels::queries;

    let identity = Identity::new("kazoo-channels-fuzz@host");
    let settings = settings();
    let mut asks = vec![
        json!({"Event-Name": "query_account_channels_req", "Account-ID": "all"}),
        json!({"Event-Name": "query_channels_req", "Fields": "all"}),
        json!({"Event-Name": "query_channels_req", "Fields": ["Custom-Channel-Vars", "Call-ID"]}),
    ];
    // The lists above hold every channel; each way of finding one is asked
    // about the channels the input made (the base ones answer the same every
    // time), at most a few.
    for ch in reg.iter().filter(|c| !BASE_CALLS.contains(&&*c.uuid)).take(3) {
        asks.push(json!({"Event-Name": "channel_status_req", "Call-ID": &*ch.uuid}));
        if let Some(a) = &ch.account_id {
            asks.push(json!({"Event-Name": "query_account_channels_req", "Account-ID": &**a}));
        }
        if let Some(r) = &ch.realm {
            asks.push(
                json!({"Event-Name": "query_user_channels_req", "Realm": &**r,
                "Active-Only": false, "Authorizing-IDs": [ch.authorizing_id.as_deref()],
                "Owner-IDs": [ch.owner_id.as_deref()]}),
            );
        }
        if let Some(d) = &ch.authorizing_id {
            asks.push(json!({"Event-Name": "query_auth_id_req", "Auth-ID": &**d}));
        }
    }
    for mut ask in asks {
        // A null in an id list (a channel without one) is not a request Kazoo sends.
        for key in ["Authorizing-IDs", "Owner-IDs"] {
            if let Some(list) = ask.get_mut(key).and_then(Value::as_array_mut) {
                list.retain(Value::is_string);
            }
        }
        let o = ask.as_object_mut().expect("object");
        o.insert("Event-Category".into(), json!("call_event"));
        o.insert("Msg-ID".into(), json!("fuzz-1"));
        o.insert("Server-ID".into(), json!("fuzz@host-<0.1.0>-q"));
        let body = serde_json::to_vec(&ask).expect("serializes");
        let answer = queries::answer_body(reg, &identity, &settings, &body, NOW)
            .unwrap_or_else(|e| panic!("our own request is refused: {e}"));
        if let Some(reply) = answer.reply {
            check_reply(&reply.body);
        }
    }
}

/// The registry's snapshot parts are strict JSON, valid as
/// `channels.snapshot_resp`, and merge whole into an empty registry.
pub fn snapshot_roundtrip(reg: &Registry) {
    use kazoo_channels::cluster::snapshot;
    use kazoo_channels::kapi::{Identity, Incoming, Request};

    let identity = Identity::new("kazoo-channels-fuzz@host");
    let body = serde_json::to_vec(&json!({
        "Event-Category": "channels", "Event-Name": "snapshot_req",
        "Msg-ID": "fuzz-snap", "Server-ID": "fuzz@host-<0.1.0>-q",
        "Node": "peer@host",
    }))
    .expect("serializes");
    let msg = Incoming::new("channels.snapshot", body);
    let req = Request::parse(&msg).expect("our snapshot request parses");
    let parts: Vec<Value> = snapshot::replies(reg, &identity, &req)
        .iter()
        .map(|m| check_sent(&m.body, Some("channels.snapshot_resp")))
        .collect();
    let refs: Vec<&Value> = parts.iter().collect();
    let mut copy = Registry::default();
    let added = snapshot::apply(&mut copy, &refs, Instant::now())
        .unwrap_or_else(|e| panic!("our own snapshot does not merge: {e}"));
    assert_eq!(added, reg.len(), "every channel travels in the snapshot");
}
