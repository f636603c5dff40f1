//! The keys of a channel query's body, read before anything else (for the
//! log line of a request that cannot be parsed), and the typed readers that
//! check them as Kazoo's validators do. `query.rs` and the 5.x requests build
//! their typed requests from it.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::forms::api::Fields;
use crate::kapi::{EnvelopeError, kazoo_bool};

/// Why a request gets no reply. None of these is answered: the APIs have no
/// error shape, and ecallmgr is silent on each of them.
#[derive(Debug, Error)]
pub enum QueryError {
    #[error("body is not a JSON object: {0}")]
    Malformed(String),
    #[error("not a channel query: Event-Category {category:?}, Event-Name {name:?}")]
    UnknownApi {
        category: Option<String>,
        name: Option<String>,
    },
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("no {0}")]
    Missing(&'static str),
    #[error("{key} is not {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
}

/// The keys of a query body we read; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Wire {
    #[serde(rename = "Event-Category", default)]
    pub(super) category: Option<Value>,
    #[serde(rename = "Event-Name", default)]
    pub(super) name: Option<Value>,
    #[serde(rename = "Msg-ID", default)]
    pub(super) msg_id: Option<Value>,
    #[serde(rename = "App-Name", default)]
    pub(super) app_name: Option<Value>,
    #[serde(rename = "Server-ID", default)]
    pub(super) server_id: Option<Value>,
    #[serde(rename = "Account-ID", default)]
    pub(super) account_id: Option<Value>,
    #[serde(rename = "Realm", default)]
    pub(super) realm: Option<Value>,
    #[serde(rename = "Username", default)]
    pub(super) username: Option<Value>,
    #[serde(rename = "Usernames", default)]
    pub(super) usernames: Option<Value>,
    #[serde(rename = "Authorizing-IDs", default)]
    pub(super) authorizing_ids: Option<Value>,
    #[serde(rename = "Owner-IDs", default)]
    pub(super) owner_ids: Option<Value>,
    #[serde(rename = "Active-Only", default)]
    pub(super) active_only: Option<Value>,
    #[serde(rename = "Call-ID", default)]
    pub(super) call_id: Option<Value>,
    #[serde(rename = "Fields", default)]
    pub(super) fields: Option<Value>,
    #[serde(rename = "Auth-ID", default)]
    pub(super) auth_id: Option<Value>,
    // Kazoo 5.x (WIRE-5.md §2).
    #[serde(rename = "Channel-Record", default)]
    pub(super) channel_record: Option<Value>,
    #[serde(rename = "Device-ID", default)]
    pub(super) device_id: Option<Value>,
    #[serde(rename = "Endpoint-ID", default)]
    pub(super) endpoint_id: Option<Value>,
    #[serde(rename = "Owner-ID", default)]
    pub(super) owner_id: Option<Value>,
    #[serde(rename = "User-ID", default)]
    pub(super) user_id: Option<Value>,
    #[serde(rename = "Direction", default)]
    pub(super) direction: Option<Value>,
    #[serde(rename = "Count-Only", default)]
    pub(super) count_only: Option<Value>,
}

impl Wire {
    pub fn decode(body: &[u8]) -> Result<Self, QueryError> {
        // serde would read a struct from a JSON array too; Kazoo sends objects.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(QueryError::Malformed("not an object".into()));
        }
        serde_json::from_slice(body).map_err(|e| QueryError::Malformed(e.to_string()))
    }

    /// Who asked (`App-Name`).
    pub fn app_name(&self) -> Option<&str> {
        self.app_name.as_ref().and_then(Value::as_str)
    }

    /// For logs, before (or without) a full parse.
    pub fn msg_id(&self) -> Option<&str> {
        self.msg_id.as_ref().and_then(Value::as_str)
    }

    /// For logs: the id a request is about (account, call, auth id, realm).
    pub fn subject(&self) -> Option<&str> {
        [&self.account_id, &self.call_id, &self.auth_id, &self.realm]
            .into_iter()
            .find_map(|v| v.as_ref().and_then(Value::as_str))
    }
}

pub(super) fn text_of(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

pub(super) fn string(v: &Option<Value>, key: &'static str) -> Result<Option<String>, QueryError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(QueryError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

pub(super) fn required(v: &Option<Value>, key: &'static str) -> Result<String, QueryError> {
    string(v, key)?
        .filter(|s| !s.is_empty())
        .ok_or(QueryError::Missing(key))
}

pub(super) fn strings(
    v: &Option<Value>,
    key: &'static str,
) -> Result<Option<Vec<String>>, QueryError> {
    let wrong = || QueryError::WrongType {
        key,
        expected: "an array of strings",
    };
    match v {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wrong()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(wrong()),
    }
}

/// A Kazoo boolean: `true`/`false` or `"true"`/`"false"` (`kz_term:is_boolean`).
pub(super) fn boolean(v: &Option<Value>, key: &'static str) -> Result<Option<bool>, QueryError> {
    match v {
        None => Ok(None),
        Some(v) => kazoo_bool(Some(v)).map(Some).ok_or(QueryError::WrongType {
            key,
            expected: "a boolean",
        }),
    }
}

pub(super) fn fields(v: &Option<Value>) -> Result<Fields, QueryError> {
    match v {
        None => Ok(Fields::Nothing),
        Some(Value::String(s)) if s == "all" => Ok(Fields::All),
        Some(Value::Array(_)) => Ok(Fields::only(strings(v, "Fields")?.unwrap_or_default())),
        Some(_) => Err(QueryError::WrongType {
            key: "Fields",
            expected: "\"all\" or an array of strings",
        }),
    }
}
