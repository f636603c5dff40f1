//! Where the channels live: a slab addressed by small ids, and a call-id table
//! over it. At a million channels a map from call id to a boxed channel cost a
//! second copy of every key's pointer, a 16-byte slot per bucket and an
//! allocation per channel; here a bucket is a 4-byte id, the key is the call
//! id the channel already holds, and channels sit side by side (an index's
//! channels, visited in id order, are read front to back).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::channel::Channel;
use super::text::{Hashing, Id};

#[derive(Debug, Default)]
pub struct Channels {
    slots: Vec<Option<Channel>>,
    /// Slots emptied by removals, refilled first so the slab stays dense.
    free: Vec<Id>,
    by_call: HashTable<Id>,
    hasher: Hashing,
}

const HELD: &str = "the call-id table and the indexes name held channels only";

fn at(slots: &[Option<Channel>], id: Id) -> &Channel {
    slots[id as usize].as_ref().expect(HELD)
}

impl Channels {
    pub fn len(&self) -> usize {
        self.by_call.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_call.is_empty()
    }

    pub fn find(&self, call_id: &str) -> Option<Id> {
        let slots = &self.slots;
        self.by_call
            .find(self.hasher.hash_one(call_id), |&id| {
                at(slots, id).uuid.as_str() == call_id
            })
            .copied()
    }

    #[inline]
    pub fn get(&self, id: Id) -> &Channel {
        at(&self.slots, id)
    }

    #[inline]
    pub fn get_mut(&mut self, id: Id) -> &mut Channel {
        self.slots[id as usize].as_mut().expect(HELD)
    }

    /// Adds a channel whose call id is not held yet.
    pub fn insert(&mut self, ch: Channel) -> Id {
        let hash = self.hasher.hash_one(ch.uuid.as_str());
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(ch);
                id
            }
            None => {
                let id = Id::try_from(self.slots.len()).expect("fewer than 2^32 channels");
                self.slots.push(Some(ch));
                id
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.by_call
            .insert_unique(hash, id, |&i| hasher.hash_one(at(slots, i).uuid.as_str()));
        id
    }

    pub fn remove(&mut self, id: Id) -> Channel {
        let hash = self.hasher.hash_one(self.get(id).uuid.as_str());
        if let Ok(entry) = self.by_call.find_entry(hash, |&i| i == id) {
            entry.remove();
        }
        self.free.push(id);
        self.slots[id as usize]
            .take()
            .expect("a held channel is removed once")
    }

    /// The channels from slot `from` on, with their slots, in slab order: a
    /// snapshot reads the slab a part at a time, releasing the lock between.
    pub fn slots_from(&self, from: usize) -> impl Iterator<Item = (usize, &Channel)> {
        self.slots
            .iter()
            .enumerate()
            .skip(from)
            .filter_map(|(i, s)| s.as_ref().map(|c| (i, c)))
    }

    /// Every channel, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(call_id: &str) -> Channel {
        serde_json::from_value(serde_json::json!({
            "uuid": call_id, "channel_authorized": false, "answered": false,
            "is_onhold": false, "is_loopback": false, "precedence": 5, "timestamp": 0
        }))
        .unwrap()
    }

    #[test]
    fn ids_are_reused_and_call_ids_found() {
        let mut t = Channels::default();
        let a = t.insert(channel("a"));
        let b = t.insert(channel("b"));
        assert_eq!(
            (t.find("a"), t.find("b"), t.find("c")),
            (Some(a), Some(b), None)
        );
        assert_eq!(&*t.remove(a).uuid, "a");
        assert_eq!((t.find("a"), t.len()), (None, 1));
        let c = t.insert(channel("c"));
        assert_eq!(c, a, "a freed slot is refilled first");
        assert_eq!(t.find("c"), Some(c));
        let ids: Vec<&str> = t.iter().map(|c| c.uuid.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        for n in 0..1000 {
            t.insert(channel(&format!("call-{n}")));
        }
        assert!((0..1000).all(|n| t.find(&format!("call-{n}")).is_some()));
        assert_eq!(t.len(), 1002);
    }
}
