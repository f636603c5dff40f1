//! `count_req` → `count_resp` (Kazoo 5.x; `ecallmgr_fs_channels:handle_count/2`,
//! WIRE-5.md §2): how many channels an account has, and of them how many each
//! given device, endpoint, owner or user has; all of one `Direction` if given.

use super::scoped::{Selector, select, text};
use super::wire::{QueryError, Wire};
use crate::forms::json::Obj;
use crate::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountReq {
    pub account: String,
    /// The other selectors the request gave, in the reply's order.
    pub by: Vec<(Selector, String)>,
    pub direction: Option<String>,
}

impl CountReq {
    /// Without `Account-ID` ecallmgr's `count/1` crashes (`maps:get`) and
    /// nothing is sent: [`QueryError::Missing`], so we stay silent too.
    pub fn parse(w: &Wire) -> Result<Self, QueryError> {
        let account = Selector::Account
            .value(w)?
            .ok_or(QueryError::Missing("Account-ID"))?;
        let mut by = Vec::new();
        for sel in &Selector::ALL[1..] {
            if let Some(id) = sel.value(w)? {
                by.push((*sel, id));
            }
        }
        Ok(Self {
            account,
            by,
            direction: text(&w.direction, "Direction")?,
        })
    }

    /// `Count`: one integer per selector given, `account` always.
    pub fn write(&self, reg: &Registry, o: &mut Obj<'_>) -> usize {
        let dir = self.direction.as_deref();
        let acct = self.account.as_str();
        let mut c = Obj::open(o.key("Count"));
        let n = select(reg, Selector::Account, acct, acct, dir).count();
        c.uint("account", n as u64);
        for (sel, id) in &self.by {
            c.uint(sel.name(), select(reg, *sel, acct, id, dir).count() as u64);
        }
        c.close();
        n
    }
}
