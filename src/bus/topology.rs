//! The AMQP topology as data (`amqp-bindings/*.json`), compiled into the binary.
//! The worker declares exactly this; `kazoo-channels topology` prints it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::amqp_settings::QueueType;

/// Every file of `amqp-bindings/` (by name), embedded by `build.rs`.
const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/amqp_bindings.rs"));

/// Stands for the instance id in per-instance queue names.
pub const INSTANCE_PLACEHOLDER: &str = "{instance}";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExchangeDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindingDef {
    pub exchange: String,
    pub routing_key: String,
    /// The exchange is someone else's (Kazoo 5.1+'s `channels`): never
    /// declared, checked passively and bound when present (`bus::optional`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub passive_exchange: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueDef {
    pub name: String,
    /// Which consumer reads it (`events`, `queries`, `commands`, …).
    pub role: String,
    pub durable: bool,
    #[serde(default)]
    pub exclusive: bool,
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    queues: Vec<QueueDef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
}

impl Topology {
    /// The built-in topology with `{instance}` filled in.
    pub fn for_instance(instance: &str) -> Self {
        let mut t = Topology {
            exchanges: Vec::new(),
            queues: Vec::new(),
        };
        for (name, text) in FILES {
            let f: File = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("amqp-bindings/{name}.json is invalid: {e}"));
            t.exchanges.extend(f.exchanges);
            t.queues.extend(f.queues.into_iter().map(|mut q| {
                q.name = q.name.replace(INSTANCE_PLACEHOLDER, instance);
                q
            }));
        }
        // `declare` does every exchange before any queue, so file order is free.
        t
    }

    /// Makes every durable queue of ours a queue of `kind`. Classic is
    /// RabbitMQ's default and is left unsaid, so the declaration stays
    /// equivalent to one made without the argument.
    pub fn with_queue_type(mut self, kind: QueueType) -> Self {
        if kind == QueueType::Quorum {
            for q in self.queues.iter_mut().filter(|q| q.durable) {
                q.arguments.insert("x-queue-type".into(), "quorum".into());
            }
        }
        self
    }

    /// What in this topology a RabbitMQ 4.3 with its defaults refuses or no
    /// longer has (kazoo/BROKERS.md, "RabbitMQ 4.x"), one line each.
    pub fn deprecated_features(&self) -> Vec<String> {
        let mut found = Vec::new();
        for q in &self.queues {
            if !q.durable && !q.exclusive {
                found.push(format!("{}: transient_nonexcl_queues", q.name));
            }
            for arg in ["x-queue-master-locator", "x-queue-mode"] {
                if q.arguments.contains_key(arg) {
                    found.push(format!("{}: {arg}", q.name));
                }
            }
            if q.arguments.get("x-queue-version") == Some(&Value::from(1)) {
                found.push(format!("{}: x-queue-version 1", q.name));
            }
        }
        found
    }

    pub fn queue(&self, role: &str) -> Option<&QueueDef> {
        self.queues.iter().find(|q| q.role == role)
    }

    /// (queue, exchange) of every binding to an exchange we never declare.
    pub fn passive_bindings(&self) -> Vec<(&QueueDef, &str)> {
        let mut out: Vec<(&QueueDef, &str)> = Vec::new();
        for q in &self.queues {
            for b in q.bindings.iter().filter(|b| b.passive_exchange) {
                if !out
                    .iter()
                    .any(|(oq, ex)| oq.name == q.name && *ex == b.exchange)
                {
                    out.push((q, b.exchange.as_str()));
                }
            }
        }
        out
    }

    /// RabbitMQ's `definitions.json` format (importable with `rabbitmqctl
    /// import_definitions` or the management UI).
    pub fn to_definitions(&self, vhost: &str) -> Value {
        json!({
            "vhosts": [{ "name": vhost }],
            "exchanges": self.exchanges.iter().map(|e| json!({
                "name": e.name, "vhost": vhost, "type": e.kind, "durable": e.durable,
                "auto_delete": e.auto_delete, "internal": e.internal, "arguments": e.arguments,
            })).collect::<Vec<_>>(),
            "queues": self.queues.iter().map(|q| json!({
                "name": q.name, "vhost": vhost, "durable": q.durable,
                "auto_delete": q.auto_delete, "arguments": q.arguments,
            })).collect::<Vec<_>>(),
            // A binding to an exchange we never declare would fail the import
            // on a broker without it.
            "bindings": self.queues.iter().flat_map(|q| q.bindings.iter().filter(|b| !b.passive_exchange).map(move |b| json!({
                "source": b.exchange, "vhost": vhost, "destination": q.name,
                "destination_type": "queue", "routing_key": b.routing_key, "arguments": {},
            }))).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kazoo_exchanges_have_kazoo_flags() {
        let t = Topology::for_instance("i1");
        for name in ["callevt", "targeted", "callctl", "metaflow", "nodes"] {
            let e = t.exchanges.iter().find(|e| e.name == name).unwrap();
            assert!(!e.durable && !e.auto_delete && !e.internal && e.arguments.is_empty());
        }
        assert_eq!(
            t.exchanges
                .iter()
                .find(|e| e.name == "callevt")
                .unwrap()
                .kind,
            "topic"
        );
        assert_eq!(
            t.exchanges
                .iter()
                .find(|e| e.name == "targeted")
                .unwrap()
                .kind,
            "direct"
        );
    }

    #[test]
    fn no_queue_needs_a_feature_rabbitmq_4_3_denies() {
        for kind in [QueueType::Classic, QueueType::Quorum] {
            let t = Topology::for_instance("i1").with_queue_type(kind);
            assert_eq!(t.deprecated_features(), Vec::<String>::new(), "{kind:?}");
        }
        // The check itself sees what the previous release declared.
        let mut old = Topology::for_instance("i1");
        old.queues[0].durable = false;
        old.queues[1]
            .arguments
            .insert("x-queue-mode".into(), "lazy".into());
        assert_eq!(old.deprecated_features().len(), 2);
    }

    #[test]
    fn quorum_makes_every_queue_of_ours_a_quorum_queue_and_classic_says_nothing() {
        let classic = Topology::for_instance("i1").with_queue_type(QueueType::Classic);
        assert_eq!(classic, Topology::for_instance("i1"));
        assert!(
            classic
                .queues
                .iter()
                .all(|q| !q.arguments.contains_key("x-queue-type"))
        );
        let quorum = Topology::for_instance("i1").with_queue_type(QueueType::Quorum);
        for q in &quorum.queues {
            // Quorum queues are durable only, never exclusive or auto-delete.
            assert!(q.durable && !q.exclusive && !q.auto_delete, "{}", q.name);
            assert_eq!(q.arguments["x-queue-type"], "quorum", "{}", q.name);
        }
        // TTLs keep their meaning (quorum queues have x-message-ttl from 3.10).
        assert_eq!(
            quorum.queue("queries").unwrap().arguments["x-message-ttl"],
            2000
        );
        assert!(
            quorum
                .queue("events")
                .unwrap()
                .arguments
                .contains_key("x-expires")
        );
    }

    #[test]
    fn event_queue_is_per_instance_and_expires() {
        let t = Topology::for_instance("i1");
        let q = t.queue("events").unwrap();
        assert_eq!(q.name, "kazoo-channels.i1.events");
        assert!(!q.exclusive && q.durable);
        assert!(q.arguments.contains_key("x-expires"));
        assert!(
            q.bindings
                .iter()
                .any(|b| b.routing_key == "call.CHANNEL_DESTROY.*")
        );
    }

    #[test]
    fn query_queue_is_shared_and_drops_stale_requests() {
        let (a, b) = (Topology::for_instance("i1"), Topology::for_instance("i2"));
        let q = a.queue("queries").unwrap();
        assert_eq!(
            q.name,
            b.queue("queries").unwrap().name,
            "one queue for all"
        );
        assert!(q.durable && !q.exclusive && !q.auto_delete);
        // Crossbar waits 2 s (kz_amqp_worker's default); nothing older is answered.
        assert_eq!(q.arguments["x-message-ttl"], 2000);
        let keys: Vec<(&str, &str, bool)> = q
            .bindings
            .iter()
            .map(|b| {
                (
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.passive_exchange,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("callevt", "call.status_req.*", false),
                // Kazoo 5.1+'s (WIRE-5.md §1): never declared by us.
                ("channels", "query.status", true),
            ]
        );
        assert!(!a.exchanges.iter().any(|e| e.name == "channels"));
        assert_eq!(a.passive_bindings().len(), 1);
    }

    #[test]
    fn definitions_list_every_binding() {
        let t = Topology::for_instance("i1");
        let d = t.to_definitions("/");
        let n: usize = t
            .queues
            .iter()
            .flat_map(|q| &q.bindings)
            .filter(|b| !b.passive_exchange)
            .count();
        assert_eq!(d["bindings"].as_array().unwrap().len(), n);
        assert_eq!(d["exchanges"].as_array().unwrap().len(), t.exchanges.len());
    }
}
