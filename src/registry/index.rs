//! Secondary indexes, so a lookup costs in proportion to its matches.

use super::channel::{Channel, Text};
use super::intern::{FastMap, FastSet};

pub type Set = FastSet<Text>;

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
        map.entry(k.clone()).or_default().insert(id.clone());
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
    pub fn insert(&mut self, keys: &IndexKeys, id: &Text) {
        add(&mut self.account, &keys.account_id, id);
        add(&mut self.owner, &keys.owner_id, id);
        add(&mut self.authorizing, &keys.authorizing_id, id);
        add(&mut self.realm, &keys.realm, id);
        if let (Some(realm), Some(_)) = (&keys.realm, &keys.username) {
            add(self.user.entry(realm.clone()).or_default(), &keys.username, id);
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
