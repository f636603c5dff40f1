//! Advertising this instance on Kazoo's `nodes` exchange (NODES.md §1): an
//! advert every `node.advertise_interval_secs` while the registry is warm and
//! the local zone's primary is connected, published there only (remote zones
//! see it through their own federated `nodes` consumers), and on stopping,
//! after the in-flight work, one last advert with `Expires: 0` so Kazoo drops
//! the node at once instead of 1.25 × `Expires` later.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::state::State;
use crate::bus::BusPublisher;
use crate::cluster::advert::{Advert, expires_for};
use crate::kapi::PublishOutcome;

/// How often, while nothing can be advertised (cold, or no local broker),
/// the advertiser looks again: the first advert follows warm-up closely.
const WAIT_POLL: Duration = Duration::from_millis(250);

/// How long a publish may wait for its confirm: a broker that blocks us
/// (resource alarm) never confirms, and the last advert must not hold up
/// the graceful stop.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

fn advert(state: &State, expires: Duration) -> Advert<'_> {
    Advert {
        startup: state.adverts.startup,
        expires,
        used_memory: crate::memory::resident_bytes(),
        zone: state.settings.amqp.zone.as_deref(),
    }
}

fn interval(state: &State) -> Duration {
    Duration::from_secs(state.settings.node.advertise_interval_secs.max(1))
}

/// Starts the advertiser (unless `node.advertise` is off); it ends with `shutdown`.
pub fn spawn(state: &Arc<State>, shutdown: &CancellationToken) {
    if !state.settings.node.advertise {
        info!(node = %state.identity.node, "node.advertise is off: Kazoo's node list will not show this instance");
        return;
    }
    let (state, stop) = (state.clone(), shutdown.clone());
    tokio::spawn(async move {
        let every = interval(&state);
        loop {
            let publisher = state
                .primary_publisher()
                .filter(|_| state.is_warm() && !state.adverts.is_stopping());
            let wait = match publisher {
                Some(p) => {
                    publish(&state, &p, expires_for(every)).await;
                    every
                }
                None => WAIT_POLL,
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Publishes one advert on `publisher`; true when the broker confirmed it.
async fn publish(state: &State, publisher: &BusPublisher, expires: Duration) -> bool {
    let a = advert(state, expires);
    let msg = a.message(&state.identity);
    let expires_ms = expires.as_millis() as u64;
    let sent = tokio::time::timeout(CONFIRM_WAIT, publisher.send(&msg)).await;
    match sent {
        Ok(Ok(PublishOutcome::Confirmed)) => {
            let first = state
                .adverts
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .replace(SystemTime::now())
                .is_none();
            let recovered = state.adverts.failing.swap(false, Ordering::Relaxed);
            if first || recovered {
                info!(node = %state.identity.node, expires_ms, used_memory = a.used_memory, zone = state.settings.amqp.local_zone(), "advertised on nodes; Kazoo's node list shows this instance (re-advertised every interval)");
            } else {
                debug!(node = %state.identity.node, expires_ms, used_memory = a.used_memory, "advertised on nodes");
            }
            true
        }
        outcome => {
            if !state.adverts.failing.swap(true, Ordering::Relaxed) {
                warn!(node = %state.identity.node, ?outcome, "advert on nodes not confirmed; trying again next interval (logged once)");
            }
            false
        }
    }
}

/// The last advert (`Expires: 0`), from the session on the local primary as
/// it stops, after its in-flight work and before its connection closes. Sent
/// once, and only if this instance advertised at all.
pub async fn farewell(state: &State, publisher: &BusPublisher) {
    let adverts = &state.adverts;
    if !state.settings.node.advertise
        || !adverts.is_stopping()
        || adverts.last_unix_secs().is_none()
        || adverts.farewell.swap(true, Ordering::AcqRel)
    {
        return;
    }
    if publish(state, publisher, Duration::ZERO).await {
        info!(node = %state.identity.node, "last advert sent (Expires 0): Kazoo drops this node now");
    }
}
