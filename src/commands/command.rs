//! A `channels`/`command_req` as we read it: the reply envelope, read leniently
//! so even a bad request can be answered, and the validated command.

use serde_json::{Map, Value};

use super::data;
use crate::kapi::Envelope;
use crate::kapi::schema::{SchemaError, schemas};

/// Konami's allowed `Action` values (WIRE.md §6.2); `metaflow` is ours on top.
pub const ACTIONS: [&str; 15] = [
    "audio_level",
    "break",
    "callflow",
    "hangup",
    "hold",
    "intercept",
    "move",
    "park",
    "play",
    "record_call",
    "resume",
    "say",
    "transfer",
    "tts",
    "unpark",
];

pub const METAFLOW: &str = "metaflow";

/// What to put on the channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    /// A whole metaflow tree: kapi `metaflow`/`flow`.
    Flow(Value),
    /// One Konami module: kapi `metaflow`/`action`.
    Action { name: &'static str, data: Value },
}

impl Order {
    pub fn action_name(&self) -> &'static str {
        match self {
            Order::Flow(_) => METAFLOW,
            Order::Action { name, .. } => name,
        }
    }
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub account_id: String,
    pub call_id: String,
    pub order: Order,
}

/// The keys that address, correlate and log the reply, read without
/// validation so even a bad request can be answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Addressing {
    pub envelope: Envelope,
    pub call_id: Option<String>,
    pub account_id: Option<String>,
}

fn text(req: &Map<String, Value>, key: &str) -> Option<String> {
    req.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Addressing {
    pub fn read(req: &Value) -> Self {
        let Some(req) = req.as_object() else {
            return Self::default();
        };
        Self {
            envelope: Envelope::read(req),
            call_id: text(req, "Call-ID"),
            account_id: text(req, "Account-ID"),
        }
    }
}

/// Validates the request and its `Data`. Errors carry JSON pointers into the
/// request; the envelope and the `Data` are both checked, so one answer lists
/// everything that is wrong.
pub fn parse(req: &Value) -> Result<Command, Vec<SchemaError>> {
    let Some(obj) = req.as_object() else {
        return Err(vec![SchemaError {
            path: String::new(),
            message: "a command request is a JSON object".into(),
        }]);
    };
    let mut errors = schemas()
        .validate("channels.command_req", req, "")
        .err()
        .unwrap_or_default();
    let action = obj.get("Action").and_then(Value::as_str);
    let empty = Value::Object(Map::new());
    let payload = obj.get("Data").unwrap_or(&empty);
    // The envelope check already reported an unknown Action or a non-object Data.
    let order = match (action, payload.is_object()) {
        (Some(METAFLOW), true) => {
            errors.extend(data::check_flow(payload, "/Data"));
            Some(Order::Flow(data::with_default_data(payload.clone())))
        }
        (Some(a), true) => ACTIONS.iter().find(|n| **n == a).map(|name| {
            errors.extend(data::check_action(name, payload, "/Data"));
            Order::Action {
                name,
                data: payload.clone(),
            }
        }),
        _ => None,
    };
    match (order, text(obj, "Account-ID"), text(obj, "Call-ID")) {
        (Some(order), Some(account_id), Some(call_id)) if errors.is_empty() => Ok(Command {
            account_id,
            call_id,
            order,
        }),
        _ if errors.is_empty() => Err(vec![SchemaError {
            path: String::new(),
            message: "request incomplete".into(),
        }]),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(action: &str, data: Value) -> Value {
        json!({
            "App-Name": "crossbar", "App-Version": "4.0.0",
            "Event-Category": "channels", "Event-Name": "command_req",
            "Msg-ID": "m1", "Server-ID": "crossbar@kz1-<0.1.0>-aa",
            "Account-ID": "acc", "Call-ID": "c1@10.0.0.1",
            "Action": action, "Data": data,
        })
    }

    fn paths(r: Result<Command, Vec<SchemaError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn a_metaflow_gets_its_default_data_and_nothing_else() {
        let c = parse(&req("metaflow", json!({"module": "hangup"}))).unwrap();
        assert_eq!(
            c.order,
            Order::Flow(json!({"module": "hangup", "data": {}}))
        );
        assert_eq!(
            (c.account_id.as_str(), c.call_id.as_str()),
            ("acc", "c1@10.0.0.1")
        );
    }

    #[test]
    fn an_action_keeps_its_data_untouched() {
        let data = json!({"target": "2600", "transfer-type": "blind", "moh": "m"});
        let c = parse(&req("transfer", data.clone())).unwrap();
        assert_eq!(
            c.order,
            Order::Action {
                name: "transfer",
                data
            }
        );
        let c = parse(&req("hangup", json!({}))).unwrap();
        assert_eq!(c.order.action_name(), "hangup");
    }

    #[test]
    fn data_defaults_to_an_empty_object() {
        let mut r = req("hangup", json!({}));
        r.as_object_mut().unwrap().remove("Data");
        let c = parse(&r).unwrap();
        assert_eq!(
            c.order,
            Order::Action {
                name: "hangup",
                data: json!({})
            }
        );
    }

    #[test]
    fn envelope_errors_name_the_field() {
        let mut r = req("hangup", json!({}));
        r.as_object_mut().unwrap().remove("Call-ID");
        assert_eq!(paths(parse(&r)), ["/Call-ID"]);
        assert_eq!(paths(parse(&req("hangup", json!([])))), ["/Data"]);
        assert_eq!(paths(parse(&req("explode", json!({})))), ["/Action"]);
        assert_eq!(paths(parse(&req("hold_control", json!({})))), ["/Action"]);
        let mut r = req("hangup", json!({}));
        r["Event-Name"] = json!("query_channels_req");
        assert_eq!(paths(parse(&r)), ["/Event-Name"]);
        assert_eq!(paths(parse(&json!("hangup"))), [""]);
    }

    #[test]
    fn envelope_and_data_errors_come_together() {
        let mut r = req("transfer", json!({}));
        r.as_object_mut().unwrap().remove("Account-ID");
        assert_eq!(paths(parse(&r)), ["/Account-ID", "/Data/target"]);
    }

    #[test]
    fn the_reply_envelope_is_read_from_anything() {
        let e = Addressing::read(&req("hangup", json!({})));
        assert_eq!(e.envelope.msg_id.as_deref(), Some("m1"));
        assert_eq!(
            e.envelope.reply_to.unwrap().routing_key,
            "crossbar@kz1-<0.1.0>-aa"
        );
        assert_eq!(Addressing::read(&json!([1])), Addressing::default());
        let e = Addressing::read(&json!({"Msg-ID": 5, "Server-ID": "", "Call-ID": ""}));
        assert_eq!(e, Addressing::default());
    }
}
