//! How a command ended, and the one place it becomes a `command_resp`.

use serde_json::{Map, Value, json};

use crate::kapi::schema::SchemaError;
use crate::kapi::{Identity, PublishError};

/// Why a command was not accepted, in the order the checks run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("invalid request: {} validation error(s)", .0.len())]
    Invalid(Vec<SchemaError>),
    /// Also the answer for another account's call: the requester learns nothing
    /// about channels outside its account.
    #[error("no active channel {call_id} in account {account_id}")]
    NotFound { call_id: String, account_id: String },
    #[error("channel {0} is not bridged: there is no call to transfer")]
    NotBridged(String),
    #[error(
        "nothing is bound for call {0}: metaflows are not enabled on it, or Konami is not running"
    )]
    NotRouted(String),
    #[error("the broker refused the metaflow message (nack)")]
    Nacked,
    #[error(
        "the broker refused the metaflow message: it closed the channel (is the metaflow exchange declared?)"
    )]
    Refused,
    #[error("could not publish the metaflow message: {0}")]
    Publish(#[from] PublishError),
}

impl CommandError {
    pub fn code(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::NotFound { .. } => 404,
            Self::NotBridged(_) => 409,
            Self::NotRouted(_) | Self::Nacked | Self::Refused => 503,
            Self::Publish(_) => 500,
        }
    }
}

/// The `command_resp` body for `outcome`, echoing the request's `Msg-ID`.
pub fn reply_body(
    identity: &Identity,
    msg_id: &str,
    call_id: Option<&str>,
    outcome: &Result<(), CommandError>,
) -> Map<String, Value> {
    let mut body = Map::new();
    identity.stamp(&mut body, "channels", "command_resp", msg_id);
    if let Some(id) = call_id {
        body.insert("Call-ID".into(), json!(id));
    }
    match outcome {
        Ok(()) => {
            body.insert("Status".into(), json!("accepted"));
        }
        Err(e) => {
            body.insert("Status".into(), json!("error"));
            body.insert("Error-Code".into(), json!(e.code()));
            body.insert("Error-Message".into(), json!(e.to_string()));
            if let CommandError::Invalid(errors) = e {
                body.insert("Validation-Errors".into(), json!(errors));
            }
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kapi::schema::schemas;

    fn valid(body: &Map<String, Value>) {
        schemas()
            .validate("channels.command_resp", &Value::Object(body.clone()), "")
            .unwrap_or_else(|e| panic!("{body:?}: {e:?}"));
    }

    #[test]
    fn every_outcome_is_a_valid_command_resp() {
        let id = Identity::new("kazoo-channels@test");
        let invalid = CommandError::Invalid(vec![SchemaError {
            path: "/Data/target".into(),
            message: "transfer needs target".into(),
        }]);
        let cases: Vec<(Result<(), CommandError>, Option<u16>)> = vec![
            (Ok(()), None),
            (Err(invalid), Some(400)),
            (
                Err(CommandError::NotFound {
                    call_id: "c".into(),
                    account_id: "a".into(),
                }),
                Some(404),
            ),
            (Err(CommandError::NotBridged("c".into())), Some(409)),
            (Err(CommandError::NotRouted("c".into())), Some(503)),
            (Err(CommandError::Nacked), Some(503)),
            (Err(CommandError::Refused), Some(503)),
            (Err(PublishError("channel closed".into()).into()), Some(500)),
        ];
        for (outcome, code) in cases {
            let body = reply_body(&id, "m1", Some("c"), &outcome);
            valid(&body);
            assert_eq!(body["Msg-ID"], "m1");
            assert_eq!(
                body.get("Error-Code").and_then(Value::as_u64),
                code.map(u64::from)
            );
            assert_eq!(body.contains_key("Validation-Errors"), code == Some(400));
        }
        // A request without a Call-ID is still answered.
        let body = reply_body(
            &id,
            "m2",
            None,
            &Err(CommandError::Invalid(vec![SchemaError {
                path: "/Call-ID".into(),
                message: "\"Call-ID\" is a required property".into(),
            }])),
        );
        valid(&body);
        assert_eq!(body["Status"], "error");
    }
}
