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
mod wire;

use std::borrow::Borrow;

use serde_json::Map;
use tracing::{debug, warn};

pub use query::{
    AccountScope, Api, Fields, Query, QueryError, QueryRequest, UserQuery, Users, Wire,
};

use crate::app::state::{Outcome, State};
use crate::config::QuerySettings;
use crate::forms::api::Status;
use crate::forms::{api, json, lower};
use crate::kapi::compress::{self, Limits, TooLarge};
use crate::kapi::envelope::APP_NAME;
use crate::kapi::time::gregorian_now_secs;
use crate::kapi::{Dialect, Identity, Incoming, Outgoing};
use crate::registry::text::FastSet;
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

/// The reply body after the envelope keys, over borrowed channels (`&Channel`)
/// or copies of them taken under the lock (`Channel`).
enum Body<'a, C> {
    List(Vec<C>),
    Object(Vec<C>, &'a Fields),
    Status(Status<'a, C>),
    /// A 5.x API's members, written under the lock (counts, ids, a few
    /// fields each), and how many channels they hold.
    Scoped(Vec<u8>, usize),
}

impl<'a> Body<'a, &Channel> {
    /// Copies of the matches, so the reply is written without the lock.
    fn owned(self) -> Body<'a, Channel> {
        let copy = |v: Vec<&Channel>| v.into_iter().cloned().collect();
        match self {
            Body::List(c) => Body::List(copy(c)),
            Body::Object(c, f) => Body::Object(copy(c), f),
            Body::Status(Status::Active(ch)) => Body::Status(Status::Active(ch.clone())),
            Body::Status(Status::Active5(ch)) => Body::Status(Status::Active5(ch.clone())),
            Body::Status(Status::Record(ch, t)) => Body::Status(Status::Record(ch.clone(), t)),
            Body::Status(Status::Terminated(id)) => Body::Status(Status::Terminated(id)),
            Body::Scoped(members, n) => Body::Scoped(members, n),
        }
    }
}

impl<C> Body<'_, C> {
    fn matched(&self) -> usize {
        match self {
            Body::List(c) | Body::Object(c, _) => c.len(),
            Body::Status(s) => usize::from(s.is_active()),
            Body::Scoped(_, n) => *n,
        }
    }
}

/// The channels answering `req`; `None` for ecallmgr's silence.
fn select<'a, 'r>(
    reg: &'r Registry,
    settings: &QuerySettings,
    req: &'a QueryRequest,
) -> Option<Body<'a, &'r Channel>> {
    match &req.query {
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
            Some(ch) if *channel_record => {
                Some(Body::Status(Status::Record(ch, gregorian_now_secs())))
            }
            Some(ch) if req.dialect == Dialect::Kazoo5 => Some(Body::Status(Status::Active5(ch))),
            Some(ch) => Some(Body::Status(Status::Active(ch))),
            None if *active_only => None,
            None => Some(Body::Status(Status::Terminated(call_id))),
        },
        Query::EndpointChannels(q) => Some(scoped(|o| q.write(reg, o))),
        Query::Count(q) => Some(scoped(|o| q.write(reg, o))),
        Query::ChannelsByKey(q) => Some(scoped(|o| q.write(reg, o))),
    }
}

/// A 5.x API's reply members, as `write` writes them.
fn scoped<'a, C>(write: impl FnOnce(&mut json::Obj<'_>) -> usize) -> Body<'a, C> {
    let mut members = Vec::new();
    let mut o = json::Obj::open(&mut members);
    let n = write(&mut o);
    o.close();
    Body::Scoped(members, n)
}

/// Decides the reply to one request. `now_gregorian` is the answer time, for
/// `elapsed_s`. A reply over the default limits is left unanswered.
pub fn answer(
    reg: &Registry,
    identity: &Identity,
    settings: &QuerySettings,
    req: &QueryRequest,
    now_gregorian: u64,
) -> Answer {
    let Some(body) = select(reg, settings, req) else {
        return Answer {
            reply: None,
            matched: 0,
        };
    };
    Answer {
        matched: body.matched(),
        reply: reply(identity, req, &body, now_gregorian, Limits::default()).ok(),
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

/// The queries queue's handler: the matches are copied under the read lock
/// (events wait only that long), the reply written after. Whatever happens,
/// the request is acked once the returned reply is confirmed.
pub fn handle(state: &State, msg: &Incoming) -> Outcome {
    let wire = match Wire::decode(&msg.body) {
        Ok(w) => w,
        Err(error) => return reject(msg, None, error),
    };
    let req = match wire.request() {
        Ok(r) => r,
        Err(error) => return reject(msg, Some(&wire), error),
    };
    let (account_id, call_id) = subject(&req.query);
    let api = req.query.api().request_name();
    if wire.app_name() == Some(APP_NAME)
        && matches!(req.query, Query::Channels { call_id: None, .. })
    {
        // A starting peer seeding from ecallmgr: our registry is not what it
        // asks for (it takes ours as a snapshot), and built into one reply it
        // would be the largest message we could send.
        debug!(api, msg_id = %req.msg_id, "a peer's seed request: left to ecallmgr");
        return Outcome::default();
    }
    let body = {
        let reg = state.registry();
        select(&reg, &state.settings.queries, &req).map(Body::owned)
    };
    let Some(body) = body else {
        debug!(api, msg_id = %req.msg_id, account_id, call_id, "channel query: nothing matched under Active-Only, no reply (as ecallmgr)");
        return Outcome::default();
    };
    let limits = state.settings.amqp.limits();
    let matched = body.matched();
    let out = reply(&state.identity, &req, &body, gregorian_now_secs(), limits);
    drop(body);
    if matched >= RELEASE_AFTER {
        crate::memory::release();
    }
    match out {
        Ok(reply) => {
            debug!(api, msg_id = %req.msg_id, account_id, call_id, channels = matched, reply_to = %reply.routing_key, "channel query answered");
            Outcome::publish(vec![reply], Tally::QueryAnswered)
        }
        Err(error) => {
            warn!(api, msg_id = %req.msg_id, app_name = wire.app_name(), account_id, call_id, raw_bytes = error.raw, compressed_bytes = error.sent, max_bytes = error.max, "reply too large for the broker even compressed; not sent (the requester times out, as with a silent ecallmgr)");
            Outcome::silent(Tally::ReplyTooLarge)
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
    // One match per list, as ecallmgr's one match spec per list (an
    // `orelse` per id): an id twice still matches its channels once. A
    // channel has one id of each kind, so distinct ids match apart.
    for id in distinct(&q.authorizing_ids) {
        out.extend(reg.by_authorizing_id(id));
    }
    for id in distinct(&q.owner_ids) {
        out.extend(reg.by_owner(id));
    }
    out
}

/// Replies of this many channels or more hand their memory back afterwards.
const RELEASE_AFTER: usize = 10_000;
/// The ids of a list, each once, in their first order.
fn distinct(ids: &[String]) -> impl Iterator<Item = &str> {
    let mut seen = FastSet::default();
    ids.iter()
        .map(String::as_str)
        .filter(move |id| seen.insert(*id))
}

/// The reply to `req`: the envelope keys (`Identity::stamp`) followed by the
/// body, written in one pass straight from the channels, a channel at a time
/// into a [`compress::Body`] (gzip once past the threshold, refused once past
/// the limit).
fn reply<C: Borrow<Channel>>(
    identity: &Identity,
    req: &QueryRequest,
    body: &Body<'_, C>,
    now_gregorian: u64,
    limits: Limits,
) -> Result<Outgoing, TooLarge> {
    let mut envelope = Map::new();
    identity.stamp(
        &mut envelope,
        req.dialect.category(),
        req.query.api().reply_name(),
        &req.msg_id,
    );
    // Most of a reply is its channels, about 1.5 KB each; reserving is cheap
    // (untouched capacity costs no memory) and spares copying a big reply.
    let mut out = compress::Body::new(limits, 512 + body.matched() * 2048);
    serde_json::to_writer(&mut out.buf, &envelope).expect("writing to a Vec cannot fail");
    match body {
        Body::List(channels) => {
            json::Obj::extend(&mut out.buf).key("Channels").push(b'[');
            for (i, ch) in channels.iter().enumerate() {
                if i > 0 {
                    out.buf.push(b',');
                }
                lower::lower(&mut out.buf, ch.borrow(), now_gregorian, req.dialect);
                out.spill()?;
            }
            out.buf.extend_from_slice(b"]}");
        }
        Body::Object(channels, fields) => {
            json::Obj::extend(&mut out.buf).key("Channels").push(b'{');
            for (i, ch) in channels.iter().enumerate() {
                let ch = ch.borrow();
                if i > 0 {
                    out.buf.push(b',');
                }
                json::string(&mut out.buf, &ch.uuid);
                out.buf.push(b':');
                api::api(&mut out.buf, ch, fields, now_gregorian, req.dialect);
                out.spill()?;
            }
            out.buf.extend_from_slice(b"}}");
        }
        Body::Status(status) => {
            let mut o = json::Obj::extend(&mut out.buf);
            status.write(&mut o);
            o.close();
        }
        Body::Scoped(members, _) => {
            // `{envelope}` + `{members}` → `{envelope,members}`.
            out.buf.pop();
            out.buf.push(b',');
            out.buf.extend_from_slice(&members[1..]);
        }
    }
    let (bytes, encoding) = out.finish()?;
    let mut reply = Outgoing::reply(&req.reply_to, bytes);
    reply.content_encoding = encoding;
    Ok(reply)
}

#[cfg(test)]
mod kazoo5_tests;
#[cfg(test)]
mod query_tests;
