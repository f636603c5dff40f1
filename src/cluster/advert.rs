//! The `nodes`/`advertise` we publish so Kazoo's node list (`kz_nodes`, `sup
//! kz_nodes status`) shows this instance. Every key follows NODES.md §1: a
//! wrong one crashes `kz_nodes` on every Kazoo node that reads it, so nothing
//! else goes in (no `Globals`, `Media-Servers`, `Roles`, `Node-Info`,
//! `Server-ID`), and the whapp is ours, never `ecallmgr`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::kapi::Outgoing;
use crate::kapi::envelope::{APP_NAME, APP_VERSION, Identity, new_msg_id};
use crate::kapi::exchanges::NODES;

pub const CATEGORY: &str = "nodes";
pub const NAME: &str = "advertise";

/// What one advert says of this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert<'a> {
    /// When this instance started, in Gregorian seconds (Kazoo's unit for
    /// every whapp but Kamailio's).
    pub startup: u64,
    /// How long receivers keep us without another advert; zero drops us at
    /// their next tick (the last advert, on stopping).
    pub expires: Duration,
    /// The process's resident set, in bytes.
    pub used_memory: u64,
    /// The local zone, when the operator named it: absent, receivers take
    /// the zone of the broker it arrived on.
    pub zone: Option<&'a str>,
}

impl Advert<'_> {
    /// The body, stamped with `identity` (`Node` is ours, with its `@`).
    pub fn body(&self, identity: &Identity) -> Map<String, Value> {
        let mut body = Map::new();
        identity.stamp(&mut body, CATEGORY, NAME, &new_msg_id());
        body.insert(
            "Expires".into(),
            json!(u64::try_from(self.expires.as_millis()).unwrap_or(u64::MAX)),
        );
        body.insert(
            "WhApps".into(),
            json!({ APP_NAME: { "Startup": self.startup } }),
        );
        body.insert("Version".into(), json!(APP_VERSION));
        body.insert("Used-Memory".into(), json!(self.used_memory));
        if let Some(zone) = self.zone {
            body.insert("Zone".into(), json!(zone));
        }
        body
    }

    /// The message: to the `nodes` fanout, routing key `""` as Kazoo's
    /// `kz_amqp_util:nodes_publish/2`; the publisher sets `application/json`.
    pub fn message(&self, identity: &Identity) -> Outgoing {
        Outgoing::json(NODES, "", &Value::Object(self.body(identity)))
    }
}

/// How long an advert published every `interval` says it lasts: half an
/// interval of slack (Kamailio's 10 s / 15 s), so one late tick is no expiry.
pub fn expires_for(interval: Duration) -> Duration {
    interval + interval / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kapi::schema::schemas;

    fn advert(zone: Option<&str>, expires: Duration) -> Value {
        let a = Advert {
            startup: 63_900_000_000,
            expires,
            used_memory: 18_270_000,
            zone,
        };
        let msg = a.message(&Identity::new("kazoo-channels-ab12@host1"));
        assert_eq!(
            (msg.exchange.as_str(), msg.routing_key.as_str()),
            ("nodes", "")
        );
        serde_json::from_slice(&msg.body).unwrap()
    }

    #[test]
    fn an_advert_is_what_kz_nodes_reads_and_nothing_else() {
        let v = advert(Some("z100"), expires_for(Duration::from_secs(10)));
        schemas()
            .validate("kapi.nodes.advertise", &v, "")
            .unwrap_or_else(|e| panic!("{e:?}: {v}"));
        assert_eq!(v["Event-Category"], "nodes");
        assert_eq!(v["Event-Name"], "advertise");
        assert_eq!(v["Expires"], 15000);
        assert_eq!(v["Node"], "kazoo-channels-ab12@host1");
        assert_eq!(
            v["WhApps"],
            json!({"kazoo-channels": {"Startup": 63_900_000_000u64}})
        );
        assert_eq!(v["Zone"], "z100");
        assert_eq!(v["Used-Memory"], 18_270_000);
        for key in [
            "Globals",
            "Media-Servers",
            "Roles",
            "Node-Info",
            "Server-ID",
        ] {
            assert!(v.get(key).is_none(), "{key} must not be sent");
        }
        assert!(!v.to_string().contains("ecallmgr"));
    }

    #[test]
    fn the_last_advert_expires_at_once_and_no_zone_means_none_sent() {
        let v = advert(None, Duration::ZERO);
        schemas().validate("kapi.nodes.advertise", &v, "").unwrap();
        assert_eq!(v["Expires"], 0);
        assert!(v.get("Zone").is_none());
    }

    #[test]
    fn the_schema_refuses_what_crashes_kz_nodes() {
        let good = advert(None, Duration::from_secs(15));
        let bad = |k: &str, val: Value| {
            let mut v = good.clone();
            v[k] = val;
            schemas().validate("kapi.nodes.advertise", &v, "").is_err()
        };
        assert!(bad("Node", json!("no-at-sign")));
        assert!(bad("Expires", json!(1.5)));
        assert!(bad(
            "WhApps",
            json!({"kazoo-channels": {"Startup": 63_900_000_000.5}})
        ));
        assert!(bad(
            "WhApps",
            json!({"kazoo-channels": {"Startup": "63900000000"}})
        ));
        assert!(bad("WhApps", json!({"kazoo-channels": 1})));
        assert!(bad(
            "WhApps",
            json!({"ecallmgr": {"Startup": 63_900_000_000u64}})
        ));
        assert!(bad("Globals", json!({})));
        assert!(bad("Media-Servers", json!({})));
        assert!(bad("Node-Info", json!({})));
        assert!(bad("Server-ID", json!("q")));
        assert!(bad("Used-Memory", json!(-1)));
    }
}
