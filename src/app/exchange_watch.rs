//! Kazoo 5.1+'s `channels` exchange exists only where a 5.1+ node declared it,
//! and its type is not ours to guess (WIRE-5.md §1, §4). Each session checks
//! it passively when it starts and then every `queries.kazoo5_check_secs`,
//! binding the query queue as soon as it is there, and says so once per change.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use tracing::{debug, info};

use super::state::State;
use crate::bus::{BusError, Found, Session};

#[derive(Debug, Default)]
pub struct ExchangeWatch {
    /// What the last check found, per exchange.
    last: HashMap<String, Found>,
}

impl ExchangeWatch {
    /// One passive check of every exchange the topology binds but never declares.
    pub async fn check(&mut self, state: &State, bus: &Session) -> Result<(), BusError> {
        let every = state.settings.queries.kazoo5_check_secs;
        for (exchange, found) in bus.bind_passive(&state.topology).await? {
            if self.last.insert(exchange.clone(), found) == Some(found) {
                debug!(exchange, ?found, "passive exchange check");
                continue;
            }
            match found {
                Found::Bound => info!(
                    exchange,
                    "Kazoo 5.1+ is on this broker: query queue bound, answering its channel queries"
                ),
                Found::Absent => info!(
                    exchange,
                    check_secs = every,
                    "no Kazoo 5.1+ on this broker (no exchange {exchange}); answering Kazoo 4.3/5.0 queries, checking again every {every} s"
                ),
            }
        }
        Ok(())
    }

    /// Checks every `queries.kazoo5_check_secs` until the session fails.
    pub async fn run(&mut self, state: &State, bus: &Session) -> Result<Infallible, BusError> {
        let every = Duration::from_secs(state.settings.queries.kazoo5_check_secs.max(1));
        loop {
            tokio::time::sleep(every).await;
            self.check(state, bus).await?;
        }
    }
}
