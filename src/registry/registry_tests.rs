use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::kapi::event::CallEvent;
use crate::test_support::fixture;

const A: &str = "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91";
const B: &str = "5e0c1c3a-2b7d-4a4f-9a51-0f2e7b7e6c11";
const ACCOUNT: &str = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn ev(v: &Value) -> CallEvent<'static> {
    CallEvent::decode(&serde_json::to_vec(v).unwrap())
        .unwrap()
        .into_owned()
}

fn create43() -> Value {
    fixture("kazoo43.callevt.CHANNEL_CREATE.a-leg.json")
}
fn answer43() -> Value {
    fixture("kazoo43.callevt.CHANNEL_ANSWER.a-leg.json")
}
fn bridge43() -> Value {
    fixture("kazoo43.callevt.CHANNEL_BRIDGE.a-leg.json")
}
fn destroy43() -> Value {
    fixture("kazoo43.callevt.CHANNEL_DESTROY.a-leg.json")
}

/// The B-leg of the same call, built from the A-leg's CREATE.
fn b_leg(name: &str, msg_id: u64) -> Value {
    let mut v = create43();
    v["Event-Name"] = json!(name);
    v["Call-ID"] = json!(B);
    v["Call-Direction"] = json!("outbound");
    v["Other-Leg-Call-ID"] = json!(A);
    v["Msg-ID"] = json!(msg_id.to_string());
    v["Custom-Channel-Vars"]["Authorizing-ID"] = json!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    v["Custom-Channel-Vars"]["Owner-ID"] = json!("cccccccccccccccccccccccccccccccc");
    v["Custom-Channel-Vars"]["Username"] = json!("user_b2600");
    v
}

fn reg() -> Registry {
    Registry::new(RegistryConfig::default())
}

#[test]
fn create_inserts_every_field_ecallmgr_holds() {
    let mut r = reg();
    let now = Instant::now();
    assert_eq!(r.apply(ev(&create43()), now), Applied::Inserted);
    let ch = r.get(A).unwrap();
    assert_eq!(&*ch.uuid, A);
    assert_eq!(ch.account_id.as_deref(), Some(ACCOUNT));
    assert_eq!(
        ch.authorizing_id.as_deref(),
        Some("63fbb9ac78e11f3ccb387928a423798a")
    );
    assert_eq!(ch.authorizing_type.as_deref(), Some("device"));
    assert_eq!(
        ch.owner_id.as_deref(),
        Some("72855158432d790dfb22d03ff64c033e")
    );
    assert_eq!(ch.username.as_deref(), Some("user_zu0bf7"));
    assert_eq!(ch.realm.as_deref(), Some("account.realm.com"));
    assert_eq!(ch.presence_id(), Some("user_zu0bf7@account.realm.com"));
    assert_eq!(ch.destination(), Some("2600"));
    assert_eq!(ch.direction.as_deref(), Some("inbound"));
    assert_eq!(ch.node.as_deref(), Some("freeswitch@fs1.example.com"));
    assert_eq!(
        ch.switch_url.as_deref(),
        Some("sip:mod_sofia@10.26.0.81:5060")
    );
    assert_eq!(ch.interaction_id(), Some("63869600000-3f2a1b9c"));
    assert_eq!(ch.timestamp, 63_869_600_000);
    assert_eq!(ch.precedence, 5);
    assert_eq!(ch.bridge_id(), Some(A), "bridge_id defaults to own uuid");
    assert!(!ch.answered && ch.other_leg.is_none() && !ch.is_onhold);
    assert_eq!(ch.from_tag(), Some("8c2b3a91f0"));
    assert_eq!(ch.caller_id_name(), Some("Alice"));
    let ccv: Value =
        serde_json::from_str(&ch.custom_channel_vars.as_ref().unwrap().to_json()).unwrap();
    assert_eq!(ccv["Account-ID"], ACCOUNT);
}

#[test]
fn answer_and_bridge_update_and_duplicates_change_nothing() {
    let mut r = reg();
    let now = Instant::now();
    r.apply(ev(&create43()), now);
    assert_eq!(
        r.apply(ev(&create43()), now),
        Applied::Ignored("duplicate create")
    );
    assert_eq!(r.apply(ev(&answer43()), now), Applied::Updated);
    let snapshot = r.get(A).unwrap().clone();
    assert!(snapshot.answered);
    assert!(
        snapshot.channel_authorized,
        "ANSWER's CCVs bring Channel-Authorized"
    );
    assert_eq!(snapshot.to_tag(), Some("Q3vN8ZpFa1KpD"));
    // The same ANSWER from a second ecallmgr and a late duplicate CREATE.
    r.apply(ev(&answer43()), now);
    r.apply(ev(&create43()), now);
    assert_eq!(r.get(A).unwrap(), &snapshot);
    assert_eq!(r.len(), 1);
    r.apply(ev(&bridge43()), now);
    assert_eq!(r.get(A).unwrap().other_leg.as_deref(), Some(B));
}

#[test]
fn both_legs_of_a_bridged_call() {
    let mut r = reg();
    let now = Instant::now();
    r.apply(ev(&create43()), now);
    r.apply(ev(&b_leg("CHANNEL_CREATE", 1_702_380_800_200_000)), now);
    assert_eq!(r.get(B).unwrap().other_leg.as_deref(), Some(A));
    assert!(
        r.get(A).unwrap().other_leg.is_none(),
        "not bridged until BRIDGE"
    );
    r.apply(ev(&bridge43()), now);
    assert_eq!(r.get(A).unwrap().other_leg.as_deref(), Some(B));
    assert_eq!(r.get(B).unwrap().other_leg.as_deref(), Some(A));
    let mut unbridge = bridge43();
    unbridge["Event-Name"] = json!("CHANNEL_UNBRIDGE");
    unbridge["Msg-ID"] = json!("1702380850000000");
    r.apply(ev(&unbridge), now);
    assert!(r.get(A).unwrap().other_leg.is_none());
    assert!(r.get(B).unwrap().other_leg.is_none());
    // A BRIDGE older than the UNBRIDGE arriving late does not re-bridge.
    r.apply(ev(&bridge43()), now);
    assert!(r.get(A).unwrap().other_leg.is_none());
    assert_eq!(r.by_account(ACCOUNT).count(), 2);
    assert_eq!(r.by_owner("cccccccccccccccccccccccccccccccc").count(), 1);
    r.apply(ev(&destroy43()), now);
    r.apply(ev(&b_leg("CHANNEL_DESTROY", 1_702_380_872_000_002)), now);
    assert!(r.is_empty());
    assert_eq!(r.by_account(ACCOUNT).count(), 0);
}

#[test]
fn destroy_before_create_leaves_no_ghost() {
    let mut r = reg();
    let now = Instant::now();
    assert_eq!(
        r.apply(ev(&destroy43()), now),
        Applied::Ignored("destroy of unknown call")
    );
    assert_eq!(
        r.apply(ev(&create43()), now),
        Applied::Ignored("call already destroyed")
    );
    assert_eq!(
        r.apply(ev(&answer43()), now),
        Applied::Ignored("call already destroyed")
    );
    assert!(r.is_empty());
    assert_eq!(r.pending_len(), 0);
}

#[test]
fn early_answer_and_bridge_apply_when_create_follows() {
    let mut r = reg();
    let now = Instant::now();
    assert_eq!(r.apply(ev(&bridge43()), now), Applied::Held);
    assert_eq!(r.apply(ev(&answer43()), now), Applied::Held);
    assert!(r.is_empty(), "an early update creates no channel");
    assert_eq!(r.apply(ev(&create43()), now), Applied::Inserted);
    let ch = r.get(A).unwrap();
    assert!(ch.answered);
    assert_eq!(ch.other_leg.as_deref(), Some(B));
    assert_eq!(r.pending_len(), 0);
}

#[test]
fn early_updates_expire_after_the_window() {
    let mut r = Registry::new(RegistryConfig {
        reorder_window: Duration::from_millis(10),
        ..RegistryConfig::default()
    });
    let t0 = Instant::now();
    r.apply(ev(&answer43()), t0);
    assert_eq!(r.expire(t0 + Duration::from_millis(50)), 1);
    r.apply(ev(&create43()), t0 + Duration::from_millis(60));
    assert!(!r.get(A).unwrap().answered);
}

#[test]
fn tombstones_expire() {
    let mut r = Registry::new(RegistryConfig {
        tombstone_ttl: Duration::from_millis(10),
        ..RegistryConfig::default()
    });
    let t0 = Instant::now();
    r.apply(ev(&destroy43()), t0);
    r.expire(t0 + Duration::from_millis(20));
    // A call id reused after the TTL is a new call.
    assert_eq!(
        r.apply(ev(&create43()), t0 + Duration::from_millis(30)),
        Applied::Inserted
    );
}

#[test]
fn disconnected_removes_and_hold_toggles() {
    let mut r = reg();
    let now = Instant::now();
    r.apply(ev(&create43()), now);
    let mut hold = answer43();
    hold["Event-Name"] = json!("CHANNEL_HOLD");
    r.apply(ev(&hold), now);
    assert!(r.get(A).unwrap().is_onhold);
    let mut unhold = answer43();
    unhold["Event-Name"] = json!("CHANNEL_UNHOLD");
    unhold["Msg-ID"] = json!("1702380803456790");
    r.apply(ev(&unhold), now);
    assert!(!r.get(A).unwrap().is_onhold);
    let mut disc = answer43();
    disc["Event-Name"] = json!("CHANNEL_DISCONNECTED");
    assert_eq!(r.apply(ev(&disc), now), Applied::Removed);
    assert!(r.is_empty());
}

#[test]
fn kazoo50_create_is_understood() {
    let mut r = reg();
    r.apply(
        ev(&fixture("kazoo50.callevt.CHANNEL_CREATE.a-leg.json")),
        Instant::now(),
    );
    let ch = r.get(A).unwrap();
    assert_eq!(ch.destination(), Some("2600"));
    assert_eq!(ch.timestamp, 63_869_600_001);
    assert!(!ch.answered);
    assert_eq!(r.by_user("account.realm.com", "user_zu0bf7").count(), 1);
    assert_eq!(r.by_realm("account.realm.com").count(), 1);
    assert_eq!(
        r.by_authorizing_id("63fbb9ac78e11f3ccb387928a423798a")
            .count(),
        1
    );
}

#[test]
fn indexes_follow_changed_values() {
    let mut r = reg();
    let now = Instant::now();
    let mut create = create43();
    create["Custom-Channel-Vars"]
        .as_object_mut()
        .unwrap()
        .remove("Owner-ID");
    r.apply(ev(&create), now);
    assert_eq!(r.by_owner("72855158432d790dfb22d03ff64c033e").count(), 0);
    r.apply(ev(&answer43()), now);
    assert_eq!(r.by_owner("72855158432d790dfb22d03ff64c033e").count(), 1);
}

#[test]
fn merge_keeps_known_and_destroyed_calls() {
    let mut r = reg();
    let now = Instant::now();
    r.apply(ev(&create43()), now);
    let mut copy = r.get(A).unwrap().clone();
    copy.answered = true;
    assert!(!r.merge(copy.clone()));
    assert!(!r.get(A).unwrap().answered);
    r.apply(ev(&destroy43()), now);
    assert!(
        !r.merge(copy),
        "a destroyed call is not revived by a stale snapshot"
    );
    assert!(r.is_empty());
}

#[test]
fn an_oversized_own_value_is_dropped_and_the_others_kept() {
    let mut r = reg();
    let mut v = create43();
    v["Caller-ID-Name"] = json!("n".repeat(70_000));
    v["Caller-ID-Number"] = json!("+14158867900");
    let call = v["Call-ID"].as_str().unwrap().to_owned();
    assert_eq!(r.apply(ev(&v), Instant::now()), Applied::Inserted);
    let ch = r.get(&call).unwrap();
    assert_eq!(ch.caller_id_name(), None);
    assert_eq!(ch.caller_id_number(), Some("+14158867900"));
}

/// The compact record leaves out only what it can put back exactly: the
/// CCVs' plain values, the call's own bridge id, a derived request.
#[test]
fn a_compact_record_reads_back_as_the_channel() {
    let mut r = reg();
    let now = Instant::now();
    r.apply(ev(&create43()), now);
    r.apply(ev(&answer43()), now);
    let mut odd = b_leg("CHANNEL_CREATE", 1_702_380_800_000_001);
    // A username that differs from the variable, a variable with an escape
    // and a request that is not <destination>@<realm> stay in the record.
    odd["Custom-Channel-Vars"]["Owner-ID"] = json!("own\"er");
    odd["Request"] = json!("2600@elsewhere.example.com");
    r.apply(ev(&odd), now);
    for id in [A, B] {
        let ch = r.get(id).unwrap();
        let full = ChannelRecord::from(ch.clone());
        let mut compact = full.clone();
        compact.compact();
        assert_ne!(
            compact.from_ccv, 0,
            "{id}: something is carried by the CCVs"
        );
        let json = serde_json::to_vec(&compact).unwrap();
        assert!(
            json.len() < serde_json::to_vec(&full).unwrap().len() * 9 / 10,
            "{id}: smaller"
        );
        let back: Channel = serde_json::from_slice(&json).unwrap();
        assert_eq!(&back, ch, "{id}");
        assert_eq!(ChannelRecord::from(back), full, "{id}");
    }
    let mut b = ChannelRecord::from(r.get(B).unwrap().clone());
    b.compact();
    assert!(b.owner_id.is_some(), "an escaped variable is not relied on");
    assert!(b.request.is_some(), "a request of another realm is kept");
}
