//! Kazoo's wire format: the envelope and its one reader, exchange names, the
//! requests we send, routing-key escaping, Gregorian time, schema validation
//! and the typed messages we read. No AMQP client in here: messages are
//! [`Incoming`] and [`Outgoing`], published through the [`Publish`] capability.

pub mod asks;
pub mod compress;
pub mod dialect;
pub mod envelope;
pub mod escape;
pub mod event;
pub mod exchanges;
pub mod lenient;
pub mod members;
pub mod message;
pub mod schema;
pub mod strict;
pub mod time;

pub use dialect::Dialect;
pub use envelope::{Envelope, EnvelopeError, Identity, Request, kazoo_bool, new_msg_id};
pub use escape::encode;
pub use event::{CallEvent, EventError, EventKind};
pub use message::{
    AddressError, Incoming, Outgoing, Publish, PublishError, PublishOutcome, ReplyAddress,
    RoutingKeyError,
};
