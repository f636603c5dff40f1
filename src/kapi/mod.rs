//! Kazoo's wire format: the envelope, routing-key escaping, Gregorian time and the
//! typed messages we read.

pub mod envelope;
pub mod escape;
pub mod event;
pub mod lenient;
pub mod members;
pub mod message;
pub mod request;
pub mod schema;
pub mod time;

pub use envelope::{Identity, ReplyAddress, kazoo_bool, new_msg_id};
pub use escape::encode;
pub use event::{CallEvent, EventError, EventKind};
pub use message::{Incoming, Outgoing, Publish, PublishError, PublishOutcome};
