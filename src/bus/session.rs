//! A worker's bus session: one connection, opened, declared, consumed and
//! closed in that order. The supervisor sees only this type; the connection
//! never leaves `bus/`.

use std::future::Future;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use lapin::{Connection, Event};
use tokio_util::sync::CancellationToken;

use super::consume::{Consume, Handler, ServeEnd, consumer};
use super::{Adopted, Broker, BusError, BusPublisher, Found, Topology, close_connection};

/// What the broker tells a session about its connection, beside deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A resource alarm (memory, disk): the broker reads nothing more from
    /// this connection once it publishes, until [`LinkEvent::Unblocked`].
    Blocked(String),
    Unblocked,
}

pub struct Session {
    conn: Arc<Connection>,
    /// Publishers opened on this session, closed with it.
    publishers: Vec<BusPublisher>,
}

impl Session {
    /// Connects under `connection_name` (shown by `rabbitmqctl list_connections`).
    pub async fn open(broker: &Broker, connection_name: &str) -> Result<Self, BusError> {
        Ok(Self {
            conn: Arc::new(broker.connect(connection_name).await?),
            publishers: Vec::new(),
        })
    }

    /// The connection's blocked/unblocked notices, as they come.
    pub fn link_events(&self) -> impl Stream<Item = LinkEvent> + Send + Unpin + 'static {
        self.conn.events_listener().filter_map(|e| {
            std::future::ready(match e {
                Event::ConnectionBlocked(reason) => Some(LinkEvent::Blocked(reason)),
                Event::ConnectionUnblocked => Some(LinkEvent::Unblocked),
                _ => None,
            })
        })
    }

    /// Whether a queue exists, asked on a throwaway channel (a passive declare
    /// of a missing queue closes the channel it was made on).
    pub async fn queue_exists(&self, name: &str) -> Result<bool, BusError> {
        super::queue_exists(&self.conn, name).await
    }

    /// Declares every exchange, queue and binding of `topology`; a queue
    /// that exists with other flags is used as it is and returned.
    pub async fn declare(&self, topology: &Topology) -> Result<Vec<Adopted>, BusError> {
        super::adopt::declare_adopting(&self.conn, topology).await
    }

    /// Binds each binding to an exchange that is not ours (Kazoo 5.1+'s
    /// `channels`) where the exchange exists now, checked passively on a
    /// throwaway channel: (exchange, what the check found).
    pub async fn bind_passive(
        &self,
        topology: &Topology,
    ) -> Result<Vec<(String, Found)>, BusError> {
        let mut out = Vec::new();
        for (queue, exchange) in topology.passive_bindings() {
            let found = super::optional::bind_if_present(&self.conn, queue, exchange).await?;
            out.push((exchange.to_owned(), found));
        }
        Ok(out)
    }

    /// A publisher on this session with `mandatory_channels` channels for
    /// `mandatory` messages (see [`BusPublisher::open_with`]). A channel the
    /// broker closes on a refused message is replaced (`on_error` is told),
    /// so one bad message never costs the session.
    pub async fn publisher(
        &mut self,
        mandatory_channels: usize,
        on_error: Box<dyn Fn() + Send + Sync>,
    ) -> Result<BusPublisher, BusError> {
        let p = BusPublisher::reopening(&self.conn, mandatory_channels, on_error).await?;
        self.publishers.push(p.clone());
        Ok(p)
    }

    /// A consumer of one queue on a channel of its own, ready to be spawned.
    pub async fn consumer(
        &self,
        consume: Consume,
        publisher: BusPublisher,
        handler: Handler,
        shutdown: CancellationToken,
    ) -> Result<impl Future<Output = Result<ServeEnd, BusError>> + Send + 'static, BusError> {
        consumer(&self.conn, consume, publisher, handler, shutdown).await
    }

    /// Ends the session: its consumers closed their channels; the publishers'
    /// channels go before the connection.
    pub async fn close(self) {
        for p in &self.publishers {
            p.close().await;
        }
        close_connection(&self.conn).await;
    }
}
