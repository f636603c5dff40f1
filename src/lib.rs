//! kazoo-channels: a Kazoo whapp that keeps a live registry of call channels from
//! `callevt` events and answers Kazoo's channel queries and commands over AMQP.
//!
//! Layout: [`kapi`] is the wire format, [`forms`] the channel on the wire,
//! [`registry`] the pure channel store, [`intake`], [`queries`], [`commands`]
//! and [`cluster`] one bus API family each, [`bus`] the only place that touches
//! lapin, [`app`] wires them together, [`cli`] is the command line.

pub mod amqp_settings;
pub mod app;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod default_config;
pub mod forms;
pub mod intake;
pub mod kapi;
pub mod logging;
pub mod memory;
pub mod queries;
pub mod registry;
pub mod stats;
pub mod zones;

#[cfg(test)]
mod test_support;
