//! `query_endpoint_channels_req` → `query_endpoint_channels_resp` (Kazoo 5.x;
//! `ecallmgr_fs_channels:handle_query_endpoint_channels/2`, WIRE-5.md §2): the
//! call ids of an endpoint's channels (authorized by it, or owned by it) in one
//! account, or under `Count-Only` how many.

use super::scoped::{Selector, select, text};
use super::wire::{QueryError, Wire};
use crate::forms::json::{self, Obj};
use crate::kapi::kazoo_bool;
use crate::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointReq {
    pub account: String,
    pub endpoint: String,
    pub direction: Option<String>,
    pub count_only: bool,
}

impl EndpointReq {
    /// Both ids are required: ecallmgr would match channels with no account at
    /// all (an `undefined` in its match spec), which a reply scoped to an
    /// account must never hold (DESIGN, Tenancy).
    pub fn parse(w: &Wire) -> Result<Self, QueryError> {
        Ok(Self {
            account: Selector::Account
                .value(w)?
                .ok_or(QueryError::Missing("Account-ID"))?,
            endpoint: Selector::Endpoint
                .value(w)?
                .ok_or(QueryError::Missing("Endpoint-ID"))?,
            direction: text(&w.direction, "Direction")?,
            // `kz_json:is_true/2`: true or "true"; anything else is false.
            count_only: kazoo_bool(w.count_only.as_ref()) == Some(true),
        })
    }

    /// `Channels` (the call ids) or `Count`; the number of channels matched.
    pub fn write(&self, reg: &Registry, o: &mut Obj<'_>) -> usize {
        let found = select(
            reg,
            Selector::Endpoint,
            &self.account,
            &self.endpoint,
            self.direction.as_deref(),
        );
        if self.count_only {
            let n = found.count();
            o.uint("Count", n as u64);
            return n;
        }
        let out = o.key("Channels");
        out.push(b'[');
        let mut n = 0;
        for ch in found {
            if n > 0 {
                out.push(b',');
            }
            json::string(out, &ch.uuid);
            n += 1;
        }
        out.push(b']');
        n
    }
}
