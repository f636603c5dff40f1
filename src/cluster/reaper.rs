//! Stale channels: a channel whose DESTROY was lost must not live forever.
//! Two guards, both counted: a maximum age (off by default), and a periodic
//! reconcile that asks ecallmgr (`channel_status_req`) about old channels and
//! drops those it reports terminated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::app::state::State;
use crate::bus::{BusClient, Collect};
use crate::kapi::asks;
use crate::kapi::envelope::APP_NAME;
use crate::kapi::time::gregorian_now_secs;
use crate::registry::{Registry, Text};
use crate::stats::Stats;

/// Call ids of channels created before `cutoff` (Gregorian seconds), at most `limit`.
pub fn older_than(reg: &Registry, cutoff: u64, limit: usize) -> Vec<Text> {
    reg.iter()
        .filter(|c| c.timestamp < cutoff)
        .take(limit)
        .map(|c| c.uuid.clone())
        .collect()
}

/// What ecallmgr's replies to one `channel_status_req` say. Every ecallmgr
/// answers, and all but the one holding the channel say `terminated`, so only a
/// chorus of `terminated` with no `active` means the channel is gone.
pub fn is_gone(replies: &[Value]) -> bool {
    let theirs = replies.iter().filter(|r| r["App-Name"] != APP_NAME);
    let (mut active, mut terminated) = (false, false);
    for r in theirs {
        match r["Status"].as_str() {
            Some("active") => active = true,
            Some("terminated") => terminated = true,
            _ => {}
        }
    }
    terminated && !active
}

pub async fn run(shared: Arc<State>, stop: CancellationToken) {
    let cfg = shared.settings.cluster.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut last_reconcile = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if cfg.max_channel_age_secs > 0 {
            reap_old(&shared, cfg.max_channel_age_secs);
        }
        let every = Duration::from_secs(cfg.reconcile_interval_secs);
        if cfg.reconcile_interval_secs > 0 && last_reconcile.elapsed() >= every && shared.is_warm()
        {
            last_reconcile = Instant::now();
            reconcile(&shared, cfg.reconcile_min_age_secs, cfg.reconcile_batch).await;
        }
    }
}

fn reap_old(shared: &State, max_age: u64) {
    let cutoff = gregorian_now_secs().saturating_sub(max_age);
    let mut reg = shared.registry.write().unwrap_or_else(|p| p.into_inner());
    let old = older_than(&reg, cutoff, usize::MAX);
    for id in &old {
        reg.remove(id, Instant::now());
        Stats::inc(&shared.stats.channels_reaped);
    }
    if !old.is_empty() {
        warn!(
            reaped = old.len(),
            max_age_secs = max_age,
            "channels older than the maximum age dropped"
        );
    }
}

pub async fn reconcile(shared: &State, min_age: u64, batch: usize) -> usize {
    let cutoff = gregorian_now_secs().saturating_sub(min_age);
    let candidates = older_than(&shared.registry(), cutoff, batch);
    if candidates.is_empty() {
        return 0;
    }
    let client = match BusClient::from_pool(&shared.clients, APP_NAME).await {
        Ok(c) => c.with_node(&shared.identity.node),
        Err(error) => {
            warn!(%error, "reconcile skipped: cannot reach the broker");
            return 0;
        }
    };
    let answers = {
        let client = &client;
        let questions = candidates.iter().map(|id| async move {
            client
                .ask(
                    asks::channel_status(id, Some(false)),
                    Collect::all(Duration::from_millis(1500)),
                )
                .await
        });
        join_all(questions).await
    };
    client.close().await;
    let mut dropped = 0;
    let mut reg = shared.registry.write().unwrap_or_else(|p| p.into_inner());
    for (id, replies) in candidates.iter().zip(answers) {
        if replies.is_ok_and(|r| is_gone(&r)) && reg.remove(id, Instant::now()).is_some() {
            Stats::inc(&shared.stats.channels_reconciled);
            dropped += 1;
            info!(call_id = %id, "ecallmgr reports the channel terminated; dropped");
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_chorus_of_terminated_means_gone() {
        use serde_json::json;
        let term = json!({"App-Name": "ecallmgr", "Status": "terminated"});
        let active = json!({"App-Name": "ecallmgr", "Status": "active"});
        let ours = json!({"App-Name": APP_NAME, "Status": "terminated"});
        assert!(is_gone(std::slice::from_ref(&term)));
        assert!(!is_gone(&[term.clone(), active]));
        assert!(!is_gone(&[ours]), "our own answers do not count");
        assert!(!is_gone(&[]), "silence is not evidence");
    }
}
