//! `channels_req` → `channels_resp` (Kazoo 5.x; `ecallmgr_fs_channels:handle_channels/2`,
//! WIRE-5.md §2): for each selector given, the matching channels keyed by
//! call id, each the requested fields of ecallmgr's `#channel` record.
//!
//! Unlike `count_req`, a device, endpoint, owner or user id names its own
//! account: `"<id>@<account-id>"`, split at the first `@` (`binary:split/2`).

use super::scoped::{Selector, select, text};
use super::wire::{QueryError, Wire};
use crate::forms::json::Obj;
use crate::forms::record::{self, FieldSet};
use crate::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelsReq {
    /// (selector, id, account) in the reply's order; for `Account` id = account.
    pub by: Vec<(Selector, String, String)>,
    pub direction: Option<String>,
    pub fields: FieldSet,
}

impl ChannelsReq {
    /// An id without `@` crashes ecallmgr (`channels_query_arg/2` makes a
    /// one-element tuple no match spec takes), and `Fields` that is not a list
    /// of names is refused: both are silence.
    pub fn parse(w: &Wire) -> Result<Self, QueryError> {
        let mut by = Vec::new();
        if let Some(account) = Selector::Account.value(w)? {
            by.push((Selector::Account, account.clone(), account));
        }
        for sel in &Selector::ALL[1..] {
            let Some(v) = sel.value(w)? else { continue };
            let Some((id, account)) = v.split_once('@') else {
                return Err(QueryError::WrongType {
                    key: sel.key(),
                    expected: "<id>@<account-id>",
                });
            };
            by.push((*sel, id.to_owned(), account.to_owned()));
        }
        let fields = match &w.fields {
            None | Some(serde_json::Value::Null) => FieldSet::default_set(),
            Some(serde_json::Value::Array(names)) => {
                let names: Option<Vec<&str>> = names.iter().map(|n| n.as_str()).collect();
                FieldSet::of(names.ok_or(QueryError::WrongType {
                    key: "Fields",
                    expected: "an array of strings",
                })?)
            }
            Some(_) => {
                return Err(QueryError::WrongType {
                    key: "Fields",
                    expected: "an array of strings",
                });
            }
        };
        Ok(Self {
            by,
            direction: text(&w.direction, "Direction")?,
            fields,
        })
    }

    /// `Channels`: `{ "<selector>": { "<call-id>": { field: value } } }`.
    pub fn write(&self, reg: &Registry, o: &mut Obj<'_>) -> usize {
        let mut n = 0;
        let mut all = Obj::open(o.key("Channels"));
        for (sel, id, account) in &self.by {
            let mut by_id = Obj::open(all.key(sel.name()));
            for ch in select(reg, *sel, account, id, self.direction.as_deref()) {
                record::write(by_id.data_key(&ch.uuid), ch, self.fields);
                n += 1;
            }
            by_id.close();
        }
        all.close();
        n
    }
}
