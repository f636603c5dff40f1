//! The requests we send on the bus, each built in one place: the CLI's
//! queries, commands and status, and the worker's own warm-up and reconcile
//! requests. The envelope (`Msg-ID`, `Server-ID`, identity) is added by the
//! requester when it sends one.

use serde_json::{Map, Value, json};

use super::compress;
use super::dialect::{Dialect, QUERY_STATUS};
use super::encode;
use super::exchanges::{CALLCTL, CALLEVT};

/// Kazoo 4.3/5.0 channel queries are all in this category (WIRE.md §3.0).
pub const QUERY_CATEGORY: &str = "call_event";
/// Our own requests' category (DESIGN.md, bus contract).
pub const CHANNELS_CATEGORY: &str = "channels";

/// `callctl` routing keys of our own requests.
pub const COMMAND_ROUTING_KEY: &str = "channels.command";
pub const SNAPSHOT_ROUTING_KEY: &str = "channels.snapshot";
pub const STATUS_ROUTING_KEY: &str = "channels.status";

/// One request, ready to be stamped and published.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub exchange: &'static str,
    pub routing_key: String,
    pub category: &'static str,
    pub name: &'static str,
    /// The API's keys.
    pub body: Map<String, Value>,
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("built from object literals"),
    }
}

/// `call.status_req.<word>`, the key ecallmgr's query queue binds (WIRE.md §3.0).
fn status_req_key(word: &str) -> String {
    format!("call.status_req.{}", encode(word))
}

fn query(name: &'static str, routing_key: String, body: Value) -> Ask {
    Ask {
        exchange: CALLEVT,
        routing_key,
        category: QUERY_CATEGORY,
        name,
        body: object(body),
    }
}

fn ours(routing_key: &str, name: &'static str, body: Map<String, Value>) -> Ask {
    Ask {
        exchange: CALLCTL,
        routing_key: routing_key.to_owned(),
        category: CHANNELS_CATEGORY,
        name,
        body,
    }
}

/// What `GET /v2/accounts/{ACCOUNT_ID}/channels` sends.
pub fn account_channels(account_id: &str) -> Ask {
    query(
        "query_account_channels_req",
        status_req_key(account_id),
        json!({"Account-ID": account_id, "Active-Only": false, "Usernames": []}),
    )
}

/// What `GET /v2/accounts/{A}/users/{U}/channels` sends: the sorted, unique
/// SIP usernames, keyed on the first of them as Kazoo's publisher keys it.
pub fn user_channels(realm: &str, usernames: &[String]) -> Ask {
    let mut names = usernames.to_vec();
    names.sort();
    names.dedup();
    let first = names.first().map(String::as_str).unwrap_or_default();
    query(
        "query_user_channels_req",
        status_req_key(&format!("{first}:{realm}")),
        json!({"Realm": realm, "Usernames": names, "Active-Only": false}),
    )
}

/// The channels a device authorized, as group pickup asks.
pub fn device_channels(auth_id: &str) -> Ask {
    query(
        "query_user_channels_req",
        status_req_key(""),
        json!({"Authorizing-IDs": [auth_id], "Active-Only": false}),
    )
}

/// The channels of a user by owner id (`Owner-IDs`, our extension).
pub fn owner_channels(owner_id: &str) -> Ask {
    query(
        "query_user_channels_req",
        status_req_key(""),
        json!({"Owner-IDs": [owner_id], "Active-Only": false}),
    )
}

/// What `GET /v2/accounts/{A}/channels/{CALL_ID}` sends.
pub fn channel(call_id: &str) -> Ask {
    query(
        "query_channels_req",
        "call.status_req.channels".into(),
        json!({"Call-ID": call_id, "Fields": "all", "Active-Only": true}),
    )
}

/// Every channel in the capitalised form: what seeding from ecallmgr asks.
pub fn all_channels() -> Ask {
    query(
        "query_channels_req",
        "call.status_req.channels".into(),
        json!({"Fields": "all", "Active-Only": false}),
    )
}

/// Whether a call is up, as callflow asks (`Active-Only` absent), or as the
/// reconcile asks every ecallmgr (`Active-Only: false`, so each one answers).
pub fn channel_status(call_id: &str, active_only: Option<bool>) -> Ask {
    let mut ask = query(
        "channel_status_req",
        status_req_key(call_id),
        json!({"Call-ID": call_id}),
    );
    if let Some(a) = active_only {
        ask.body.insert("Active-Only".into(), json!(a));
    }
    ask
}

/// [5.x] The channels of an endpoint (device or user) in an account, or how many.
pub fn endpoint_channels(
    account_id: &str,
    endpoint_id: &str,
    direction: Option<&str>,
    count_only: bool,
) -> Ask {
    let mut ask = query(
        "query_endpoint_channels_req",
        status_req_key(account_id),
        json!({"Account-ID": account_id, "Endpoint-ID": endpoint_id}),
    );
    if let Some(d) = direction {
        ask.body.insert("Direction".into(), json!(d));
    }
    if count_only {
        ask.body.insert("Count-Only".into(), json!(true));
    }
    ask
}

/// [5.x] `count_req` / `channels_req`: the account's channels and those of
/// each `(key, id)` given (`Device-ID`, `Endpoint-ID`, `Owner-ID`, `User-ID`).
pub fn scoped(
    name: &'static str,
    account_id: Option<&str>,
    ids: &[(&str, &str)],
    direction: Option<&str>,
) -> Ask {
    let mut body = Map::new();
    if let Some(a) = account_id {
        body.insert("Account-ID".into(), json!(a));
    }
    for (k, id) in ids {
        body.insert((*k).to_owned(), json!(id));
    }
    if let Some(d) = direction {
        body.insert("Direction".into(), json!(d));
    }
    Ask {
        exchange: CALLEVT,
        routing_key: status_req_key(account_id.unwrap_or_default()),
        category: QUERY_CATEGORY,
        name,
        body,
    }
}

/// A channel query as `dialect`'s Kazoo sends it: 5.1+ publishes every one to
/// `channels` with routing key `query.status`, in the `channel` category.
pub fn in_dialect(mut ask: Ask, dialect: Dialect) -> Ask {
    if ask.category == QUERY_CATEGORY && dialect == Dialect::Kazoo5 {
        ask.exchange = dialect.exchange();
        ask.routing_key = QUERY_STATUS.to_owned();
        ask.category = dialect.category();
        // 5.x's cb_channels asks for one channel with Active-Only false.
        if ask.name == "query_channels_req" && ask.body.contains_key("Call-ID") {
            ask.body.insert("Active-Only".into(), json!(false));
        }
    }
    ask
}

/// A channel command (DESIGN.md, "Channel command"), its keys given.
pub fn command(body: Map<String, Value>) -> Ask {
    ours(COMMAND_ROUTING_KEY, "command_req", body)
}

/// A starting instance's request for a peer's registry.
/// The snapshot request's key for the form of the records wanted: peers that
/// know [`COMPACT`] send it, others (and older peers) the full record form.
pub const RECORD_FORM: &str = "Record-Form";
pub const COMPACT: &str = "compact";

pub fn snapshot() -> Ask {
    let mut body = Map::new();
    body.insert(RECORD_FORM.into(), json!(COMPACT));
    // What this instance decodes, best first; a peer that knows none of them
    // (or not the key) sends gzip.
    body.insert(
        "Accept-Encoding".into(),
        json!([compress::ZSTD, compress::GZIP]),
    );
    ours(SNAPSHOT_ROUTING_KEY, "snapshot_req", body)
}

/// Every instance's status.
pub fn status() -> Ask {
    ours(STATUS_ROUTING_KEY, "status_req", Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_what_kazoo_sends() {
        let acct = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let o = account_channels(acct);
        assert_eq!(o.routing_key, format!("call.status_req.{acct}"));
        assert_eq!(
            Value::Object(o.body),
            json!({"Account-ID": acct, "Active-Only": false, "Usernames": []})
        );
        let o = user_channels(
            "account.realm.com",
            &["user_zu0bf7".into(), "b".into(), "b".into()],
        );
        assert_eq!(o.routing_key, "call.status_req.b%3Aaccount%2Erealm%2Ecom");
        assert_eq!(o.body["Usernames"], json!(["b", "user_zu0bf7"]));
        let o = device_channels("d");
        assert_eq!(o.routing_key, "call.status_req.");
        assert_eq!(o.name, "query_user_channels_req");
        let o = channel("a@b.c");
        assert_eq!(o.routing_key, "call.status_req.channels");
        assert_eq!(
            Value::Object(o.body),
            json!({"Call-ID": "a@b.c", "Fields": "all", "Active-Only": true})
        );
        let o = channel_status("a@b.c", None);
        assert_eq!(o.routing_key, "call.status_req.a%40b%2Ec");
        assert_eq!(Value::Object(o.body), json!({"Call-ID": "a@b.c"}));
        let o = channel_status("a@b.c", Some(false));
        assert_eq!(o.body["Active-Only"], json!(false));
    }

    #[test]
    fn kazoo5_requests_go_to_channels_query_status() {
        let o = in_dialect(account_channels("a"), Dialect::Kazoo5);
        assert_eq!(
            (o.exchange, o.routing_key.as_str(), o.category),
            ("channels", "query.status", "channel")
        );
        assert_eq!(o.body, account_channels("a").body);
        let o = in_dialect(channel("c@h"), Dialect::Kazoo5);
        assert_eq!(o.body["Active-Only"], json!(false));
        assert_eq!(in_dialect(channel("c@h"), Dialect::Kazoo4), channel("c@h"));
        let o = endpoint_channels("a", "e", Some("inbound"), true);
        assert_eq!(
            Value::Object(o.body),
            json!({"Account-ID": "a", "Endpoint-ID": "e", "Direction": "inbound", "Count-Only": true})
        );
        let o = scoped("channels_req", None, &[("Device-ID", "d@a")], None);
        assert_eq!(o.routing_key, "call.status_req.");
        assert_eq!(Value::Object(o.body), json!({"Device-ID": "d@a"}));
        // Our own requests are not channel queries.
        assert_eq!(in_dialect(status(), Dialect::Kazoo5), status());
    }

    #[test]
    fn the_snapshot_request_validates_and_accepts_zstd_then_gzip() {
        let ask = snapshot();
        let mut body = ask.body.clone();
        crate::kapi::Identity::new("kazoo-channels@h").stamp(
            &mut body,
            ask.category,
            ask.name,
            "m1",
        );
        body.insert("Server-ID".into(), json!("q"));
        crate::kapi::schema::schemas()
            .validate("channels.snapshot_req", &Value::Object(body), "")
            .unwrap();
        assert_eq!(ask.body["Accept-Encoding"], json!(["zstd", "gzip"]));
        assert_eq!(ask.body[RECORD_FORM], COMPACT);
    }

    #[test]
    fn our_requests_go_to_callctl() {
        for (a, rk) in [
            (status(), STATUS_ROUTING_KEY),
            (snapshot(), SNAPSHOT_ROUTING_KEY),
            (command(Map::new()), COMMAND_ROUTING_KEY),
        ] {
            assert_eq!((a.exchange, a.category), (CALLCTL, CHANNELS_CATEGORY));
            assert_eq!(a.routing_key, rk);
        }
    }
}
