//! Every query and command has a deadline of its own: a requester gives up
//! after a while (Crossbar waits 2 s), and a reply after that is worse than
//! none. The queue's message TTL only drops what is still in the queue; what
//! the broker already handed us (our prefetch) ages in our buffer instead, a
//! stall of this process included. So each is timed from its AMQP timestamp
//! (see [`Incoming::age`]) and, past `queries.request_deadline_ms`, acked and
//! counted, never answered or carried out. A requester that says how long it
//! waits (the AMQP `expiration` our own requester sets) is taken at its word.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::handled::Outcome;
use crate::kapi::Incoming;
use crate::kapi::envelope::msg_id_of;
use crate::stats::Tally;

/// Expiries closer together than this are one burst, logged once.
const BURST_GAP: Duration = Duration::from_secs(1);

pub struct Deadlines {
    after: Duration,
    /// When the last request expired.
    last: Mutex<Option<Instant>>,
}

impl Deadlines {
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            last: Mutex::new(None),
        }
    }

    /// How long `msg`'s requester waits.
    fn wait(&self, msg: &Incoming) -> Duration {
        msg.expires_in.unwrap_or(self.after)
    }

    /// Whether `msg` is past its deadline now.
    pub fn passed(&self, msg: &Incoming) -> bool {
        msg.age() > self.wait(msg)
    }

    /// The instant past which `msg` must not be carried out.
    pub fn due(&self, msg: &Incoming) -> Instant {
        Instant::now() + self.wait(msg).saturating_sub(msg.age())
    }

    /// What an expired request comes to: nothing sent, counted, logged at
    /// `warn` for the first of a burst (a stall expires a whole prefetch
    /// buffer at once) and at `debug` after it.
    pub fn expired(&self, route: &'static str, msg: &Incoming) -> Outcome {
        let now = Instant::now();
        let first = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let first = last.is_none_or(|l| now.duration_since(l) > BURST_GAP);
            *last = Some(now);
            first
        };
        let age_ms = msg.age().as_millis() as u64;
        let deadline_ms = self.wait(msg).as_millis() as u64;
        if first {
            let msg_id = msg_id_of(&msg.body);
            warn!(route, msg_id, age_ms, deadline_ms, routing_key = %msg.routing_key, "requests past their deadline dropped unanswered (the worker was stalled, or the queue backed up); logged once per burst, counted as Requests-Expired");
        } else {
            debug!(
                route,
                age_ms, deadline_ms, "request past its deadline dropped unanswered"
            );
        }
        Outcome::silent(Tally::RequestExpired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kapi::time::gregorian_now_micros;

    #[test]
    fn a_request_sent_before_the_deadline_expires() {
        let d = Deadlines::new(Duration::from_millis(2000));
        let mut msg = Incoming::new("rk", br#"{"Msg-ID":"m1"}"#.to_vec());
        assert!(!d.passed(&msg));
        assert!(d.due(&msg) > Instant::now() + Duration::from_millis(1900));
        msg.sent_at = Some(gregorian_now_micros() - 2_500_000);
        assert!(d.passed(&msg));
        assert!(d.due(&msg) <= Instant::now());
        assert_eq!(d.expired("queries", &msg).tally, Tally::RequestExpired);
        assert!(d.expired("queries", &msg).publish.is_empty());
        // A requester that says it waits longer is answered for that long.
        msg.expires_in = Some(Duration::from_secs(4));
        assert!(!d.passed(&msg));
    }
}
