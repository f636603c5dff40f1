//! Secondary indexes, so a lookup costs in proportion to its matches.

use std::collections::{HashMap, HashSet};

use super::channel::{Channel, Text};

type Set = HashSet<Text>;

#[derive(Debug, Default)]
pub struct Indexes {
    pub account: HashMap<Text, Set>,
    pub owner: HashMap<Text, Set>,
    pub authorizing: HashMap<Text, Set>,
    pub realm: HashMap<Text, Set>,
    /// Keyed by (realm, username) as stored: ecallmgr compares stored values as is.
    pub user: HashMap<(Text, Text), Set>,
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

    fn user(&self) -> Option<(Text, Text)> {
        Some((self.realm.clone()?, self.username.clone()?))
    }
}

fn add<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Set>, key: Option<K>, id: &Text) {
    if let Some(k) = key {
        map.entry(k).or_default().insert(id.clone());
    }
}

fn del<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Set>, key: Option<K>, id: &Text) {
    if let Some(k) = key
        && let Some(set) = map.get_mut(&k)
    {
        set.remove(id);
        if set.is_empty() {
            map.remove(&k);
        }
    }
}

impl Indexes {
    pub fn insert(&mut self, keys: &IndexKeys, id: &Text) {
        add(&mut self.account, keys.account_id.clone(), id);
        add(&mut self.owner, keys.owner_id.clone(), id);
        add(&mut self.authorizing, keys.authorizing_id.clone(), id);
        add(&mut self.realm, keys.realm.clone(), id);
        add(&mut self.user, keys.user(), id);
    }

    pub fn remove(&mut self, keys: &IndexKeys, id: &Text) {
        del(&mut self.account, keys.account_id.clone(), id);
        del(&mut self.owner, keys.owner_id.clone(), id);
        del(&mut self.authorizing, keys.authorizing_id.clone(), id);
        del(&mut self.realm, keys.realm.clone(), id);
        del(&mut self.user, keys.user(), id);
    }
}
