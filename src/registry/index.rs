//! Secondary indexes, so a lookup costs in proportion to its matches.

use super::channel::{Channel, Text};
use super::intern::{FastMap, FastSet};

/// The call ids under one index key. Most keys (a user, a device, an owner)
/// hold a channel or two: a short list costs a fraction of a hash set (at a
/// million channels, a few hundred bytes per channel over the three per-user
/// indexes) and is as quick to search at that size.
#[derive(Debug)]
pub enum Set {
    Few(Vec<Text>),
    Many(Box<FastSet<Text>>),
}

/// Past this many ids a list's linear search costs more than hashing.
const FEW: usize = 16;

impl Default for Set {
    fn default() -> Self {
        Set::Few(Vec::new())
    }
}

impl Set {
    fn insert(&mut self, id: &Text) {
        match self {
            Set::Few(v) if v.contains(id) => {}
            Set::Few(v) if v.len() < FEW => {
                v.reserve_exact(1);
                v.push(id.clone());
            }
            Set::Few(v) => {
                let mut set: FastSet<Text> = v.drain(..).collect();
                set.insert(id.clone());
                *self = Set::Many(Box::new(set));
            }
            Set::Many(set) => {
                set.insert(id.clone());
            }
        }
    }

    fn remove(&mut self, id: &Text) {
        match self {
            Set::Few(v) => {
                if let Some(i) = v.iter().position(|x| x == id) {
                    v.swap_remove(i);
                }
            }
            Set::Many(set) => {
                set.remove(id);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Set::Few(v) => v.is_empty(),
            Set::Many(set) => set.is_empty(),
        }
    }

    pub fn iter(&self) -> SetIter<'_> {
        match self {
            Set::Few(v) => SetIter::Few(v.iter()),
            Set::Many(set) => SetIter::Many(set.iter()),
        }
    }
}

pub enum SetIter<'a> {
    Few(std::slice::Iter<'a, Text>),
    Many(std::collections::hash_set::Iter<'a, Text>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = &'a Text;

    fn next(&mut self) -> Option<&'a Text> {
        match self {
            SetIter::Few(i) => i.next(),
            SetIter::Many(i) => i.next(),
        }
    }
}

impl<'a> IntoIterator for &'a Set {
    type Item = &'a Text;
    type IntoIter = SetIter<'a>;

    fn into_iter(self) -> SetIter<'a> {
        self.iter()
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

fn add(map: &mut FastMap<Text, Set>, key: &Option<Text>, id: &Text) {
    if let Some(k) = key {
        map.entry(k.clone()).or_default().insert(id);
    }
}

fn del(map: &mut FastMap<Text, Set>, key: &Option<Text>, id: &Text) {
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
    /// The key for the value of the custom variable `var`, when the variable is
    /// one the indexes are keyed by: the index's own key when the value is
    /// there (so channels and index hold one copy), else a new copy.
    /// `realm` is the channel's, for a username. `None` for other variables.
    pub fn known(&self, var: &str, value: &str, realm: Option<&str>) -> Option<Text> {
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

    pub fn insert(&mut self, keys: &IndexKeys, id: &Text) {
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

    pub fn remove(&mut self, keys: &IndexKeys, id: &Text) {
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
