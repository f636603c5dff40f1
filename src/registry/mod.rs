//! The live channel registry. Pure Rust, no AMQP: the bus feeds it decoded
//! events and the handlers read it.
//!
//! Events are idempotent and order tolerant (DESIGN.md, behaviour rules):
//! a duplicate CREATE changes nothing; a DESTROY leaves a tombstone so a late
//! CREATE for the same call cannot raise a ghost; an update for a call not yet
//! created is held for a short reorder window and applied when its CREATE comes.
//!
//! Files, each importing only those below it: `text` (base types), `intern`
//! (shared strings and variable shapes), `channel` (the record), `table` (the
//! slab and call-id table), `index` (secondary indexes); this file applies
//! events over them.

pub mod channel;
mod channel_record;
mod extra;
mod index;
pub mod intern;
pub mod recording;
mod table;
pub mod text;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use channel::Channel;
pub use channel_record::ChannelRecord;
use index::{IndexKeys, Indexes, Set};
use intern::Interner;
use table::Channels;
pub use text::Text;
use text::{FastMap, Id};

use crate::kapi::event::{CallEvent, EventKind};
use crate::kapi::time::gregorian_now_secs;

#[derive(Debug, Clone, Copy)]
pub struct RegistryConfig {
    /// How long an update for an unknown call waits for its CREATE.
    pub reorder_window: Duration,
    /// How long a destroyed call id stays dead, refusing late events.
    pub tombstone_ttl: Duration,
    /// How many early updates are held per unknown call.
    pub max_pending_per_call: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            reorder_window: Duration::from_secs(5),
            tombstone_ttl: Duration::from_secs(120),
            max_pending_per_call: 16,
        }
    }
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Inserted,
    Updated,
    Removed,
    /// Held until the call's CREATE arrives (or the reorder window closes).
    Held,
    /// Nothing to do: a duplicate, an event for a destroyed call, or an event
    /// the registry does not track.
    Ignored(&'static str),
}

#[derive(Debug, Default)]
pub struct Registry {
    channels: Channels,
    idx: Indexes,
    strings: Interner,
    tombstones: FastMap<Text, Instant>,
    tombstone_order: VecDeque<(Instant, Text)>,
    pending: FastMap<Text, (Instant, Vec<CallEvent<'static>>)>,
    cfg: RegistryConfig,
}

impl Registry {
    pub fn new(cfg: RegistryConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    pub fn get(&self, call_id: &str) -> Option<&Channel> {
        self.channels.find(call_id).map(|id| self.channels.get(id))
    }

    /// The channels from slab slot `from` on, with their slots (see
    /// `Channels::slots_from`): how a snapshot resumes after releasing the lock.
    pub fn slots_from(&self, from: usize) -> impl Iterator<Item = (usize, &Channel)> {
        self.channels.slots_from(from)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.channels.iter()
    }

    /// How many distinct values the channels share.
    pub fn shared_strings(&self) -> usize {
        self.strings.len()
    }

    fn lookup<'a>(&'a self, set: Option<&'a Set>) -> impl Iterator<Item = &'a Channel> {
        set.into_iter()
            .flat_map(Set::ids)
            .map(|id| self.channels.get(id))
    }

    pub fn by_account(&self, account_id: &str) -> impl Iterator<Item = &Channel> {
        self.lookup(self.idx.account.get(account_id))
    }

    pub fn by_owner(&self, owner_id: &str) -> impl Iterator<Item = &Channel> {
        self.lookup(self.idx.owner.get(owner_id))
    }

    pub fn by_authorizing_id(&self, authorizing_id: &str) -> impl Iterator<Item = &Channel> {
        self.lookup(self.idx.authorizing.get(authorizing_id))
    }

    pub fn by_realm(&self, realm: &str) -> impl Iterator<Item = &Channel> {
        self.lookup(self.idx.realm.get(realm))
    }

    pub fn by_user(&self, realm: &str, username: &str) -> impl Iterator<Item = &Channel> {
        self.lookup(self.idx.user.get(realm).and_then(|u| u.get(username)))
    }

    /// Applies one decoded call event. `now` is the monotonic time of receipt.
    pub fn apply(&mut self, ev: CallEvent<'_>, now: Instant) -> Applied {
        let id = ev.call_id();
        // A held call is never tombstoned (a call is buried only once it is
        // gone), so the tombstones, a cache miss apiece, are only looked
        // through for a call the table lacks.
        let found = self.channels.find(id);
        if found.is_none() && self.tombstones.contains_key(id) {
            return match ev.kind {
                EventKind::Destroy | EventKind::Disconnected => {
                    Applied::Ignored("duplicate destroy")
                }
                _ => Applied::Ignored("call already destroyed"),
            };
        }
        match ev.kind {
            EventKind::Create | EventKind::Connected => match found {
                // A second ecallmgr's copy; keep the first but take any newer values.
                Some(at) => {
                    self.update(at, &ev);
                    Applied::Ignored("duplicate create")
                }
                None => self.create(ev),
            },
            EventKind::Destroy | EventKind::Disconnected => self.destroy(&ev, found, now),
            EventKind::Answer
            | EventKind::Bridge
            | EventKind::Unbridge
            | EventKind::Hold
            | EventKind::Unhold
            | EventKind::Record(_) => match found {
                Some(at) => {
                    self.update(at, &ev);
                    Applied::Updated
                }
                None => self.hold_back(ev, now),
            },
            EventKind::Other(_) => Applied::Ignored("not a lifecycle event"),
        }
    }

    fn create(&mut self, ev: CallEvent<'_>) -> Applied {
        let peer = ev.peer().and_then(|p| self.known_id(p));
        let ch = Channel::build(
            &ev,
            gregorian_now_secs(),
            &mut self.strings,
            &self.idx,
            peer,
        );
        let keys = IndexKeys::of(&ch);
        // An originated B-leg names its A-leg at CREATE; ecallmgr records that on
        // the B-leg only, and shows the A-leg bridged once BRIDGE says so.
        let at = self.channels.insert(ch);
        self.idx.insert(&keys, at);
        if !self.pending.is_empty()
            && let Some((_, mut held)) = self.pending.remove(ev.call_id())
        {
            held.sort_by_key(|e| e.event_micros().unwrap_or(0));
            for e in held {
                self.update(at, &e);
            }
        }
        Applied::Inserted
    }

    /// The registry's copy of a known call id, to point at instead of a copy.
    fn known_id(&self, call_id: &str) -> Option<Text> {
        self.channels
            .find(call_id)
            .map(|id| self.channels.get(id).uuid.clone())
    }

    /// `found`: where the table holds the call, as [`Registry::apply`] found it.
    fn destroy(&mut self, ev: &CallEvent<'_>, found: Option<Id>, now: Instant) -> Applied {
        let removed = found.map(|at| (at, self.channels.remove(at)));
        let id = match &removed {
            Some((_, ch)) => ch.uuid.clone(),
            None => Text::from(ev.call_id()),
        };
        if !self.pending.is_empty() {
            self.pending.remove(&id);
        }
        self.tombstones.insert(id.clone(), now);
        self.tombstone_order.push_back((now, id.clone()));
        match removed {
            Some((at, ch)) => {
                self.idx.remove(&IndexKeys::of(&ch), at);
                if let Some(peer) = &ch.other_leg {
                    self.unlink_peer(peer, &id, ev.event_micros().unwrap_or(u64::MAX));
                }
                drop(ch);
                self.strings.released();
                Applied::Removed
            }
            None => Applied::Ignored("destroy of unknown call"),
        }
    }

    fn hold_back(&mut self, ev: CallEvent<'_>, now: Instant) -> Applied {
        let max = self.cfg.max_pending_per_call;
        let entry = self
            .pending
            .entry(Text::from(ev.call_id()))
            .or_insert_with(|| (now, Vec::new()));
        if entry.1.len() >= max {
            return Applied::Ignored("too many early events for one call");
        }
        entry.1.push(ev.into_owned());
        Applied::Held
    }

    fn update(&mut self, at: Id, ev: &CallEvent<'_>) {
        let peer_id = match ev.kind {
            EventKind::Bridge => ev
                .peer()
                .map(|p| self.known_id(p).unwrap_or_else(|| Text::from(p))),
            _ => None,
        };
        let ch = self.channels.get_mut(at);
        if let EventKind::Record(r) = ev.kind {
            // A recording's event names the recording, and says nothing new of
            // the channel: its variables are the channel's, left as they are.
            if let Some(name) = ev.recording_name() {
                ch.record(&name, r);
            }
            return;
        }
        let before = IndexKeys::of(ch);
        ch.refresh(ev, &mut self.strings, &self.idx);
        let seq = ev.event_micros();
        // Without an event time, an event counts as the newest.
        let newer = |last: u64| seq.unwrap_or(u64::MAX) >= last;
        let mut link = None;
        let mut unlink = None;
        match ev.kind {
            EventKind::Answer => ch.answered = true,
            EventKind::Bridge => {
                if let Some(peer) = peer_id
                    && newer(ch.seq.bridge)
                {
                    ch.seq.bridge = seq.unwrap_or(ch.seq.bridge);
                    ch.other_leg = Some(peer.clone());
                    link = Some(peer);
                }
            }
            EventKind::Unbridge if newer(ch.seq.bridge) => {
                ch.seq.bridge = seq.unwrap_or(ch.seq.bridge);
                unlink = ch.other_leg.take();
            }
            EventKind::Hold | EventKind::Unhold if newer(ch.seq.hold) => {
                ch.seq.hold = seq.unwrap_or(ch.seq.hold);
                ch.is_onhold = ev.kind == EventKind::Hold;
            }
            _ => {}
        }
        let moved = !before.same_as(ch);
        let after = moved.then(|| IndexKeys::of(ch));
        let id = ch.uuid.clone();
        if let Some(after) = after {
            self.idx.remove(&before, at);
            self.idx.insert(&after, at);
        }
        if let Some(peer) = link {
            self.link_peer(&peer, &id, seq.unwrap_or(0));
        }
        if let Some(peer) = unlink {
            self.unlink_peer(&peer, &id, seq.unwrap_or(u64::MAX));
        }
    }

    /// A bridge is reported on one leg; ecallmgr shows it on both.
    fn link_peer(&mut self, peer: &str, id: &Text, seq: u64) {
        if let Some(at) = self.channels.find(peer)
            && let p = self.channels.get_mut(at)
            && seq >= p.seq.bridge
        {
            p.seq.bridge = seq;
            p.other_leg = Some(id.clone());
        }
    }

    fn unlink_peer(&mut self, peer: &str, id: &Text, seq: u64) {
        if let Some(at) = self.channels.find(peer)
            && let p = self.channels.get_mut(at)
            && p.other_leg.as_deref() == Some(&**id)
            && seq >= p.seq.bridge
        {
            p.seq.bridge = seq;
            p.other_leg = None;
        }
    }

    /// Runs `f` (a snapshot part's decoding) with the registry's interner
    /// lent to the custom variables it reads ([`Interner::lend`]).
    pub fn decoding<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let out = self.strings.lend(f);
        // A peer's variables passed the custom-variable rule at its intake;
        // nothing to report of them here.
        let _ = self.strings.take_changes();
        out
    }

    /// Merges a channel learned from elsewhere (a peer's snapshot, ecallmgr):
    /// known channels and destroyed calls are left as they are.
    pub fn merge(&mut self, mut ch: Channel) -> bool {
        if self.channels.find(&ch.uuid).is_some() || self.tombstones.contains_key(&ch.uuid) {
            return false;
        }
        ch.share(&mut self.strings, &self.idx);
        let keys = IndexKeys::of(&ch);
        let at = self.channels.insert(ch);
        self.idx.insert(&keys, at);
        true
    }

    /// Removes a channel found to be gone by other means (reaping, reconcile).
    pub fn remove(&mut self, call_id: &str, now: Instant) -> Option<Channel> {
        let at = self.channels.find(call_id)?;
        let ch = self.channels.remove(at);
        self.idx.remove(&IndexKeys::of(&ch), at);
        self.tombstones.insert(ch.uuid.clone(), now);
        self.tombstone_order.push_back((now, ch.uuid.clone()));
        self.strings.released();
        Some(ch)
    }

    /// Drops early events whose CREATE never came and tombstones past their TTL.
    /// Returns how many held events were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let window = self.cfg.reorder_window;
        let mut dropped = 0;
        self.pending.retain(|_, (since, evs)| {
            let keep = now.duration_since(*since) < window;
            if !keep {
                dropped += evs.len();
            }
            keep
        });
        let ttl = self.cfg.tombstone_ttl;
        while let Some((at, _)) = self.tombstone_order.front() {
            if now.duration_since(*at) < ttl {
                break;
            }
            let (at, id) = self.tombstone_order.pop_front().expect("front exists");
            // A call destroyed twice has two entries; only the newest clears it.
            if self.tombstones.get(&id) == Some(&at) {
                self.tombstones.remove(&id);
            }
        }
        dropped
    }

    /// Call ids destroyed recently (still tombstoned), for a peer's snapshot.
    pub fn destroyed(&self) -> impl Iterator<Item = &Text> {
        self.tombstones.keys()
    }

    /// Records that a call is gone (a peer saw its DESTROY): drops it if held
    /// and refuses its late events.
    pub fn bury(&mut self, call_id: &str, now: Instant) {
        if self.remove(call_id, now).is_none() && !self.tombstones.contains_key(call_id) {
            let id = Text::from(call_id);
            self.tombstones.insert(id.clone(), now);
            self.tombstone_order.push_back((now, id));
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.values().map(|(_, v)| v.len()).sum()
    }
}

#[cfg(test)]
mod registry_tests;
