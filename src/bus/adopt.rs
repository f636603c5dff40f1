//! Declaring our queues where one of the same name may already exist with
//! other flags: the transient queues an earlier release declared (a rolling
//! upgrade), or a classic queue where `amqp.queue_type` now says quorum.
//! RabbitMQ answers such a redeclare with `406 PRECONDITION_FAILED` and
//! closes the channel; retrying would fail the same way forever. The queue
//! that is there is used as it is (bound and consumed): its consumers and
//! ours compete for the same requests, so each is answered once, and ours
//! replaces it once the operator deletes it.

use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::{Channel, Connection};

use super::topology::{QueueDef, Topology};
use super::{BusError, bind, close_channel, declare_exchanges, declare_options, field_table};

/// A queue that exists with other flags than ours, used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub queue: String,
    /// The broker's reason, which names the flag that differs.
    pub broker_says: String,
}

/// Whether the broker refused a declare as inequivalent to what exists.
fn is_inequivalent(e: &lapin::Error) -> Option<String> {
    let lapin::ErrorKind::ProtocolError(amqp) = e.kind() else {
        return None;
    };
    let says = amqp.get_message().to_string();
    let refused = matches!(
        amqp.kind(),
        AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    );
    (refused && says.contains("inequivalent")).then_some(says)
}

/// Declares every exchange, queue and binding of `topology` over `conn`,
/// using as it is each queue that exists with other flags (see the module).
pub async fn declare_adopting(
    conn: &Connection,
    topology: &Topology,
) -> Result<Vec<Adopted>, BusError> {
    let mut ch = conn.create_channel().await?;
    let mut adopted = Vec::new();
    let declared = async {
        declare_exchanges(&ch, topology).await?;
        for q in &topology.queues {
            if let Some(broker_says) = declare_or_refused(&ch, q).await? {
                // The refusal closed the channel.
                ch = conn.create_channel().await?;
                adopted.push(Adopted {
                    queue: q.name.clone(),
                    broker_says,
                });
            }
            for b in q.bindings.iter().filter(|b| !b.passive_exchange) {
                bind(&ch, &q.name, b).await?;
            }
        }
        Ok::<_, BusError>(())
    }
    .await;
    close_channel(&ch).await;
    declared.map(|()| adopted)
}

/// Declares `q`; `Some(reason)` when a queue of that name exists with other
/// flags.
async fn declare_or_refused(ch: &Channel, q: &QueueDef) -> Result<Option<String>, BusError> {
    match ch
        .queue_declare(
            q.name.as_str().into(),
            declare_options(q),
            field_table(&q.arguments),
        )
        .await
    {
        Ok(_) => Ok(None),
        Err(e) => match is_inequivalent(&e) {
            Some(says) => Ok(Some(says)),
            None => Err(e.into()),
        },
    }
}
