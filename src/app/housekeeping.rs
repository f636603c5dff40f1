//! The periodic work beside the session: the stale-channel reaper, expiry of
//! early events whose CREATE never came, and the summary log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::state::State;
use crate::cluster;
use crate::stats::Stats;

/// Starts the periodic tasks; they end with `shutdown`.
pub fn spawn(state: &Arc<State>, shutdown: &CancellationToken) {
    tokio::spawn(cluster::reaper::run(state.clone(), shutdown.clone()));
    let s = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let dropped = s
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .expire(Instant::now());
            if dropped > 0 {
                warn!(
                    dropped,
                    "early call events dropped: their CREATE never came"
                );
            }
        }
    });
    let every = state.settings.log.summary_interval_secs;
    if every == 0 {
        return;
    }
    let s = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let period = Duration::from_secs(every);
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        let (mut applied, mut rejected) = (0, 0);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let a = Stats::get(&s.stats.events_applied);
            let r = Stats::get(&s.stats.events_rejected);
            let secs = period.as_secs_f64();
            info!(
                channels = s.registry().len(),
                events_applied_per_s = format!("{:.1}", (a - applied) as f64 / secs),
                events_rejected_per_s = format!("{:.1}", (r - rejected) as f64 / secs),
                events_applied_total = a,
                events_rejected_total = r,
                queries_answered_total = Stats::get(&s.stats.requests_answered),
                queries_rejected_total = Stats::get(&s.stats.requests_rejected),
                requests_expired_total = Stats::get(&s.stats.requests_expired),
                handler_panics_total = Stats::get(&s.stats.handler_panics),
                commands_answered_total = Stats::get(&s.stats.commands_answered),
                "summary"
            );
            (applied, rejected) = (a, r);
        }
    });
}
