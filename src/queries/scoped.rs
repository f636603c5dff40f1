//! What Kazoo 5.x's three account-scoped APIs share (`count_req`,
//! `channels_req`, `query_endpoint_channels_req`; `ecallmgr_fs_channels.erl`):
//! the keys they read (in [`Wire`]) and how each selects channels within an account.
//! Every match is exact, as ecallmgr's match specs compare.

use serde_json::Value;

use super::wire::{QueryError, Wire};
use crate::registry::{Channel, Registry};

/// A way to select channels: the reply's key for it, and the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// `account_id`.
    Account,
    /// `authorizing_id`.
    Device,
    /// `authorizing_id` or `owner_id`.
    Endpoint,
    /// `owner_id`.
    Owner,
    /// `owner_id`, as `Owner` (ecallmgr matches both with one spec).
    User,
}

impl Selector {
    /// In ecallmgr's order (`count/1`, `channels/1`), which is the reply's.
    pub const ALL: [Selector; 5] = [
        Selector::Account,
        Selector::Device,
        Selector::Endpoint,
        Selector::Owner,
        Selector::User,
    ];

    /// The reply's key (`kz_json:from_map/1` of ecallmgr's atoms).
    pub fn name(self) -> &'static str {
        match self {
            Selector::Account => "account",
            Selector::Device => "device",
            Selector::Endpoint => "endpoint",
            Selector::Owner => "owner",
            Selector::User => "user",
        }
    }

    /// The request's key.
    pub fn key(self) -> &'static str {
        match self {
            Selector::Account => "Account-ID",
            Selector::Device => "Device-ID",
            Selector::Endpoint => "Endpoint-ID",
            Selector::Owner => "Owner-ID",
            Selector::User => "User-ID",
        }
    }

    /// The request's value for this selector, if any.
    pub fn value(self, w: &Wire) -> Result<Option<String>, QueryError> {
        let v = match self {
            Selector::Account => &w.account_id,
            Selector::Device => &w.device_id,
            Selector::Endpoint => &w.endpoint_id,
            Selector::Owner => &w.owner_id,
            Selector::User => &w.user_id,
        };
        text(v, self.key())
    }
}

/// A key ecallmgr reads with `kz_json:get_ne_binary_value/2`: absent or `""`
/// is no value. Anything but a string is refused (the APIs' validators are not
/// public; a number here is no id anyway).
pub fn text(v: &Option<Value>, key: &'static str) -> Result<Option<String>, QueryError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(QueryError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

/// Channels of `account` selected by `sel` = `id`, of `direction` when given.
/// Cost in proportion to the id's channels (the account's, for `Account`).
pub fn select<'r>(
    reg: &'r Registry,
    sel: Selector,
    account: &'r str,
    id: &'r str,
    direction: Option<&'r str>,
) -> Box<dyn Iterator<Item = &'r Channel> + 'r> {
    let keep = move |c: &&Channel| {
        c.account_id.as_deref() == Some(account)
            && direction.is_none_or(|d| c.direction.as_deref() == Some(d))
    };
    match sel {
        Selector::Account => Box::new(reg.by_account(account).filter(keep)),
        Selector::Device => Box::new(reg.by_authorizing_id(id).filter(keep)),
        Selector::Owner | Selector::User => Box::new(reg.by_owner(id).filter(keep)),
        // Each channel once: the owner matches that the device matches missed.
        Selector::Endpoint => Box::new(
            reg.by_authorizing_id(id).filter(keep).chain(
                reg.by_owner(id)
                    .filter(keep)
                    .filter(move |c| c.authorizing_id.as_deref() != Some(id)),
            ),
        ),
    }
}
