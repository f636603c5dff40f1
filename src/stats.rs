//! Counters an operator reads in the summary log line and the status reply.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    pub events_applied: AtomicU64,
    pub events_ignored: AtomicU64,
    pub events_rejected: AtomicU64,
    /// Channel queries answered (the five Kazoo APIs).
    pub requests_answered: AtomicU64,
    /// Channel commands answered, whatever the outcome.
    pub commands_answered: AtomicU64,
    pub requests_rejected: AtomicU64,
    pub reconnects: AtomicU64,
    /// Channels dropped for exceeding the configured maximum age.
    pub channels_reaped: AtomicU64,
    /// Channels dropped because ecallmgr reported them terminated.
    pub channels_reconciled: AtomicU64,
    pub warmups: AtomicU64,
    /// Replies not sent: over `amqp.max_message_bytes` even compressed.
    pub replies_too_large: AtomicU64,
    /// AMQP channels the broker closed (a refused publish), reopened in place.
    pub channel_errors: AtomicU64,
    /// The last warm-up: channels added, and how long it took.
    pub warmup_channels: AtomicU64,
    pub warmup_ms: AtomicU64,
}

/// What one handled delivery counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tally {
    /// Not counted (a status or snapshot reply, an event held for later, a
    /// query answered with ecallmgr's silence).
    #[default]
    Nothing,
    EventApplied,
    EventIgnored,
    EventRejected,
    QueryAnswered,
    CommandAnswered,
    RequestRejected,
    ReplyTooLarge,
}

impl Stats {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn record(&self, tally: Tally) {
        let counter = match tally {
            Tally::Nothing => return,
            Tally::EventApplied => &self.events_applied,
            Tally::EventIgnored => &self.events_ignored,
            Tally::EventRejected => &self.events_rejected,
            Tally::QueryAnswered => &self.requests_answered,
            Tally::CommandAnswered => &self.commands_answered,
            Tally::RequestRejected => &self.requests_rejected,
            Tally::ReplyTooLarge => &self.replies_too_large,
        };
        Self::inc(counter);
    }
}
