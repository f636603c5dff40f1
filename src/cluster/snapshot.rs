//! Registry snapshots between instances: `channels`/`snapshot_req` →
//! `snapshot_resp` in parts, so a large registry never makes one huge message.

use std::time::Instant;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::app::state::{Outcome, State};
use crate::kapi::asks::CHANNELS_CATEGORY as CATEGORY;
use crate::kapi::{Identity, Outgoing, Request};
use crate::registry::{Channel, Registry};
use crate::stats::Tally;

pub const RESP: &str = "snapshot_resp";
/// Channels per reply message.
pub const PART_SIZE: usize = 2000;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("a snapshot part has no Channels array")]
    NoChannels,
    #[error("a channel in the snapshot does not decode: {0}")]
    BadChannel(#[from] serde_json::Error),
}

/// A starting peer's request: the registry as it is now, in parts.
pub fn handle(state: &State, req: &Request) -> Outcome {
    Outcome::publish(
        replies(&state.registry(), &state.identity, req),
        Tally::Nothing,
    )
}

/// The parts answering `req`, built from the registry as it is now.
pub fn replies(registry: &Registry, identity: &Identity, req: &Request) -> Vec<Outgoing> {
    let channels: Vec<&Channel> = registry.iter().collect();
    let parts = channels.len().div_ceil(PART_SIZE).max(1);
    let destroyed: Vec<&str> = registry.destroyed().map(|t| &**t).collect();
    (0..parts)
        .filter_map(|i| {
            let chunk = channels.iter().skip(i * PART_SIZE).take(PART_SIZE);
            let mut body = Map::new();
            body.insert("Part".into(), json!(i + 1));
            body.insert("Parts".into(), json!(parts));
            body.insert("Channel-Count".into(), json!(channels.len()));
            body.insert(
                "Channels".into(),
                Value::Array(chunk.filter_map(|c| written(c)).collect()),
            );
            if i == 0 {
                body.insert("Destroyed".into(), json!(destroyed));
            }
            req.reply(identity, CATEGORY, RESP, body).ok()
        })
        .collect()
}

/// A channel as a snapshot carries it. Custom variables are strict JSON
/// since intake (`kapi::strict`), so this does not fail; were it to, the
/// channel is named in the log rather than silently left out.
fn written(ch: &Channel) -> Option<Value> {
    serde_json::to_value(ch)
        .map_err(|error| tracing::warn!(call_id = %ch.uuid, %error, "a channel could not be written into a snapshot; left out"))
        .ok()
}

/// The parts of one complete snapshot among `replies` (all from one `Node`:
/// a redelivered request may have been half-answered by a peer that died).
pub fn complete_set(replies: &[Value]) -> Option<Vec<&Value>> {
    let mut nodes: Vec<&str> = replies.iter().filter_map(|r| r["Node"].as_str()).collect();
    nodes.dedup();
    nodes.into_iter().find_map(|node| {
        let parts: Vec<&Value> = replies.iter().filter(|r| r["Node"] == node).collect();
        let want = parts.first()?["Parts"].as_u64()? as usize;
        let mut seen: Vec<u64> = parts.iter().filter_map(|p| p["Part"].as_u64()).collect();
        seen.sort_unstable();
        seen.dedup();
        (seen.len() == want).then_some(parts)
    })
}

pub fn is_complete(replies: &[Value]) -> bool {
    complete_set(replies).is_some()
}

/// Merges a complete snapshot into the registry: known channels are kept as they
/// are, destroyed calls are buried. Returns how many channels were added.
pub fn apply(
    registry: &mut Registry,
    parts: &[&Value],
    now: Instant,
) -> Result<usize, SnapshotError> {
    let mut added = 0;
    for p in parts {
        if let Some(ids) = p["Destroyed"].as_array() {
            for id in ids.iter().filter_map(Value::as_str) {
                registry.bury(id, now);
            }
        }
    }
    for p in parts {
        let list = p["Channels"].as_array().ok_or(SnapshotError::NoChannels)?;
        for c in list {
            let ch: Channel = serde_json::from_value(c.clone())?;
            added += usize::from(registry.merge(ch));
        }
    }
    Ok(added)
}
