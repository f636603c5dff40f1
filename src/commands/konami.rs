//! The kapi `metaflow` message a command becomes (WIRE.md §6.1, §6.2).

use serde_json::{Map, Value, json};

use super::command::{Command, Order};
use crate::kapi::exchanges::METAFLOW as EXCHANGE;
use crate::kapi::{Identity, Outgoing, encode, new_msg_id};

/// `flow` or `action` for the command's call, with a fresh `Msg-ID`, marked
/// `mandatory` so an unroutable one comes back instead of vanishing.
pub fn message(identity: &Identity, cmd: &Command) -> Outgoing {
    let mut body = Map::new();
    body.insert("Call-ID".into(), json!(cmd.call_id));
    let call = encode(&cmd.call_id);
    let (name, routing_key) = match &cmd.order {
        Order::Flow(flow) => {
            body.insert("Flow".into(), flow.clone());
            ("flow", format!("metaflow.flow.{call}"))
        }
        Order::Action { name, data } => {
            body.insert("Action".into(), Value::from(*name));
            body.insert("Data".into(), data.clone());
            // The action is a word of its own, never escaped (WIRE.md §2.6).
            ("action", format!("metaflow.action.{call}.{name}"))
        }
    };
    identity.stamp(&mut body, "metaflow", name, &new_msg_id());
    Outgoing::json(EXCHANGE, routing_key, &body).mandatory()
}
