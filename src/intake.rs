//! Call-event intake: decode, apply to the registry, and hold events while a
//! warm-up is under way. No AMQP in here.

use std::sync::RwLock;
use std::time::Instant;

use tracing::{Level, debug, warn};

use crate::app::state::{Outcome, State};
use crate::kapi::{CallEvent, Incoming};
use crate::registry::{Applied, Registry};
use crate::stats::Tally;

/// The events queue's handler: an event is applied at once, or held (and
/// counted when applied) while the registry warms up.
pub fn handle(state: &State, msg: &Incoming) -> Outcome {
    if state.hold_if_warming(msg) {
        return Outcome::default();
    }
    Outcome::silent(apply_event(&state.registry, msg).0)
}

/// Ends a warm-up: the events held meanwhile are applied after the snapshot,
/// in arrival order. Returns how many.
pub fn end_warmup(state: &State, from: &str) -> usize {
    state.end_warmup(from, |msg| {
        state.stats.record(apply_event(&state.registry, msg).0);
    })
}

/// Applies one delivery from the event queue. Bad input is logged with its
/// routing key, never retried: the caller acks whatever happens here.
pub fn apply_event(registry: &RwLock<Registry>, msg: &Incoming) -> (Tally, Option<Applied>) {
    let ev = match CallEvent::decode(&msg.body) {
        Ok(ev) => ev,
        Err(error) => {
            warn!(routing_key = %msg.routing_key, %error, bytes = msg.body.len(), "call event rejected");
            return (Tally::EventRejected, None);
        }
    };
    // The event is moved into the registry; copying what the debug line names
    // costs three allocations per event, so only when that line is wanted.
    let logged = tracing::enabled!(Level::DEBUG).then(|| {
        (
            ev.call_id().to_owned(),
            ev.msg_id.clone().unwrap_or_default(),
            ev.name.clone().unwrap_or_default(),
        )
    });
    let applied = registry
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .apply(ev, Instant::now());
    let tally = match &applied {
        Applied::Ignored(_) => Tally::EventIgnored,
        _ => Tally::EventApplied,
    };
    if let Some((call_id, msg_id, name)) = logged {
        debug!(%call_id, %msg_id, event = %name, ?applied, "call event");
    }
    (tally, Some(applied))
}
