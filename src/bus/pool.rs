//! The connection the worker's own requests (warm-up, reconcile) share:
//! opened on demand to the broker the supervisor names (the primary, where
//! Kazoo's peers and ecallmgr listen), reused while it stays up, replaced when
//! the primary changes.

use std::sync::{Arc, Mutex};

use lapin::Connection;

use super::{Broker, BusError, close_connection};

pub struct ClientPool {
    connection_name: String,
    target: Mutex<Target>,
    /// One connection is opened at a time, so two requests share it.
    opening: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Target {
    broker: Option<Broker>,
    conn: Option<Arc<Connection>>,
}

impl ClientPool {
    pub fn new(connection_name: impl Into<String>) -> Self {
        Self {
            connection_name: connection_name.into(),
            target: Mutex::default(),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    fn target(&self) -> std::sync::MutexGuard<'_, Target> {
        self.target.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Our own requests go to `broker` from now on (None: no broker is up).
    pub fn point_at(&self, broker: Option<&Broker>) {
        let old = {
            let mut t = self.target();
            let same = match (&t.broker, broker) {
                (Some(a), Some(b)) => a.configured() == b.configured(),
                (None, None) => true,
                _ => false,
            };
            if same {
                return;
            }
            t.broker = broker.cloned();
            t.conn.take()
        };
        if let Some(conn) = old {
            tokio::spawn(async move { close_connection(&conn).await });
        }
    }

    /// The shared connection to the current broker, opened if need be.
    pub async fn get(&self) -> Result<Arc<Connection>, BusError> {
        let _one = self.opening.lock().await;
        let broker = {
            let t = self.target();
            if let Some(conn) = t.conn.as_ref().filter(|c| c.status().connected()) {
                return Ok(conn.clone());
            }
            t.broker.clone()
        };
        let broker = broker.ok_or_else(|| BusError::Pool("no broker is reachable".into()))?;
        let conn = Arc::new(broker.connect(&self.connection_name).await?);
        let mut t = self.target();
        if t.broker.as_ref().map(Broker::configured) == Some(broker.configured()) {
            t.conn = Some(conn.clone());
        }
        Ok(conn)
    }

    /// Closes the shared connection (the worker is stopping).
    pub async fn close(&self) {
        let conn = {
            let mut t = self.target();
            t.broker = None;
            t.conn.take()
        };
        if let Some(conn) = conn {
            close_connection(&conn).await;
        }
    }
}
