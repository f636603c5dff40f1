//! The Kazoo envelope: default keys every message carries, and reply addressing
//! (WIRE.md §2.2, §2.3, §2.5).

use serde_json::{Map, Value};

pub const APP_NAME: &str = "kazoo-channels";
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who we are on the bus: stamped into every message we send.
#[derive(Debug, Clone)]
pub struct Identity {
    pub app_name: String,
    pub app_version: String,
    /// Unique per instance, so an operator can tell which instance answered.
    pub node: String,
}

impl Identity {
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            app_name: APP_NAME.to_owned(),
            app_version: APP_VERSION.to_owned(),
            node: node.into(),
        }
    }

    /// Adds the default keys to `body`. Keys the caller already set win, except the
    /// identity keys, which are always ours.
    pub fn stamp(&self, body: &mut Map<String, Value>, category: &str, name: &str, msg_id: &str) {
        body.insert("App-Name".into(), Value::String(self.app_name.clone()));
        body.insert(
            "App-Version".into(),
            Value::String(self.app_version.clone()),
        );
        body.insert("Node".into(), Value::String(self.node.clone()));
        body.insert("Event-Category".into(), Value::String(category.to_owned()));
        body.insert("Event-Name".into(), Value::String(name.to_owned()));
        body.insert("Msg-ID".into(), Value::String(msg_id.to_owned()));
    }
}

/// A fresh `Msg-ID`: 32 lower-case hex characters, as Kazoo generates them.
pub fn new_msg_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Where a reply goes on the `targeted` exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAddress {
    pub routing_key: String,
    /// Kazoo 5.0 `pid://PID/QUEUE` addresses: the AMQP header `Deliver-To-PID`.
    pub deliver_to_pid: Option<String>,
}

impl ReplyAddress {
    /// Splits a `Server-ID`. Plain queue names are used verbatim (never escaped); a
    /// `pid://` address splits at its last `/`, as `kz_amqp_util` does.
    pub fn parse(server_id: &str) -> Option<Self> {
        if server_id.is_empty() {
            return None;
        }
        if let Some(rest) = server_id.strip_prefix("pid://")
            && let Some((pid, queue)) = rest.rsplit_once('/')
            && !queue.is_empty()
        {
            return Some(Self {
                routing_key: queue.to_owned(),
                deliver_to_pid: Some(pid.to_owned()),
            });
        }
        Some(Self {
            routing_key: server_id.to_owned(),
            deliver_to_pid: None,
        })
    }
}

/// Kazoo booleans arrive as JSON booleans or as the strings "true"/"false" (WIRE.md §2.2).
pub fn kazoo_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_server_id_is_verbatim() {
        let a = ReplyAddress::parse("crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e").unwrap();
        assert_eq!(
            a.routing_key,
            "crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e"
        );
        assert_eq!(a.deliver_to_pid, None);
    }

    #[test]
    fn pid_address_splits_at_last_slash() {
        let a = ReplyAddress::parse("pid://<0.5511.0>/ecallmgr@kz1.example.com-<0.900.0>-7e6d5c4b")
            .unwrap();
        assert_eq!(a.routing_key, "ecallmgr@kz1.example.com-<0.900.0>-7e6d5c4b");
        assert_eq!(a.deliver_to_pid.as_deref(), Some("<0.5511.0>"));
        assert!(ReplyAddress::parse("").is_none());
    }

    #[test]
    fn stamp_sets_default_keys() {
        let id = Identity::new("kazoo-channels@host-1");
        let mut m = Map::new();
        id.stamp(&mut m, "call_event", "query_channels_resp", "abc");
        assert_eq!(m["App-Name"], "kazoo-channels");
        assert_eq!(m["Msg-ID"], "abc");
        assert_eq!(m["Node"], "kazoo-channels@host-1");
        assert_eq!(new_msg_id().len(), 32);
    }

    #[test]
    fn booleans_are_lenient() {
        assert_eq!(kazoo_bool(Some(&json!(true))), Some(true));
        assert_eq!(kazoo_bool(Some(&json!("true"))), Some(true));
        assert_eq!(kazoo_bool(Some(&json!("false"))), Some(false));
        assert_eq!(kazoo_bool(Some(&json!(1))), None);
        assert_eq!(kazoo_bool(None), None);
    }
}
