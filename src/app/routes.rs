//! The one table of which queue feeds which handler, and the one place that
//! counts what the handlers did and applies the envelope-error policy.
//!
//! Every handler is `handle(&State, &Incoming) -> Outcome` (commands are async:
//! they publish to Konami before they answer). Our own requests (status,
//! snapshots) have their envelope read here; a Kazoo query and a command read
//! theirs with the same reader (`kapi::Envelope`) inside the handler, because
//! each API answers a bad one its own way (queries stay silent as ecallmgr
//! does, commands answer whenever they can be addressed).
//!
//! Every delivery passes [`Limits`] here, whatever its handler: a body over
//! `amqp.max_body_bytes` is refused unread, a query or command past its
//! deadline is dropped (see `deadline`), and a handler that panics costs its
//! one message (acked, counted, logged with its `Msg-ID`), never the session.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tracing::{error, warn};

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

/// How a route's deliveries are kept in bounds around their handler.
#[derive(Debug, Clone, Copy)]
struct Limits {
    route: &'static str,
    deadline: Deadline,
    /// What a body refused unread counts as.
    refused: Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// Events and snapshots: none.
    None,
    /// Checked before the handler and again before its replies are sent.
    Reply,
    /// Checked before the handler; the handler checks it again before it
    /// carries the request out (a command's metaflow publish), and answers
    /// whatever it carried out.
    CarryOut,
}

impl Limits {
    const fn new(route: &'static str, deadline: Deadline, refused: Tally) -> Self {
        Self {
            route,
            deadline,
            refused,
        }
    }

    /// The outcome of a delivery refused before its handler, if it is.
    fn refuse(&self, state: &State, msg: &Incoming) -> Option<Outcome> {
        let max = state.settings.amqp.max_body_bytes;
        if msg.body.len() > max {
            warn!(route = self.route, routing_key = %msg.routing_key, bytes = msg.body.len(), max, "message body over amqp.max_body_bytes refused unread");
            return Some(Outcome::silent(self.refused));
        }
        (self.deadline != Deadline::None && state.deadlines.passed(msg))
            .then(|| state.deadlines.expired(self.route, msg))
    }

    /// Replies built after the deadline passed are not sent.
    fn in_time(&self, state: &State, msg: &Incoming, outcome: Outcome) -> Outcome {
        if self.deadline == Deadline::Reply
            && !outcome.publish.is_empty()
            && state.deadlines.passed(msg)
        {
            return state.deadlines.expired(self.route, msg);
        }
        outcome
    }

    /// What a handler's panic comes to: its one message acked and counted.
    fn panicked(&self, msg: &Incoming, panic: Box<dyn std::any::Any + Send>) -> Outcome {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let msg_id = crate::kapi::envelope::msg_id_of(&msg.body);
        error!(route = self.route, msg_id, routing_key = %msg.routing_key, panic = %what, "a handler panicked: the message is acked and dropped (a bug: please report it with this line)");
        Outcome::silent(Tally::HandlerPanicked)
    }
}

/// Counts the outcome and hands its messages to the consumer.
fn finish(state: &State, outcome: Outcome) -> Vec<crate::kapi::Outgoing> {
    state.stats.record(outcome.tally);
    outcome.publish
}

/// A handler answered from the state alone. It runs when the consumer polls
/// it: inline for an in-order queue, in a task of its own for the others.
fn sync(state: &Arc<State>, limits: Limits, handle: fn(&State, &Incoming) -> Outcome) -> Handler {
    let s = state.clone();
    Arc::new(move |msg| {
        let s = s.clone();
        Box::pin(async move {
            let outcome = match limits.refuse(&s, &msg) {
                Some(refused) => refused,
                None => match std::panic::catch_unwind(AssertUnwindSafe(|| handle(&s, &msg))) {
                    Ok(outcome) => limits.in_time(&s, &msg, outcome),
                    Err(panic) => limits.panicked(&msg, panic),
                },
            };
            finish(&s, outcome)
        })
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

/// An async handler within its route's limits: refused before it runs, its
/// panic caught (a future does nothing until polled, so `run` waits for the
/// check).
async fn guarded(
    limits: Limits,
    state: &State,
    msg: &Incoming,
    run: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    match limits.refuse(state, msg) {
        Some(refused) => refused,
        None => match AssertUnwindSafe(run).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => limits.panicked(msg, panic),
        },
    }
}

/// The routes of a session. `publisher` is the session's: commands publish
/// through it (as [`crate::kapi::Publish`]) before they reply.
pub fn routes(state: &Arc<State>, publisher: &BusPublisher) -> Vec<Route> {
    let prefetch = usize::from(state.settings.amqp.prefetch);
    let commands = {
        let (s, p) = (state.clone(), publisher.clone());
        let limits = Limits::new("commands", Deadline::CarryOut, Tally::RequestRejected);
        Arc::new(move |msg: Incoming| {
            // Our own messages (the metaflow to Konami) go to the primary,
            // where Konami listens; the reply goes back where the request came from.
            let (s, p) = (s.clone(), p.clone());
            let p = s.primary_publisher().unwrap_or(p);
            Box::pin(async move {
                let outcome = guarded(limits, &s, &msg, commands::handle(&s, &p, &msg)).await;
                finish(&s, outcome)
            }) as crate::bus::HandlerFuture
        }) as Handler
    };
    // A snapshot publishes its parts as it builds them, one at a time.
    // Its parts are replies: they go back on the broker the request came from.
    let snapshots = {
        let (s, p) = (state.clone(), publisher.clone());
        let limits = Limits::new("snapshots", Deadline::None, Tally::RequestRejected);
        Arc::new(move |msg: Incoming| {
            let (s, p) = (s.clone(), p.clone());
            Box::pin(async move {
                let snapshot = async {
                    match Request::parse(&msg) {
                        Ok(req) => cluster::snapshot::handle(&s, &p, &req).await,
                        Err(error) => rejected(&msg, error),
                    }
                };
                let outcome = guarded(limits, &s, &msg, snapshot).await;
                finish(&s, outcome)
            }) as crate::bus::HandlerFuture
        }) as Handler
    };
    vec![
        Route {
            role: "events",
            concurrency: 1,
            start: Start::Now,
            handler: sync(
                state,
                Limits::new("events", Deadline::None, Tally::EventRejected),
                intake::handle,
            ),
        },
        Route {
            role: "status",
            concurrency: 1,
            start: Start::Now,
            handler: sync(
                state,
                Limits::new("status", Deadline::Reply, Tally::RequestRejected),
                status,
            ),
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
            handler: sync(
                state,
                Limits::new("queries", Deadline::Reply, Tally::RequestRejected),
                queries::handle,
            ),
        },
    ]
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod routes_tests;
