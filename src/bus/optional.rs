//! Bindings to an exchange that is someone else's to declare: Kazoo 5.1+'s
//! `channels` (WIRE-5.md §1, §4). Its type and flags are Kazoo core's and not
//! public, so declaring it with a guess could make Kazoo's own declaration
//! fail with `406 PRECONDITION_FAILED`. It is only ever checked passively, on a
//! channel of its own: a passive declare of a missing exchange closes the
//! channel it was made on, and the session's channels must not go with it.

use lapin::options::ExchangeDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ExchangeKind};

use super::topology::QueueDef;
use super::{BusError, close_channel};

/// Whether a broker error says the object does not exist.
pub(crate) fn is_not_found(e: &lapin::Error) -> bool {
    let text = e.to_string();
    text.contains("NOT_FOUND") || text.contains("404")
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The exchange exists and the queue is bound to it.
    Bound,
    /// The exchange does not exist (yet).
    Absent,
}

/// Binds `queue`'s bindings to `exchange` if it exists, checking passively on
/// a throwaway channel. The queue itself is the topology's, already declared.
pub async fn bind_if_present(
    conn: &Connection,
    queue: &QueueDef,
    exchange: &str,
) -> Result<Found, BusError> {
    let ch = conn.create_channel().await?;
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // The kind is not looked at by a passive declare.
    match ch
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            passive,
            FieldTable::default(),
        )
        .await
    {
        Ok(()) => {}
        Err(e) if is_not_found(&e) => return Ok(Found::Absent),
        Err(e) => return Err(e.into()),
    }
    for b in queue
        .bindings
        .iter()
        .filter(|b| b.passive_exchange && b.exchange == exchange)
    {
        super::bind(&ch, &queue.name, b).await?;
    }
    close_channel(&ch).await;
    Ok(Found::Bound)
}
