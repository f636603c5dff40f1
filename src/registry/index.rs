//! Secondary indexes, so a lookup costs in proportion to its matches.

use super::channel::Channel;
use super::text::{FastMap, FastSet, Id, KnownKeys, Text};

/// The channels under one index key. Most keys (a user, a device, an owner)
/// hold a channel or two, kept in the set itself: an allocation apiece cost
/// more than the ids (at a million channels, some fifty bytes per channel over
/// the three per-user indexes), and a short list is as quick to search.
#[derive(Debug)]
pub enum Set {
    Few(u8, [Id; FEW]),
    Many(Box<FastSet<Id>>),
}

/// As many ids as fit beside the tag in the word a `Many` needs anyway.
const FEW: usize = 4;

impl Default for Set {
    fn default() -> Self {
        Set::Few(0, [0; FEW])
    }
}

impl Set {
    fn insert(&mut self, id: Id) {
        match self {
            Set::Few(n, ids) if ids[..usize::from(*n)].contains(&id) => {}
            Set::Few(n, ids) if usize::from(*n) < FEW => {
                ids[usize::from(*n)] = id;
                *n += 1;
            }
            Set::Few(_, ids) => {
                let mut set: FastSet<Id> = ids.iter().copied().collect();
                set.insert(id);
                *self = Set::Many(Box::new(set));
            }
            Set::Many(set) => {
                set.insert(id);
            }
        }
    }

    /// The last id takes the removed one's place, as a list's `swap_remove`.
    fn remove(&mut self, id: Id) {
        match self {
            Set::Few(n, ids) => {
                let len = usize::from(*n);
                if let Some(i) = ids[..len].iter().position(|&x| x == id) {
                    ids[i] = ids[len - 1];
                    *n -= 1;
                }
            }
            Set::Many(set) => {
                set.remove(&id);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Set::Few(n, _) => *n == 0,
            Set::Many(set) => set.is_empty(),
        }
    }

    /// The ids; a large set's in slab order, so its channels are read front
    /// to back rather than in hash order across the whole slab.
    pub fn ids(&self) -> IdIter<'_> {
        match self {
            Set::Few(n, ids) => IdIter::Few(ids[..usize::from(*n)].iter()),
            Set::Many(set) => {
                let mut ids: Vec<Id> = set.iter().copied().collect();
                ids.sort_unstable();
                IdIter::Many(ids.into_iter())
            }
        }
    }
}

pub enum IdIter<'a> {
    Few(std::slice::Iter<'a, Id>),
    Many(std::vec::IntoIter<Id>),
}

impl Iterator for IdIter<'_> {
    type Item = Id;

    #[inline]
    fn next(&mut self) -> Option<Id> {
        match self {
            IdIter::Few(i) => i.next().copied(),
            IdIter::Many(i) => i.next(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Indexes {
    pub account: FastMap<Text, Set>,
    pub owner: FastMap<Text, Set>,
    pub authorizing: FastMap<Text, Set>,
    pub realm: FastMap<Text, Set>,
    /// Realm, then username, as stored: ecallmgr compares stored values as is.
    /// Two levels, so a lookup by two borrowed strings needs no key built.
    pub user: FastMap<Text, FastMap<Text, Set>>,
}

/// The values a channel is indexed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKeys {
    account_id: Option<Text>,
    owner_id: Option<Text>,
    authorizing_id: Option<Text>,
    realm: Option<Text>,
    username: Option<Text>,
}

impl IndexKeys {
    /// Whether `ch` is still indexed by these keys: most updates change none,
    /// and comparing spares cloning them all a second time.
    pub fn same_as(&self, ch: &Channel) -> bool {
        self.account_id == ch.account_id
            && self.owner_id == ch.owner_id
            && self.authorizing_id == ch.authorizing_id
            && self.realm == ch.realm
            && self.username == ch.username
    }

    pub fn of(ch: &Channel) -> Self {
        Self {
            account_id: ch.account_id.clone(),
            owner_id: ch.owner_id.clone(),
            authorizing_id: ch.authorizing_id.clone(),
            realm: ch.realm.clone(),
            username: ch.username.clone(),
        }
    }
}

fn add(map: &mut FastMap<Text, Set>, key: &Option<Text>, id: Id) {
    if let Some(k) = key {
        map.entry(k.clone()).or_default().insert(id);
    }
}

fn del(map: &mut FastMap<Text, Set>, key: &Option<Text>, id: Id) {
    if let Some(k) = key
        && let Some(set) = map.get_mut(k)
    {
        set.remove(id);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

impl Indexes {
    pub fn insert(&mut self, keys: &IndexKeys, id: Id) {
        add(&mut self.account, &keys.account_id, id);
        add(&mut self.owner, &keys.owner_id, id);
        add(&mut self.authorizing, &keys.authorizing_id, id);
        add(&mut self.realm, &keys.realm, id);
        if let (Some(realm), Some(_)) = (&keys.realm, &keys.username) {
            add(
                self.user.entry(realm.clone()).or_default(),
                &keys.username,
                id,
            );
        }
    }

    pub fn remove(&mut self, keys: &IndexKeys, id: Id) {
        del(&mut self.account, &keys.account_id, id);
        del(&mut self.owner, &keys.owner_id, id);
        del(&mut self.authorizing, &keys.authorizing_id, id);
        del(&mut self.realm, &keys.realm, id);
        if let Some(realm) = &keys.realm
            && let Some(users) = self.user.get_mut(realm)
        {
            del(users, &keys.username, id);
            if users.is_empty() {
                self.user.remove(realm);
            }
        }
    }
}

impl KnownKeys for Indexes {
    fn known(&self, var: &str, value: &str, realm: Option<&str>) -> Option<Text> {
        let map = match var {
            "Account-ID" => &self.account,
            "Owner-ID" => &self.owner,
            "Authorizing-ID" => &self.authorizing,
            "Realm" => &self.realm,
            "Username" => match realm.and_then(|r| self.user.get(r)) {
                Some(users) => users,
                None => return Some(Text::from(value)),
            },
            _ => return None,
        };
        Some(
            map.get_key_value(value)
                .map_or_else(|| Text::from(value), |(k, _)| k.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_keeps_a_few_ids_inline_then_hashes() {
        assert_eq!(std::mem::size_of::<Set>(), 24);
        let mut s = Set::default();
        for id in [3, 1, 4, 1] {
            s.insert(id);
        }
        assert_eq!(s.ids().collect::<Vec<_>>(), [3, 1, 4]);
        s.remove(3);
        assert_eq!(
            s.ids().collect::<Vec<_>>(),
            [4, 1],
            "the last takes its place"
        );
        for id in [9, 7, 8, 2] {
            s.insert(id);
        }
        assert!(matches!(s, Set::Many(_)));
        assert_eq!(s.ids().collect::<Vec<_>>(), [1, 2, 4, 7, 8, 9]);
        for id in [1, 2, 4, 7, 8, 9] {
            s.remove(id);
        }
        assert!(s.is_empty());
    }
}
