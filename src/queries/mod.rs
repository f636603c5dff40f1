//! Kazoo's channel queries, answered from the registry with ecallmgr's
//! semantics (WIRE.md §3, §4, §9): the five of Kazoo 4.3/5.0 and the three
//! 5.x added, in either dialect (`call_event` or 5.1+'s `channel`, WIRE-5.md),
//! each reply in its request's. Pure: a request body and the registry in, the
//! reply (or silence) out; the bus publishes it and acks the request afterwards.
//!
//! Every failure is a [`QueryError`] and maps to the same Kazoo answer: no reply,
//! a log line and a count, because none of these APIs has an error shape and
//! ecallmgr stays silent on each of them.
//!
//! [`query`] parses a request; this file decides the answer; the channel's
//! forms are written by `crate::forms`. The command-line client is in `cli/`.

mod channels_req;
mod count;
mod endpoint;
pub mod query;
mod scoped;

use serde_json::Map;
use tracing::{debug, warn};

pub use query::{
    AccountScope, Api, Fields, Query, QueryError, QueryRequest, UserQuery, Users, Wire,
};

use crate::app::state::{Outcome, State};
use crate::config::QuerySettings;
use crate::forms::api::Status;
use crate::forms::{api, json, lower};
use crate::kapi::time::gregorian_now_secs;
use crate::kapi::{Dialect, Identity, Incoming, Outgoing};
use crate::registry::{Channel, Registry};
use crate::stats::Tally;

/// The `*3` prefix: a `Username` that is a call-park slot (ecallmgr's `CALL_PARK_FEATURE`).
const PARK_PREFIX: &str = "*3";

/// What answering one request came to.
#[derive(Debug)]
pub struct Answer {
    /// `None`: ecallmgr's silence (nothing matched under `Active-Only`).
    pub reply: Option<Outgoing>,
    /// Channels in the reply (0 for a status reply of an unknown call).
    pub matched: usize,
}

/// The reply body after the envelope keys.
enum Body<'a> {
    List(Vec<&'a Channel>),
    Object(Vec<&'a Channel>, &'a Fields),
    Status(Status<'a>),
    /// One of the 5.x APIs, which writes itself from the registry.
    Scoped(Scoped<'a>),
}

enum Scoped<'a> {
    Endpoint(&'a endpoint::EndpointReq),
    Count(&'a count::CountReq),
    ByKey(&'a channels_req::ChannelsReq),
}

/// Decides the reply to one request. `now_gregorian` is the answer time, for
/// `elapsed_s`.
pub fn answer(
    reg: &Registry,
    identity: &Identity,
    settings: &QuerySettings,
    req: &QueryRequest,
    now_gregorian: u64,
) -> Answer {
    let body = match &req.query {
        Query::Account(scope) => Some(Body::List(account_channels(
            reg,
            settings,
            scope,
            &req.msg_id,
        ))),
        Query::User(q) => {
            let found = user_channels(reg, q, req.dialect);
            (!found.is_empty() || !q.active_only).then_some(Body::List(found))
        }
        Query::AuthId(id) => Some(Body::List(reg.by_authorizing_id(id).collect())),
        Query::Channels {
            call_id,
            fields,
            active_only,
        } => {
            let found: Vec<&Channel> = match call_id {
                Some(id) => reg.get(id).into_iter().collect(),
                None => reg.iter().collect(),
            };
            (!found.is_empty() || !active_only).then_some(Body::Object(found, fields))
        }
        Query::Status {
            call_id,
            active_only,
            channel_record,
        } => match reg.get(call_id) {
            Some(ch) if *channel_record => Some(Body::Status(Status::Record(ch, now_gregorian))),
            Some(ch) if req.dialect == Dialect::Kazoo5 => Some(Body::Status(Status::Active5(ch))),
            Some(ch) => Some(Body::Status(Status::Active(ch))),
            None if *active_only => None,
            None => Some(Body::Status(Status::Terminated(call_id))),
        },
        Query::EndpointChannels(q) => Some(Body::Scoped(Scoped::Endpoint(q))),
        Query::Count(q) => Some(Body::Scoped(Scoped::Count(q))),
        Query::ChannelsByKey(q) => Some(Body::Scoped(Scoped::ByKey(q))),
    };
    let Some(body) = body else {
        return Answer {
            reply: None,
            matched: 0,
        };
    };
    let (bytes, matched) = encode(reg, identity, req, &body, now_gregorian);
    Answer {
        reply: Some(Outgoing::reply(&req.reply_to, bytes)),
        matched,
    }
}

/// Decodes and answers one request body: [`handle`] without the lock, logs and
/// counts, for tests and benches.
pub fn answer_body(
    reg: &Registry,
    identity: &Identity,
    settings: &QuerySettings,
    body: &[u8],
    now_gregorian: u64,
) -> Result<Answer, QueryError> {
    let req = Wire::decode(body)?.request()?;
    Ok(answer(reg, identity, settings, &req, now_gregorian))
}

/// The queries queue's handler: answer under a read lock and log. Whatever
/// happens, the request is acked once the returned replies are confirmed.
pub fn handle(state: &State, msg: &Incoming) -> Outcome {
    let wire = match Wire::decode(&msg.body) {
        Ok(w) => w,
        Err(error) => return reject(msg, None, error),
    };
    let req = match wire.request() {
        Ok(r) => r,
        Err(error) => return reject(msg, Some(&wire), error),
    };
    let answer = answer(
        &state.registry(),
        &state.identity,
        &state.settings.queries,
        &req,
        gregorian_now_secs(),
    );
    let (account_id, call_id) = subject(&req.query);
    let api = req.query.api().request_name();
    match answer.reply {
        Some(reply) => {
            debug!(api, msg_id = %req.msg_id, account_id, call_id, channels = answer.matched, reply_to = %reply.routing_key, "channel query answered");
            Outcome::publish(vec![reply], Tally::QueryAnswered)
        }
        None => {
            debug!(api, msg_id = %req.msg_id, account_id, call_id, "channel query: nothing matched under Active-Only, no reply (as ecallmgr)");
            Outcome::default()
        }
    }
}

fn reject(msg: &Incoming, wire: Option<&Wire>, error: QueryError) -> Outcome {
    let msg_id = wire.and_then(Wire::msg_id);
    let subject = wire.and_then(Wire::subject);
    warn!(routing_key = %msg.routing_key, msg_id, subject, %error, "channel query not answered");
    Outcome::silent(Tally::RequestRejected)
}

/// (account_id, call_id) for the log line.
fn subject(q: &Query) -> (Option<&str>, Option<&str>) {
    match q {
        Query::Account(AccountScope::Id(a)) => (Some(a), None),
        Query::Account(AccountScope::All) => (Some("all"), None),
        Query::Channels { call_id, .. } => (None, call_id.as_deref()),
        Query::Status { call_id, .. } => (None, Some(call_id)),
        Query::EndpointChannels(q) => (Some(&q.account), None),
        Query::Count(q) => (Some(&q.account), None),
        Query::User(_) | Query::AuthId(_) | Query::ChannelsByKey(_) => (None, None),
    }
}

fn account_channels<'r>(
    reg: &'r Registry,
    settings: &QuerySettings,
    scope: &AccountScope,
    msg_id: &str,
) -> Vec<&'r Channel> {
    match scope {
        AccountScope::Id(id) => reg.by_account(id).collect(),
        AccountScope::All if settings.system_wide_listing => reg.iter().collect(),
        AccountScope::All => {
            warn!(
                msg_id,
                "Account-ID \"all\" asked, but queries.system_wide_listing is off: answering with no channels"
            );
            Vec::new()
        }
    }
}

/// ecallmgr's `handle_query_user_channels`: the realm matches, then the
/// `Authorizing-IDs` matches (then ours, `Owner-IDs`), concatenated; a channel
/// matching two ways is listed twice, as ecallmgr lists it. Only the query side
/// is lower-cased; stored values compare as stored. 5.x lower-cases only the
/// realm: its usernames and park slots are matched as asked.
fn user_channels<'r>(reg: &'r Registry, q: &UserQuery, dialect: Dialect) -> Vec<&'r Channel> {
    let lower = |name: &str| match dialect {
        Dialect::Kazoo4 => name.to_ascii_lowercase(),
        Dialect::Kazoo5 => name.to_owned(),
    };
    let mut out = Vec::new();
    if let Some(realm) = &q.realm {
        let realm = realm.to_ascii_lowercase();
        match &q.users {
            Users::WholeRealm => out.extend(reg.by_realm(&realm)),
            Users::One(name) if name.starts_with(PARK_PREFIX) => {
                // A park slot: the unbridged channels dialling it.
                let slot = lower(name);
                out.extend(
                    reg.by_realm(&realm).filter(|c| {
                        c.destination() == Some(slot.as_str()) && c.other_leg.is_none()
                    }),
                );
            }
            Users::One(name) => out.extend(reg.by_user(&realm, &lower(name))),
            Users::Many(names) => {
                // ecallmgr ORs the names in one match: a name twice matches once.
                let mut names: Vec<String> = names.iter().map(|n| lower(n)).collect();
                names.sort_unstable();
                names.dedup();
                for name in &names {
                    out.extend(reg.by_user(&realm, name));
                }
            }
        }
    }
    for id in &q.authorizing_ids {
        out.extend(reg.by_authorizing_id(id));
    }
    for id in &q.owner_ids {
        out.extend(reg.by_owner(id));
    }
    out
}

/// The envelope keys (`Identity::stamp`, in the request's category) followed
/// by the body, written in one pass straight from the registry's channels;
/// and how many channels the reply holds.
fn encode(
    reg: &Registry,
    identity: &Identity,
    req: &QueryRequest,
    body: &Body<'_>,
    now_gregorian: u64,
) -> (Vec<u8>, usize) {
    let mut envelope = Map::new();
    identity.stamp(
        &mut envelope,
        req.dialect.category(),
        req.query.api().reply_name(),
        &req.msg_id,
    );
    // Most of a reply is its channels, about 1.5 KB each; reserving is cheap
    // (untouched capacity costs no memory) and spares copying a big reply.
    let channels = match body {
        Body::List(c) | Body::Object(c, _) => c.len(),
        Body::Status(_) | Body::Scoped(_) => 1,
    };
    let mut out = Vec::with_capacity(512 + channels * 2048);
    serde_json::to_writer(&mut out, &envelope).expect("writing to a Vec cannot fail");
    let mut o = json::Obj::extend(&mut out);
    let matched = match body {
        Body::List(channels) => {
            lower::lower_list(o.key("Channels"), channels, now_gregorian, req.dialect);
            channels.len()
        }
        Body::Object(channels, fields) => {
            api::api_object(
                o.key("Channels"),
                channels,
                fields,
                now_gregorian,
                req.dialect,
            );
            channels.len()
        }
        Body::Status(status) => {
            status.write(&mut o);
            usize::from(status.is_active())
        }
        Body::Scoped(Scoped::Endpoint(q)) => q.write(reg, &mut o),
        Body::Scoped(Scoped::Count(q)) => q.write(reg, &mut o),
        Body::Scoped(Scoped::ByKey(q)) => q.write(reg, &mut o),
    };
    o.close();
    (out, matched)
}

#[cfg(test)]
mod kazoo5_tests;
#[cfg(test)]
mod query_tests;
