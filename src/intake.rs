//! Call-event intake: decode, apply to the registry, count. No AMQP in here.

use std::sync::RwLock;
use std::time::Instant;

use tracing::{Level, debug, warn};

use crate::kapi::{CallEvent, Incoming};
use crate::registry::{Applied, Registry};
use crate::stats::Stats;

/// Applies one delivery from the event queue. Bad input is counted and logged
/// with its routing key, never retried: the caller acks whatever happens here.
pub fn apply_event(registry: &RwLock<Registry>, stats: &Stats, msg: &Incoming) -> Option<Applied> {
    let ev = match CallEvent::decode(&msg.body) {
        Ok(ev) => ev,
        Err(error) => {
            Stats::inc(&stats.events_rejected);
            warn!(routing_key = %msg.routing_key, %error, bytes = msg.body.len(), "call event rejected");
            return None;
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
    match &applied {
        Applied::Ignored(_) => Stats::inc(&stats.events_ignored),
        _ => Stats::inc(&stats.events_applied),
    }
    if let Some((call_id, msg_id, name)) = logged {
        debug!(%call_id, %msg_id, event = %name, ?applied, "call event");
    }
    Some(applied)
}
