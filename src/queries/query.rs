//! A channel query, parsed into a typed request (WIRE.md §3) from the keys
//! `wire.rs` reads; its envelope is read by `kapi::Envelope`, as every
//! request's is. Types are checked
//! as Kazoo's validators check them: a request ecallmgr would not answer (its
//! validator crashes the handler) becomes a [`QueryError`], and we stay silent.
//!
//! Over 400 lines as one job: the five APIs' requests and the tests of each
//! one's type rules.

pub use super::wire::{QueryError, Wire};
use super::wire::{boolean, fields, required, string, strings, text_of};
use super::{channels_req::ChannelsReq, count::CountReq, endpoint::EndpointReq};
pub use crate::forms::api::Fields;
use crate::kapi::{Dialect, Envelope, ReplyAddress, kazoo_bool};

/// The APIs, named by their request's `Event-Name`: Kazoo's five, and the
/// three Kazoo 5.x added (WIRE-5.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    AccountChannels,
    UserChannels,
    Channels,
    ChannelStatus,
    AuthId,
    EndpointChannels,
    Count,
    ChannelsByKey,
}

impl Api {
    pub const ALL: [Api; 8] = [
        Api::AccountChannels,
        Api::UserChannels,
        Api::Channels,
        Api::ChannelStatus,
        Api::AuthId,
        Api::EndpointChannels,
        Api::Count,
        Api::ChannelsByKey,
    ];

    pub fn request_name(self) -> &'static str {
        match self {
            Api::AccountChannels => "query_account_channels_req",
            Api::UserChannels => "query_user_channels_req",
            Api::Channels => "query_channels_req",
            Api::ChannelStatus => "channel_status_req",
            Api::AuthId => "query_auth_id_req",
            Api::EndpointChannels => "query_endpoint_channels_req",
            Api::Count => "count_req",
            Api::ChannelsByKey => "channels_req",
        }
    }

    pub fn reply_name(self) -> &'static str {
        match self {
            Api::AccountChannels => "query_account_channels_resp",
            Api::UserChannels => "query_user_channels_resp",
            Api::Channels => "query_channels_resp",
            Api::ChannelStatus => "channel_status_resp",
            Api::AuthId => "query_auth_id_resp",
            Api::EndpointChannels => "query_endpoint_channels_resp",
            Api::Count => "count_resp",
            Api::ChannelsByKey => "channels_resp",
        }
    }

    fn from_request_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.request_name() == name)
    }
}

/// A request that can be answered: where to, under which `Msg-ID`, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    pub msg_id: String,
    pub reply_to: ReplyAddress,
    /// The request's `Event-Category`, which its reply carries.
    pub dialect: Dialect,
    pub query: Query,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Account(AccountScope),
    User(UserQuery),
    Channels {
        call_id: Option<String>,
        fields: Fields,
        active_only: bool,
    },
    Status {
        call_id: String,
        active_only: bool,
        /// [5.x] `Channel-Record: true`: the whole channel instead of the status keys.
        channel_record: bool,
    },
    AuthId(String),
    EndpointChannels(EndpointReq),
    Count(CountReq),
    ChannelsByKey(ChannelsReq),
}

impl Query {
    pub fn api(&self) -> Api {
        match self {
            Query::Account(_) => Api::AccountChannels,
            Query::User(_) => Api::UserChannels,
            Query::Channels { .. } => Api::Channels,
            Query::Status { .. } => Api::ChannelStatus,
            Query::AuthId(_) => Api::AuthId,
            Query::EndpointChannels(_) => Api::EndpointChannels,
            Query::Count(_) => Api::Count,
            Query::ChannelsByKey(_) => Api::ChannelsByKey,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountScope {
    /// The literal `all`: every channel (system-wide listing).
    All,
    Id(String),
}

/// `query_user_channels_req` (WIRE.md §3.2) plus our `Owner-IDs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Without a realm, usernames are not matched at all.
    pub realm: Option<String>,
    pub users: Users,
    pub authorizing_ids: Vec<String>,
    /// Extension: channels whose `owner_id` is one of these.
    pub owner_ids: Vec<String>,
    /// Default **true** for this API: silence when nothing matched.
    pub active_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Users {
    /// Neither `Username` nor `Usernames`: the whole realm.
    WholeRealm,
    /// `Username` (wins over `Usernames`).
    One(String),
    /// `Usernames`; empty matches nothing.
    Many(Vec<String>),
}

impl Wire {
    /// Which generation's category the request is in; either is answered.
    pub fn dialect(&self) -> Option<Dialect> {
        Dialect::from_category(self.category.as_ref()?.as_str()?)
    }

    pub fn api(&self) -> Option<Api> {
        self.dialect()?;
        Api::from_request_name(self.name.as_ref()?.as_str()?)
    }

    /// The typed request, checked in the order: API, `Msg-ID`, `Server-ID`, keys.
    pub fn request(&self) -> Result<QueryRequest, QueryError> {
        let (Some(api), Some(dialect)) = (self.api(), self.dialect()) else {
            return Err(QueryError::UnknownApi {
                category: text_of(&self.category),
                name: text_of(&self.name),
            });
        };
        let (msg_id, reply_to) =
            Envelope::from_keys(self.msg_id.as_ref(), self.server_id.as_ref()).addressed()?;
        let query = match api {
            Api::AccountChannels => Query::Account(self.account_scope()?),
            Api::UserChannels => Query::User(self.user_query()?),
            Api::Channels => Query::Channels {
                call_id: string(&self.call_id, "Call-ID")?,
                fields: fields(&self.fields)?,
                active_only: boolean(&self.active_only, "Active-Only")?.unwrap_or(false),
            },
            Api::ChannelStatus => Query::Status {
                call_id: required(&self.call_id, "Call-ID")?,
                // Untyped in this API: only true / "true" mean true (`kz_json:is_true`).
                active_only: kazoo_bool(self.active_only.as_ref()) == Some(true),
                // Read by 5.x's ecallmgr only; 4.3/5.0 ignore the key.
                channel_record: dialect == Dialect::Kazoo5
                    && kazoo_bool(self.channel_record.as_ref()) == Some(true),
            },
            Api::AuthId => Query::AuthId(required(&self.auth_id, "Auth-ID")?),
            Api::EndpointChannels => Query::EndpointChannels(EndpointReq::parse(self)?),
            Api::Count => Query::Count(CountReq::parse(self)?),
            Api::ChannelsByKey => Query::ChannelsByKey(ChannelsReq::parse(self)?),
        };
        Ok(QueryRequest {
            msg_id,
            reply_to,
            dialect,
            query,
        })
    }

    /// ecallmgr reads only `Account-ID` here; `Username(s)` and `Active-Only`
    /// are ignored, whatever their type (WIRE.md §3.1, §9.12).
    fn account_scope(&self) -> Result<AccountScope, QueryError> {
        let id = required(&self.account_id, "Account-ID")?;
        Ok(if id == "all" {
            AccountScope::All
        } else {
            AccountScope::Id(id)
        })
    }

    fn user_query(&self) -> Result<UserQuery, QueryError> {
        // Every typed key is checked, used or not, as Kazoo's validator does.
        let realm = string(&self.realm, "Realm")?;
        let username = string(&self.username, "Username")?;
        let usernames = strings(&self.usernames, "Usernames")?;
        let users = match (username, usernames) {
            (Some(one), _) => Users::One(one),
            (None, Some(many)) => Users::Many(many),
            (None, None) => Users::WholeRealm,
        };
        Ok(UserQuery {
            realm,
            users,
            authorizing_ids: strings(&self.authorizing_ids, "Authorizing-IDs")?.unwrap_or_default(),
            owner_ids: strings(&self.owner_ids, "Owner-IDs")?.unwrap_or_default(),
            active_only: boolean(&self.active_only, "Active-Only")?.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kapi::EnvelopeError;
    use serde_json::Value;
    use serde_json::json;

    fn parse(v: Value) -> Result<QueryRequest, QueryError> {
        Wire::decode(&serde_json::to_vec(&v).unwrap())?.request()
    }

    fn req(name: &str, extra: Value) -> Value {
        let mut v = json!({
            "Event-Category": "call_event",
            "Event-Name": name,
            "Msg-ID": "m1",
            "Server-ID": "crossbar@kz1-<0.1.0>-aa",
            "App-Name": "crossbar",
            "App-Version": "4.0.0",
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn crossbar_account_request_parses() {
        let r = parse(fixture("query_account_channels_req.from-crossbar.json")).unwrap();
        assert_eq!(r.msg_id, "b3d4c6a1e2f00912ab34cd56ef7890aa");
        assert_eq!(
            r.reply_to.routing_key,
            "crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e"
        );
        assert_eq!(
            r.query,
            Query::Account(AccountScope::Id("3a1b2c3d4e5f60718293a4b5c6d7e8f9".into()))
        );
        let all = parse(req(
            "query_account_channels_req",
            json!({"Account-ID": "all"}),
        ));
        assert_eq!(all.unwrap().query, Query::Account(AccountScope::All));
    }

    #[test]
    fn account_request_ignores_what_ecallmgr_ignores() {
        let r = parse(req(
            "query_account_channels_req",
            json!({"Account-ID": "a", "Usernames": "oops", "Active-Only": 7}),
        ));
        assert_eq!(
            r.unwrap().query,
            Query::Account(AccountScope::Id("a".into()))
        );
        for missing in [
            json!({}),
            json!({"Account-ID": ""}),
            json!({"Account-ID": null}),
        ] {
            assert!(matches!(
                parse(req("query_account_channels_req", missing)),
                Err(QueryError::Missing("Account-ID"))
            ));
        }
    }

    #[test]
    fn envelope_is_checked_first() {
        let mut v = req("query_account_channels_req", json!({"Account-ID": "a"}));
        v.as_object_mut().unwrap().remove("Msg-ID");
        assert!(matches!(
            parse(v.clone()),
            Err(QueryError::Envelope(EnvelopeError::NoMsgId))
        ));
        v["Msg-ID"] = json!("m");
        v.as_object_mut().unwrap().remove("Server-ID");
        assert!(matches!(
            parse(v.clone()),
            Err(QueryError::Envelope(EnvelopeError::NoServerId))
        ));
        v["Server-ID"] = json!("");
        assert!(matches!(
            parse(v.clone()),
            Err(QueryError::Envelope(EnvelopeError::NoServerId))
        ));
        v["Event-Category"] = json!("call");
        assert!(matches!(parse(v), Err(QueryError::UnknownApi { .. })));
        assert!(matches!(
            parse(req("query_everything_req", json!({}))),
            Err(QueryError::UnknownApi { .. })
        ));
        assert!(matches!(
            Wire::decode(b"[1,2]"),
            Err(QueryError::Malformed(_))
        ));
        assert!(matches!(
            Wire::decode(b"{nope"),
            Err(QueryError::Malformed(_))
        ));
    }

    #[test]
    fn pid_server_id_is_split() {
        let mut v = req("query_auth_id_req", json!({"Auth-ID": "d"}));
        v["Server-ID"] = json!("pid://<0.5511.0>/QUEUE");
        let r = parse(v).unwrap();
        assert_eq!(r.reply_to.routing_key, "QUEUE");
        assert_eq!(r.reply_to.deliver_to_pid.as_deref(), Some("<0.5511.0>"));
    }

    #[test]
    fn user_request_forms() {
        let user = |extra| match parse(req("query_user_channels_req", extra)).unwrap().query {
            Query::User(u) => u,
            q => panic!("{q:?}"),
        };
        let u = user(json!({"Realm": "R.com", "Usernames": ["a", "b"], "Active-Only": false}));
        assert_eq!(u.realm.as_deref(), Some("R.com"));
        assert_eq!(u.users, Users::Many(vec!["a".into(), "b".into()]));
        assert!(!u.active_only);
        let u = user(json!({"Realm": "r", "Username": "x", "Usernames": ["a"]}));
        assert_eq!(u.users, Users::One("x".into()), "Username wins");
        assert!(u.active_only, "default true for this API");
        let u = user(json!({"Realm": "r", "Active-Only": "false"}));
        assert_eq!(u.users, Users::WholeRealm);
        assert!(!u.active_only);
        let u = user(json!({"Authorizing-IDs": ["d1"], "Owner-IDs": ["o1"]}));
        assert_eq!(u.realm, None);
        assert_eq!(u.authorizing_ids, vec!["d1".to_owned()]);
        assert_eq!(u.owner_ids, vec!["o1".to_owned()]);
    }

    #[test]
    fn user_request_wrong_types_are_refused() {
        for (extra, key) in [
            (json!({"Realm": "r", "Usernames": "a"}), "Usernames"),
            (json!({"Realm": "r", "Usernames": ["a", 1]}), "Usernames"),
            (json!({"Realm": "r", "Username": ["a"]}), "Username"),
            (json!({"Authorizing-IDs": "d"}), "Authorizing-IDs"),
            (json!({"Owner-IDs": {"o": 1}}), "Owner-IDs"),
            (json!({"Realm": "r", "Active-Only": "yes"}), "Active-Only"),
            (json!({"Realm": 5}), "Realm"),
        ] {
            match parse(req("query_user_channels_req", extra.clone())) {
                Err(QueryError::WrongType { key: k, .. }) => assert_eq!(k, key, "{extra}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
    }

    #[test]
    fn channels_request_forms() {
        let r = parse(fixture("query_channels_req.from-crossbar.json")).unwrap();
        assert_eq!(
            r.query,
            Query::Channels {
                call_id: Some("a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91".into()),
                fields: Fields::All,
                active_only: true,
            }
        );
        let r = parse(req("query_channels_req", json!({"Fields": ["Account-ID"]}))).unwrap();
        assert_eq!(
            r.query,
            Query::Channels {
                call_id: None,
                fields: Fields::Only(vec!["Account-ID".into()]),
                active_only: false,
            }
        );
        let r = parse(req("query_channels_req", json!({}))).unwrap();
        assert!(matches!(
            r.query,
            Query::Channels {
                fields: Fields::Nothing,
                ..
            }
        ));
        for bad in [
            json!({"Fields": "Account-ID"}),
            json!({"Fields": 3}),
            json!({"Active-Only": 1}),
            json!({"Call-ID": 12}),
        ] {
            assert!(
                matches!(
                    parse(req("query_channels_req", bad.clone())),
                    Err(QueryError::WrongType { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn status_and_auth_id_requests() {
        let r = parse(fixture("channel_status_req.json")).unwrap();
        assert_eq!(
            r.query,
            Query::Status {
                call_id: "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91".into(),
                active_only: false,
                channel_record: false,
            }
        );
        for (v, want) in [
            (json!("true"), true),
            (json!(true), true),
            (json!("yes"), false),
        ] {
            let r = parse(req(
                "channel_status_req",
                json!({"Call-ID": "c", "Active-Only": v}),
            ))
            .unwrap();
            assert_eq!(
                r.query,
                Query::Status {
                    call_id: "c".into(),
                    active_only: want,
                    channel_record: false,
                }
            );
        }
        assert!(matches!(
            parse(req("channel_status_req", json!({}))),
            Err(QueryError::Missing("Call-ID"))
        ));
        let r = parse(req("query_auth_id_req", json!({"Auth-ID": "d"}))).unwrap();
        assert_eq!(r.query, Query::AuthId("d".into()));
        assert!(matches!(
            parse(req("query_auth_id_req", json!({}))),
            Err(QueryError::Missing("Auth-ID"))
        ));
    }
}
