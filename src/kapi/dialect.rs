//! The two generations of Kazoo's channel queries (WIRE-5.md §1): 4.3 and 5.0
//! send `call_event` on `callevt` (`call.status_req.<word>`); 5.0.55 and 5.1+
//! send `channel` on `channels` (`query.status`), and answer only that.

use super::exchanges::{CALLEVT, CHANNELS};

/// Kazoo 5.1+'s routing key for every status query.
pub const QUERY_STATUS: &str = "query.status";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Kazoo 4.3 / 5.0.
    #[default]
    Kazoo4,
    /// Kazoo 5.0.55 / 5.1+.
    Kazoo5,
}

impl Dialect {
    /// The requests' `Event-Category`, which a reply mirrors.
    pub fn category(self) -> &'static str {
        match self {
            Dialect::Kazoo4 => "call_event",
            Dialect::Kazoo5 => "channel",
        }
    }

    pub fn from_category(category: &str) -> Option<Self> {
        [Dialect::Kazoo4, Dialect::Kazoo5]
            .into_iter()
            .find(|d| d.category() == category)
    }

    /// The exchange its requests are published to.
    pub fn exchange(self) -> &'static str {
        match self {
            Dialect::Kazoo4 => CALLEVT,
            Dialect::Kazoo5 => CHANNELS,
        }
    }
}
