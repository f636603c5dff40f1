//! Registry snapshots between instances: `channels`/`snapshot_req` →
//! `snapshot_resp` parts, streamed as they are built. A part holds at most
//! [`PART_SIZE`] channels in the record form (unknown values left out),
//! gzip-compressed when large; parts are numbered from 1 and the last says so,
//! so the starting peer can tell a lost part from a finished transfer. The
//! registry's read lock is held only while one part's channels are copied, so
//! events keep flowing while a million channels go out.

use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, json};
use thiserror::Error;
use tracing::{info, warn};

use crate::app::state::{Outcome, State};
use crate::kapi::asks::{self, CHANNELS_CATEGORY as CATEGORY};
use crate::kapi::compress::{self, Codec, Limits, TooLarge};
use crate::kapi::{Identity, Outgoing, Publish, PublishOutcome, Request};
use crate::registry::{Channel, ChannelRecord, Registry};
use crate::stats::Tally;

pub const RESP: &str = "snapshot_resp";
/// Channels per part: about 1 MB of JSON, 100 KB compressed.
pub const PART_SIZE: usize = 2000;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("a snapshot part has no Channels array")]
    NoChannels,
    #[error("a snapshot part does not decode: {0}")]
    BadChannel(#[from] serde_json::Error),
}

/// One part's channels, copied out of the registry.
pub struct Part {
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
    identity: &Identity,
    req: &Request,
    number: usize,
    part: &Part,
    count: usize,
    destroyed: Option<&[String]>,
) -> Vec<u8> {
    let mut head = Map::new();
    identity.stamp(&mut head, CATEGORY, RESP, &req.msg_id);
    head.insert("Part".into(), json!(number));
    head.insert("Last".into(), json!(part.last));
    head.insert("Channel-Count".into(), json!(count));
    if let Some(d) = destroyed {
        head.insert("Destroyed".into(), json!(d));
    }
    let mut out = Vec::with_capacity(part.records.len() * 640);
    serde_json::to_writer(&mut out, &head).expect("maps serialize");
    out.pop();
    out.extend_from_slice(br#","Channels":"#);
    serde_json::to_writer(&mut out, &part.records).expect("records serialize");
    out.push(b'}');
    out
}

/// One part, ready to publish.
pub struct EncodedPart {
    pub number: usize,
    pub body: Vec<u8>,
    pub content_encoding: Option<&'static str>,
    pub channels: usize,
    pub last: bool,
}

/// A snapshot being produced for one request, a part at a time: the caller
/// holds the registry's read lock for [`Producer::copy`] only, and writes
/// (and compresses) the part with [`Producer::encode`] after releasing it.
pub struct Producer<'a> {
    identity: &'a Identity,
    req: &'a Request,
    limits: Limits,
    codec: Codec,
    /// The requester reads [`ChannelRecord::compact`]'s form.
    compact: bool,
    count: usize,
    destroyed: Vec<String>,
    from: usize,
    number: usize,
    finished: bool,
}

impl<'a> Producer<'a> {
    pub fn new(
        registry: &Registry,
        identity: &'a Identity,
        req: &'a Request,
        limits: Limits,
    ) -> Self {
        let accepted = req.body.get("Accept-Encoding").and_then(|v| v.as_array());
        let codec = Codec::accepted(accepted.into_iter().flatten().filter_map(|v| v.as_str()));
        Self {
            identity,
            req,
            limits,
            codec,
            compact: req.str(asks::RECORD_FORM) == Some(asks::COMPACT),
            count: registry.len(),
            destroyed: registry.destroyed().map(|t| t.to_string()).collect(),
            from: 0,
            number: 0,
            finished: false,
        }
    }

    /// The next part's channels; `None` once the last part was copied.
    pub fn copy(&mut self, registry: &Registry) -> Option<Part> {
        if self.finished {
            return None;
        }
        let part = copy_part(registry, self.from);
        self.from = part.next;
        self.finished = part.last;
        Some(part)
    }

    pub fn encode(&mut self, mut part: Part) -> Result<EncodedPart, TooLarge> {
        if self.compact {
            part.records.iter_mut().for_each(ChannelRecord::compact);
        }
        self.number += 1;
        let destroyed = (self.number == 1).then_some(&self.destroyed[..]);
        let body = part_body(
            self.identity,
            self.req,
            self.number,
            &part,
            self.count,
            destroyed,
        );
        let (body, content_encoding) = compress::fit_as(body, self.limits, self.codec)?;
        Ok(EncodedPart {
            number: self.number,
            body,
            content_encoding,
            channels: part.records.len(),
            last: part.last,
        })
    }
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
    let mut producer = Producer::new(
        &state.registry(),
        &state.identity,
        req,
        state.settings.amqp.limits(),
    );
    let (mut parts, mut sent, mut bytes) = (0, 0, 0);
    let finished = loop {
        let Some(part) = producer.copy(&state.registry()) else {
            break true;
        };
        let part = match producer.encode(part) {
            Ok(p) => p,
            Err(error) => {
                warn!(msg_id = %req.msg_id, %peer, part = parts + 1, %error, "snapshot part too large for the broker; transfer abandoned");
                break false;
            }
        };
        bytes += part.body.len();
        let (number, channels) = (part.number, part.channels);
        let mut msg = Outgoing::reply(to, part.body);
        msg.content_encoding = part.content_encoding;
        match publisher.publish(msg).await {
            Ok(PublishOutcome::Confirmed) => {}
            outcome => {
                warn!(msg_id = %req.msg_id, %peer, part = number, ?outcome, "snapshot part not delivered; transfer abandoned");
                break false;
            }
        }
        (parts, sent) = (number, sent + channels);
    };
    crate::memory::release();
    if finished {
        info!(msg_id = %req.msg_id, %peer, parts, channels = sent, bytes, took_ms = began.elapsed().as_millis() as u64, "snapshot sent to a starting peer");
    }
    Outcome::default()
}

/// Every part at once, uncompressed, as [`handle`] would stream them: for
/// tests and tools that hold a registry of their own.
pub fn replies(registry: &Registry, identity: &Identity, req: &Request) -> Vec<Outgoing> {
    let Ok(to) = req.reply_address() else {
        return Vec::new();
    };
    let unbounded = Limits {
        max_message_bytes: usize::MAX,
        compress_above_bytes: usize::MAX,
    };
    let mut producer = Producer::new(registry, identity, req, unbounded);
    let mut out = Vec::new();
    while let Some(part) = producer.copy(registry) {
        let part = producer.encode(part).expect("no limit to pass");
        out.push(Outgoing::reply(to, part.body));
    }
    out
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

/// A part as received: decoded straight into channels, with no JSON tree in
/// between (a million channels are 500 parts).
#[derive(Deserialize)]
struct PartIn {
    #[serde(rename = "Node", default)]
    node: String,
    #[serde(rename = "Part", default)]
    part: u64,
    #[serde(rename = "Last", default)]
    last: bool,
    #[serde(rename = "Destroyed", default)]
    destroyed: Vec<String>,
    #[serde(rename = "Channels")]
    channels: Option<Vec<Channel>>,
}

impl Receiving {
    /// Applies one part (its decoded body) if it is the next from the peer
    /// being followed (parts of another peer, answering a redelivered
    /// request, are skipped).
    pub fn apply(
        &mut self,
        registry: &std::sync::RwLock<Registry>,
        body: &[u8],
        now: Instant,
    ) -> Result<(), TransferError> {
        // Decoded under the write lock, with the registry's interner: while
        // it warms up, nothing else reads the registry.
        let mut reg = registry.write().unwrap_or_else(|p| p.into_inner());
        let part: PartIn = reg
            .decoding(|| serde_json::from_slice(body))
            .map_err(SnapshotError::from)?;
        match &self.node {
            Some(n) if *n != part.node => return Ok(()),
            None if part.part != 1 => return Ok(()),
            _ => {}
        }
        if part.part != self.part + 1 {
            return Err(TransferError::Lost {
                had: self.part,
                got: part.part,
            });
        }
        let channels = part.channels.ok_or(SnapshotError::NoChannels)?;
        for id in &part.destroyed {
            reg.bury(id, now);
        }
        for ch in channels {
            self.added += usize::from(reg.merge(ch));
        }
        drop(reg);
        self.node = Some(part.node);
        self.part = part.part;
        self.done = part.last;
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
    use serde_json::Value;

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

    /// An older peer's request: the full record form, gzip.
    fn request() -> Request {
        Request::parse(&Incoming::new(
            "channels.snapshot",
            br#"{"Msg-ID":"m1","Server-ID":"q1","Node":"peer@h"}"#.to_vec(),
        ))
        .unwrap()
    }

    /// Ours: compact records, zstd.
    fn compact_request() -> Request {
        let mut body = asks::snapshot().body;
        body.extend([
            ("Msg-ID".into(), json!("m2")),
            ("Server-ID".into(), json!("q1")),
            ("Node".into(), json!("peer@h")),
        ]);
        Request::parse(&Incoming::new(
            "channels.snapshot",
            serde_json::to_vec(&body).unwrap(),
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn parts_cover_the_registry_validate_and_merge_back() {
        let state = state_with(PART_SIZE * 2 + 7);
        for req in [request(), compact_request()] {
            parts_merge_back(&state, &req);
        }
    }

    fn parts_merge_back(state: &State, req: &Request) {
        let parts: Vec<Vec<u8>> = replies(&state.registry(), &state.identity, req)
            .into_iter()
            .map(|m| m.body)
            .collect();
        let values: Vec<Value> = parts
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        for (n, v) in values.iter().enumerate() {
            schemas()
                .validate("channels.snapshot_resp", v, "")
                .unwrap_or_else(|e| panic!("part {}: {e:?}", n + 1));
        }
        assert_eq!(values.len(), 3);
        assert_eq!(values[2]["Last"], true);
        assert_eq!(values[0]["Last"], false);
        assert_eq!(values[0]["Channel-Count"], PART_SIZE * 2 + 7);

        let copy = State::new(Settings::defaults());
        let mut rx = Receiving::default();
        // A part of another peer, before and among ours, is skipped.
        let mut stranger = values[1].clone();
        stranger["Node"] = json!("someone@else");
        let stranger = serde_json::to_vec(&stranger).unwrap();
        rx.apply(&copy.registry, &stranger, Instant::now()).unwrap();
        for (n, p) in parts.iter().enumerate() {
            rx.apply(&copy.registry, p, Instant::now()).unwrap();
            if n == 0 {
                rx.apply(&copy.registry, &stranger, Instant::now()).unwrap();
            }
        }
        assert!(rx.done);
        assert_eq!(rx.added, PART_SIZE * 2 + 7);
        assert_eq!(copy.registry().len(), PART_SIZE * 2 + 7);
        let original = state.registry();
        let compact = req.str(asks::RECORD_FORM).is_some();
        assert_eq!(
            values[0]["Channels"][0].get("from_ccv").is_some(),
            compact,
            "the compact form only when asked: {}",
            values[0]["Channels"][0]
        );
        for id in ["call-0", "call-4001", "call-4006"] {
            // The whole channel, as compact as its peer's: its per-call values
            // read from the custom variables they came in.
            assert_eq!(copy.registry().get(id), original.get(id), "{id}");
        }
    }

    #[tokio::test]
    async fn large_parts_go_compressed_and_decode_back() {
        let state = state_with(PART_SIZE);
        for (req, codec) in [
            (request(), compress::GZIP),
            (compact_request(), compress::ZSTD),
        ] {
            large_parts_decode_back(&state, &req, codec);
        }
    }

    fn large_parts_decode_back(state: &State, req: &Request, codec: &str) {
        let limits = Limits {
            max_message_bytes: 16 << 20,
            compress_above_bytes: 64 << 10,
        };
        let mut producer = Producer::new(&state.registry(), &state.identity, req, limits);
        let part = producer.copy(&state.registry()).unwrap();
        let part = producer.encode(part).unwrap();
        assert_eq!(part.content_encoding, Some(codec));
        assert!(part.last && producer.copy(&state.registry()).is_none());
        let body = compress::decode(part.body, part.content_encoding, 1 << 30).unwrap();
        let copy = State::new(Settings::defaults());
        let mut rx = Receiving::default();
        rx.apply(&copy.registry, &body, Instant::now()).unwrap();
        assert!(rx.done);
        assert_eq!(copy.registry().len(), PART_SIZE);
    }

    #[tokio::test]
    async fn a_lost_part_fails_the_transfer() {
        let state = state_with(PART_SIZE * 2 + 1);
        let parts = replies(&state.registry(), &state.identity, &request());
        let copy = State::new(Settings::defaults());
        let mut rx = Receiving::default();
        rx.apply(&copy.registry, &parts[0].body, Instant::now())
            .unwrap();
        assert!(matches!(
            rx.apply(&copy.registry, &parts[2].body, Instant::now()),
            Err(TransferError::Lost { had: 1, got: 3 })
        ));
        assert!(!rx.done);
    }

    #[test]
    fn a_part_that_is_not_json_is_an_error_not_a_panic() {
        let copy = State::new(Settings::defaults());
        let mut rx = Receiving::default();
        assert!(matches!(
            rx.apply(&copy.registry, b"{\"Part\":1,", Instant::now()),
            Err(TransferError::Bad(_))
        ));
        assert!(matches!(
            rx.apply(&copy.registry, br#"{"Part":1,"Node":"p"}"#, Instant::now()),
            Err(TransferError::Bad(SnapshotError::NoChannels))
        ));
    }
}
