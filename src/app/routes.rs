//! The one table of which queue feeds which handler, and the one place that
//! counts what the handlers did and applies the envelope-error policy.
//!
//! Every handler is `handle(&State, &Incoming) -> Outcome` (commands are async:
//! they publish to Konami before they answer). Our own requests (status,
//! snapshots) have their envelope read here; a Kazoo query and a command read
//! theirs with the same reader (`kapi::Envelope`) inside the handler, because
//! each API answers a bad one its own way (queries stay silent as ecallmgr
//! does, commands answer whenever they can be addressed).

use std::sync::Arc;

use tracing::warn;

use super::state::{Outcome, State};
use crate::bus::{BusPublisher, Handler};
use crate::kapi::{EnvelopeError, Incoming, Request};
use crate::stats::Tally;
use crate::{cluster, commands, intake, queries};

/// When a consumer may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once: events (held while warming) and the per-instance status.
    Now,
    /// Once the registry is warm: the shared request queues.
    WhenWarm,
}

/// A consumer of one queue of the topology.
pub struct Route {
    /// The queue's role in `amqp-bindings/`.
    pub role: &'static str,
    /// 1 = in order (events); more = that many deliveries at once.
    pub concurrency: usize,
    pub start: Start,
    pub handler: Handler,
}

/// Commands handled at once, each with its `mandatory` metaflow publish on a
/// channel of its own (see `BusPublisher::open_with`).
pub const COMMANDS_AT_ONCE: usize = 8;

/// Counts the outcome and hands its messages to the consumer.
fn finish(state: &State, outcome: Outcome) -> Vec<crate::kapi::Outgoing> {
    state.stats.record(outcome.tally);
    outcome.publish
}

/// A handler answered from the state alone. It runs when the consumer polls
/// it: inline for an in-order queue, in a task of its own for the others.
fn sync(state: &Arc<State>, handle: fn(&State, &Incoming) -> Outcome) -> Handler {
    let s = state.clone();
    Arc::new(move |msg| {
        let s = s.clone();
        Box::pin(async move { finish(&s, handle(&s, &msg)) })
    })
}

/// Our own requests: a body that is not an object, or has no `Msg-ID`, is
/// refused here, counted and logged.
fn request(state: &State, msg: &Incoming, handle: fn(&State, &Request) -> Outcome) -> Outcome {
    match Request::parse(msg) {
        Ok(req) => handle(state, &req),
        Err(error) => rejected(msg, error),
    }
}

fn rejected(msg: &Incoming, error: EnvelopeError) -> Outcome {
    warn!(routing_key = %msg.routing_key, %error, "request rejected");
    Outcome::silent(Tally::RequestRejected)
}

fn status(state: &State, msg: &Incoming) -> Outcome {
    request(state, msg, cluster::status::handle)
}

/// The routes of a session. `publisher` is the session's: commands publish
/// through it (as [`crate::kapi::Publish`]) before they reply.
pub fn routes(state: &Arc<State>, publisher: &BusPublisher) -> Vec<Route> {
    let prefetch = usize::from(state.settings.amqp.prefetch);
    let commands = {
        let (s, p) = (state.clone(), publisher.clone());
        Arc::new(move |msg: Incoming| {
            let (s, p) = (s.clone(), p.clone());
            Box::pin(async move {
                let outcome = commands::handle(&s, &p, &msg).await;
                finish(&s, outcome)
            }) as crate::bus::HandlerFuture
        }) as Handler
    };
    // A snapshot publishes its parts as it builds them, one at a time.
    let snapshots = {
        let (s, p) = (state.clone(), publisher.clone());
        Arc::new(move |msg: Incoming| {
            let (s, p) = (s.clone(), p.clone());
            Box::pin(async move {
                let outcome = match Request::parse(&msg) {
                    Ok(req) => cluster::snapshot::handle(&s, &p, &req).await,
                    Err(error) => rejected(&msg, error),
                };
                finish(&s, outcome)
            }) as crate::bus::HandlerFuture
        }) as Handler
    };
    vec![
        Route {
            role: "events",
            concurrency: 1,
            start: Start::Now,
            handler: sync(state, intake::handle),
        },
        Route {
            role: "status",
            concurrency: 1,
            start: Start::Now,
            handler: sync(state, status),
        },
        Route {
            role: "snapshots",
            concurrency: prefetch.min(4),
            start: Start::WhenWarm,
            handler: snapshots,
        },
        Route {
            role: "commands",
            // Requests are independent: handled in tasks (up to the prefetch), so a
            // slow confirm does not hold the ones behind it.
            concurrency: COMMANDS_AT_ONCE,
            start: Start::WhenWarm,
            handler: commands,
        },
        Route {
            role: "queries",
            // As many at once as the broker hands us; each is a short read.
            concurrency: prefetch,
            start: Start::WhenWarm,
            handler: sync(state, queries::handle),
        },
    ]
}
