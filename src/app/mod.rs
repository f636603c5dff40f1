//! The running whapp: [`state`] (what the handlers share), [`routes`] (which
//! queue feeds which handler, and what is counted), [`supervisor`] (connect,
//! back off, live a session), [`housekeeping`] (the periodic work),
//! [`health`] (the liveness file for container health checks) and
//! [`systemd`] (readiness notices for the packaged service).
//! Depends on every domain module; none of them depends on it but for
//! [`state`], which sits below them.

mod advert_state;
pub mod advertise;
mod bus_status;
pub mod deadline;
mod exchange_watch;
mod handled;
pub mod health;
pub mod housekeeping;
pub mod routes;
pub mod state;
pub mod supervisor;
pub mod systemd;

pub use bus_status::BusStatus;
pub use routes::COMMANDS_AT_ONCE;
pub use state::{Outcome, State};
pub use supervisor::{WorkerHandle, spawn};
