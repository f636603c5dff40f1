//! The channel on the wire, one file per form, each read and written from one
//! key table: [`lower`] (WIRE.md §4.1, the list replies), [`api`] (§4.2 and
//! §3.4, `query_channels_resp` and `channel_status_resp`, and what seeding
//! reads back), [`record`] (ecallmgr 5.x's `#channel` record names, what
//! `channels_req` answers), and [`json`], the writer all use. A new channel field touches
//! the event decoder (`kapi/event.rs`), the registry's channel
//! (`registry/channel.rs`) and the table of each form that shows it.

pub mod api;
pub mod json;
pub mod lower;
pub mod record;

use crate::registry::{Channel, Text};

fn text(v: &Option<Text>) -> Option<&str> {
    v.as_deref()
}

/// Seconds since the channel was inserted, at answer time.
fn elapsed(ch: &Channel, now_gregorian: u64) -> u64 {
    now_gregorian.saturating_sub(ch.timestamp)
}
