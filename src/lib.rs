//! kazoo-channels: a Kazoo whapp that keeps a live registry of call channels from
//! `callevt` events and answers Kazoo's channel queries and commands over AMQP.
//!
//! Layout: [`kapi`] is the wire format, [`registry`] the pure channel store,
//! [`bus`] the only place that touches lapin, [`worker`] wires them together.

pub mod bus;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod intake;
pub mod kapi;
pub mod logging;
pub mod queries;
pub mod registry;
pub mod simulate;
pub mod stats;
pub mod worker;

#[cfg(test)]
mod test_support;
