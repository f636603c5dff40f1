//! Warm-up: fill the registry before serving, from a live peer's snapshot or,
//! with no peer, from ecallmgr's own channel list. An instance serves only a
//! state it can vouch for: when a peer is known to be alive (it answered the
//! status request) but its snapshot cannot be had, the transfer is retried,
//! then ecallmgr asked; if that gives nothing either, the warm-up fails and the
//! session is retried rather than an empty registry served.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;
use tracing::{info, warn};

use super::seed;
use super::snapshot::{Receiving, TransferError};
use crate::app::state::State;
use crate::bus::{BusClient, BusError, Collect};
use crate::kapi::asks;
use crate::kapi::envelope::APP_NAME;

/// Where the registry's state came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Peer(String),
    Ecallmgr(usize),
    /// Nobody answered: events alone will fill the registry.
    Nothing,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Peer(node) => write!(f, "peer {node}"),
            Source::Ecallmgr(n) => write!(f, "ecallmgr ({n} replies)"),
            Source::Nothing => f.write_str("nothing (no peer, no ecallmgr)"),
        }
    }
}

#[derive(Debug, Error)]
pub enum WarmupError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(
        "live peers ({}) sent no complete snapshot in {attempts} attempts and ecallmgr had nothing: not serving an unvouched registry",
        peers.join(", ")
    )]
    NoSnapshot { peers: Vec<String>, attempts: u32 },
}

#[derive(Debug, Error)]
enum Failed {
    #[error("no part for {0} ms after part {1}")]
    Stalled(u64, u64),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Fills the registry (merging, never emptying it). Returns the source and
/// how many channels were added.
pub async fn run(state: &State) -> Result<(Source, usize), WarmupError> {
    let client = BusClient::from_pool(&state.clients, APP_NAME)
        .await?
        .with_node(&state.identity.node)
        .with_max_reply_bytes(state.settings.cluster.max_warmup_reply_bytes);
    let result = warm(state, &client).await;
    client.close().await;
    // A transfer leaves its parts' buffers behind.
    crate::memory::release();
    result
}

async fn warm(state: &State, client: &BusClient) -> Result<(Source, usize), WarmupError> {
    let cfg = &state.settings.cluster;
    let gap = Duration::from_millis(cfg.snapshot_timeout_ms);
    let seed_wait = Duration::from_millis(cfg.seed_timeout_ms);
    let peers = live_peers(state, client, gap).await?;
    if peers.is_empty() {
        // Peers elsewhere that do not consume our zone still hold every zone's
        // channels (each reads every zone's call events): ask them there.
        if let Some(found) = from_remote_zones(state, gap).await {
            return Ok(found);
        }
        info!("no live kazoo-channels peer answered the status request; seeding from ecallmgr");
        return Ok(from_ecallmgr(state, client, seed_wait).await?);
    }
    from_peers(state, client, peers, gap).await
}

/// A snapshot from one of `peers` (live on `client`'s broker), retried;
/// then ecallmgr's list; then nothing (an error: peers are alive).
async fn from_peers(
    state: &State,
    client: &BusClient,
    peers: Vec<String>,
    gap: Duration,
) -> Result<(Source, usize), WarmupError> {
    let cfg = &state.settings.cluster;
    let seed_wait = Duration::from_millis(cfg.seed_timeout_ms);
    for attempt in 1..=cfg.snapshot_attempts {
        match from_peer(state, client, gap).await {
            Ok(found) => return Ok(found),
            Err(error) => {
                warn!(attempt, attempts = cfg.snapshot_attempts, peers = %peers.join(", "), %error, "snapshot transfer from a live peer failed")
            }
        }
    }
    match from_ecallmgr(state, client, seed_wait).await? {
        (Source::Nothing, _) => Err(WarmupError::NoSnapshot {
            peers,
            attempts: cfg.snapshot_attempts,
        }),
        found => Ok(found),
    }
}

/// With no live peer on the local zone: each remote zone in turn (on its
/// first broker that answers) until one has a live peer with a snapshot.
async fn from_remote_zones(state: &State, gap: Duration) -> Option<(Source, usize)> {
    let mut zones: Vec<&str> = state.zones.remote().map(|i| state.zones.zone(i)).collect();
    zones.dedup();
    for zone in zones {
        let brokers: Vec<_> = state
            .zones
            .remote()
            .filter(|i| state.zones.zone(*i) == zone)
            .map(|i| state.brokers[i].clone())
            .collect();
        let client = match BusClient::connect_first(&brokers, APP_NAME).await {
            Ok(c) => c
                .with_node(&state.identity.node)
                .with_max_reply_bytes(state.settings.cluster.max_warmup_reply_bytes),
            Err(error) => {
                info!(%zone, %error, "remote zone unreachable for warm-up; skipped");
                continue;
            }
        };
        let found = match live_peers(state, &client, gap).await {
            Ok(peers) if !peers.is_empty() => {
                info!(%zone, peers = %peers.join(", "), "warming up from a peer of a remote zone");
                from_peers(state, &client, peers, gap).await.ok()
            }
            _ => None,
        };
        client.close().await;
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The other instances that answer the status request and are warm.
async fn live_peers(
    state: &State,
    client: &BusClient,
    wait: Duration,
) -> Result<Vec<String>, BusError> {
    let replies = client
        .ask(
            asks::status(),
            Collect::all(wait.min(Duration::from_secs(1))),
        )
        .await?;
    let mut peers: Vec<String> = replies
        .iter()
        .filter(|r| r["App-Name"] == APP_NAME && r["State"] == "warm")
        .filter_map(|r| r["Node"].as_str())
        .filter(|n| *n != state.identity.node)
        .map(str::to_owned)
        .collect();
    peers.sort();
    peers.dedup();
    Ok(peers)
}

/// One transfer: parts are merged as they arrive, each within `gap` of the
/// one before.
async fn from_peer(
    state: &State,
    client: &BusClient,
    gap: Duration,
) -> Result<(Source, usize), Failed> {
    let mut replies = client.send_ask(asks::snapshot(), gap).await?;
    let mut receiving = Receiving::default();
    while !receiving.done {
        let Some(part) = replies.next_body(gap).await else {
            return Err(Failed::Stalled(gap.as_millis() as u64, receiving.part));
        };
        receiving.apply(&state.registry, &part, Instant::now())?;
    }
    let node = receiving.node.unwrap_or_default();
    Ok((Source::Peer(node), receiving.added))
}

async fn from_ecallmgr(
    state: &State,
    client: &BusClient,
    timeout: Duration,
) -> Result<(Source, usize), BusError> {
    let replies = client
        .ask(asks::all_channels(), Collect::all(timeout))
        .await?;
    let channels = seed::channels(&replies);
    let answered = replies
        .iter()
        .filter(|r: &&Value| r["App-Name"] != APP_NAME)
        .count();
    if answered == 0 {
        return Ok((Source::Nothing, 0));
    }
    let mut reg = state.registry.write().unwrap_or_else(|p| p.into_inner());
    let added = channels
        .into_iter()
        .map(|c| usize::from(reg.merge(c)))
        .sum();
    info!(replies = answered, added, "seeded from ecallmgr");
    Ok((Source::Ecallmgr(answered), added))
}
