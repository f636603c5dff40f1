//! Warm-up: fill the registry before serving, from a live peer's snapshot or,
//! with no peer, from ecallmgr's own channel list.

use std::fmt;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{seed, snapshot};
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

/// Asks for a snapshot, else seeds from ecallmgr; merges into the registry (never
/// empties it). Returns the source and how many channels were added.
pub async fn run(shared: &State) -> Result<(Source, usize), BusError> {
    let cfg = &shared.settings.cluster;
    let client = BusClient::from_pool(&shared.clients, APP_NAME)
        .await?
        .with_node(&shared.identity.node)
        .with_max_reply_bytes(cfg.max_warmup_reply_bytes);
    let result = from_peer(
        shared,
        &client,
        Duration::from_millis(cfg.snapshot_timeout_ms),
    )
    .await;
    let result = match result {
        Ok(Some(found)) => Ok(found),
        Ok(None) => {
            from_ecallmgr(shared, &client, Duration::from_millis(cfg.seed_timeout_ms)).await
        }
        Err(e) => Err(e),
    };
    client.close().await;
    result
}

async fn from_peer(
    shared: &State,
    client: &BusClient,
    timeout: Duration,
) -> Result<Option<(Source, usize)>, BusError> {
    let replies = client
        .ask(
            asks::snapshot(),
            Collect::until(timeout, snapshot::is_complete),
        )
        .await?;
    let Some(parts) = snapshot::complete_set(&replies) else {
        if !replies.is_empty() {
            warn!(
                parts = replies.len(),
                "incomplete snapshot from peers; not used"
            );
        }
        return Ok(None);
    };
    let node = parts[0]["Node"].as_str().unwrap_or_default().to_owned();
    let mut reg = shared.registry.write().unwrap_or_else(|p| p.into_inner());
    match snapshot::apply(&mut reg, &parts, Instant::now()) {
        Ok(added) => Ok(Some((Source::Peer(node), added))),
        Err(error) => {
            warn!(%error, peer = %node, "snapshot from peer does not decode; not used");
            Ok(None)
        }
    }
}

async fn from_ecallmgr(
    shared: &State,
    client: &BusClient,
    timeout: Duration,
) -> Result<(Source, usize), BusError> {
    let replies = client
        .ask(asks::all_channels(), Collect::all(timeout))
        .await?;
    let channels = seed::channels(&replies);
    let answered = replies.iter().filter(|r| r["App-Name"] != APP_NAME).count();
    if answered == 0 {
        return Ok((Source::Nothing, 0));
    }
    let mut reg = shared.registry.write().unwrap_or_else(|p| p.into_inner());
    let added = channels
        .into_iter()
        .map(|c| usize::from(reg.merge(c)))
        .sum();
    info!(replies = answered, added, "seeded from ecallmgr");
    Ok((Source::Ecallmgr(answered), added))
}
