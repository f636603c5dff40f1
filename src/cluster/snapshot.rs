//! Registry snapshots between instances: `channels`/`snapshot_req` →
//! `snapshot_resp` parts, streamed as they are built. A part holds at most
//! [`PART_SIZE`] channels in the record form (unknown values left out),
//! gzip-compressed when large; parts are numbered from 1 and the last says so,
//! so the starting peer can tell a lost part from a finished transfer. The
//! registry's read lock is held only while one part's channels are copied, so
//! events keep flowing while a million channels go out.

use std::time::Instant;

use serde_json::{Map, Value, json};
use thiserror::Error;
use tracing::{info, warn};

use crate::app::state::{Outcome, State};
use crate::kapi::asks::CHANNELS_CATEGORY as CATEGORY;
use crate::kapi::compress;
use crate::kapi::{Outgoing, Publish, PublishOutcome, Request};
use crate::registry::{Channel, ChannelRecord, Registry};
use crate::stats::Tally;

pub const RESP: &str = "snapshot_resp";
/// Channels per part: about 1 MB of JSON, 100 KB compressed.
pub const PART_SIZE: usize = 2000;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("a snapshot part has no Channels array")]
    NoChannels,
    #[error("a channel in the snapshot does not decode: {0}")]
    BadChannel(#[from] serde_json::Error),
}

/// One part's channels, copied out of the registry.
struct Part {
    records: Vec<ChannelRecord>,
    /// Where the next part starts in the slab.
    next: usize,
    last: bool,
}

fn copy_part(registry: &Registry, from: usize) -> Part {
    let mut records = Vec::with_capacity(PART_SIZE);
    let mut slots = registry.slots_from(from);
    let mut next = from;
    for (slot, ch) in slots.by_ref() {
        records.push(ChannelRecord::from(ch.clone()));
        next = slot + 1;
        if records.len() == PART_SIZE {
            break;
        }
    }
    let last = slots.next().is_none();
    Part {
        records,
        next,
        last,
    }
}

/// The body of part `number`: the envelope, then the channels written
/// straight after it (no JSON tree for a thousand channels).
fn part_body(
    state: &State,
    req: &Request,
    number: usize,
    part: &Part,
    count: usize,
    destroyed: Option<&[String]>,
) -> Vec<u8> {
    let mut head = Map::new();
    state.identity.stamp(&mut head, CATEGORY, RESP, &req.msg_id);
    head.insert("Part".into(), json!(number));
    head.insert("Last".into(), json!(part.last));
    head.insert("Channel-Count".into(), json!(count));
    if let Some(d) = destroyed {
        head.insert("Destroyed".into(), json!(d));
    }
    let mut out = serde_json::to_vec(&head).expect("maps serialize");
    out.pop();
    out.extend_from_slice(br#","Channels":"#);
    serde_json::to_writer(&mut out, &part.records).expect("records serialize");
    out.push(b'}');
    out
}

/// A starting peer's request: the registry, part after part, each published
/// (and confirmed) before the next is copied. Parts are published here rather
/// than handed back, so one part at a time is in memory.
pub async fn handle<P: Publish>(state: &State, publisher: &P, req: &Request) -> Outcome {
    let Ok(to) = req.reply_address() else {
        warn!(msg_id = %req.msg_id, "snapshot request without a Server-ID; not answered");
        return Outcome::silent(Tally::RequestRejected);
    };
    let peer = req.str("Node").unwrap_or_default().to_owned();
    let began = Instant::now();
    let (count, destroyed) = {
        let reg = state.registry();
        let destroyed: Vec<String> = reg.destroyed().map(|t| t.to_string()).collect();
        (reg.len(), destroyed)
    };
    let limits = state.settings.amqp.limits();
    let (mut from, mut number, mut sent, mut bytes) = (0, 0, 0, 0);
    let finished = loop {
        let part = copy_part(&state.registry(), from);
        number += 1;
        let body = part_body(
            state,
            req,
            number,
            &part,
            count,
            (number == 1).then_some(&destroyed[..]),
        );
        let (body, encoding) = match compress::fit(body, limits) {
            Ok(b) => b,
            Err(error) => {
                warn!(msg_id = %req.msg_id, %peer, part = number, %error, "snapshot part too large for the broker; transfer abandoned");
                break false;
            }
        };
        bytes += body.len();
        let mut msg = Outgoing::reply(to, body);
        msg.content_encoding = encoding;
        match publisher.publish(msg).await {
            Ok(PublishOutcome::Confirmed) => {}
            outcome => {
                warn!(msg_id = %req.msg_id, %peer, part = number, ?outcome, "snapshot part not delivered; transfer abandoned");
                break false;
            }
        }
        sent += part.records.len();
        if part.last {
            break true;
        }
        from = part.next;
    };
    crate::memory::release();
    if finished {
        info!(msg_id = %req.msg_id, %peer, parts = number, channels = sent, bytes, took_ms = began.elapsed().as_millis() as u64, "snapshot sent to a starting peer");
    }
    Outcome::default()
}

/// Where a starting instance stands in a transfer.
#[derive(Debug, Default)]
pub struct Receiving {
    /// The peer whose parts are taken (the first to answer).
    pub node: Option<String>,
    /// The last part applied.
    pub part: u64,
    pub added: usize,
    pub done: bool,
}

#[derive(Debug, Error)]
pub enum TransferError {
    #[error("part {got} arrived after part {had}: a part was lost")]
    Lost { had: u64, got: u64 },
    #[error(transparent)]
    Bad(#[from] SnapshotError),
}

impl Receiving {
    /// Applies one part if it is the next from the peer being followed
    /// (parts of another peer, answering a redelivered request, are skipped).
    pub fn apply(
        &mut self,
        registry: &std::sync::RwLock<Registry>,
        mut part: Value,
        now: Instant,
    ) -> Result<(), TransferError> {
        let node = part["Node"].as_str().unwrap_or_default().to_owned();
        match &self.node {
            Some(n) if *n != node => return Ok(()),
            None if part["Part"] != 1 => return Ok(()),
            _ => {}
        }
        let got = part["Part"].as_u64().unwrap_or_default();
        if got != self.part + 1 {
            return Err(TransferError::Lost {
                had: self.part,
                got,
            });
        }
        let Value::Array(list) = part["Channels"].take() else {
            return Err(SnapshotError::NoChannels.into());
        };
        let channels = list
            .into_iter()
            .map(serde_json::from_value::<Channel>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(SnapshotError::from)?;
        let mut reg = registry.write().unwrap_or_else(|p| p.into_inner());
        if let Some(ids) = part["Destroyed"].as_array() {
            for id in ids.iter().filter_map(Value::as_str) {
                reg.bury(id, now);
            }
        }
        for ch in channels {
            self.added += usize::from(reg.merge(ch));
        }
        self.node = Some(node);
        self.part = got;
        self.done = part["Last"] == true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::kapi::schema::schemas;
    use crate::kapi::{CallEvent, Incoming};
    use crate::test_support::fixture_bytes;

    fn state_with(n: usize) -> std::sync::Arc<State> {
        let state = State::new(Settings::defaults());
        let body =
            String::from_utf8(fixture_bytes("kazoo43.callevt.CHANNEL_CREATE.a-leg.json")).unwrap();
        let mut reg = state.registry.write().unwrap();
        for i in 0..n {
            let b = body.replace(
                "a1b2c3d4-e5f60718-29a3b4c5@10.26.0.91",
                &format!("call-{i}"),
            );
            reg.apply(CallEvent::decode(b.as_bytes()).unwrap(), Instant::now());
        }
        drop(reg);
        state
    }

    fn request() -> Request {
        Request::parse(&Incoming {
            routing_key: "channels.snapshot".into(),
            body: br#"{"Msg-ID":"m1","Server-ID":"q1","Node":"peer@h"}"#.to_vec(),
            redelivered: false,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn parts_cover_the_registry_validate_and_merge_back() {
        let state = state_with(PART_SIZE * 2 + 7);
        let (mut from, mut parts) = (0, Vec::new());
        loop {
            let part = copy_part(&state.registry(), from);
            let n = parts.len() + 1;
            let body = part_body(&state, &request(), n, &part, 0, (n == 1).then_some(&[][..]));
            let v: Value = serde_json::from_slice(&body).unwrap();
            schemas()
                .validate("channels.snapshot_resp", &v, "")
                .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
            parts.push(v);
            if part.last {
                break;
            }
            from = part.next;
        }
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2]["Last"], true);
        assert_eq!(parts[0]["Last"], false);

        let copy = State::new(Settings::defaults());
        let mut rx = Receiving::default();
        // A part of another peer, before and among ours, is skipped.
        let mut stranger = parts[1].clone();
        stranger["Node"] = json!("someone@else");
        rx.apply(&copy.registry, stranger.clone(), Instant::now())
            .unwrap();
        for p in &parts {
            rx.apply(&copy.registry, p.clone(), Instant::now()).unwrap();
        }
        assert!(rx.done);
        assert_eq!(rx.added, PART_SIZE * 2 + 7);
        assert_eq!(copy.registry().len(), PART_SIZE * 2 + 7);
        let original = state.registry();
        let record = |r: &Registry| ChannelRecord::from(r.get("call-4001").cloned().unwrap());
        assert_eq!(record(&copy.registry()), record(&original));
    }

    #[tokio::test]
    async fn a_lost_part_fails_the_transfer() {
        let state = state_with(PART_SIZE + 1);
        let first = copy_part(&state.registry(), 0);
        let second = copy_part(&state.registry(), first.next);
        let p1: Value =
            serde_json::from_slice(&part_body(&state, &request(), 1, &first, 0, None)).unwrap();
        let p3: Value =
            serde_json::from_slice(&part_body(&state, &request(), 3, &second, 0, None)).unwrap();
        let copy = State::new(Settings::defaults());
        let mut rx = Receiving::default();
        rx.apply(&copy.registry, p1, Instant::now()).unwrap();
        assert!(matches!(
            rx.apply(&copy.registry, p3, Instant::now()),
            Err(TransferError::Lost { had: 1, got: 3 })
        ));
        assert!(!rx.done);
    }
}
