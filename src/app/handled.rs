//! What a handler hands back to the routes, below everything in `app/`
//! (the state and the deadlines use it too).

use crate::kapi::Outgoing;
use crate::stats::Tally;

/// What handling one delivery came to: the messages to publish (confirmed
/// before the delivery is acked) and what to count.
#[derive(Debug, Default)]
pub struct Outcome {
    pub publish: Vec<Outgoing>,
    pub tally: Tally,
}

impl Outcome {
    /// Nothing to publish.
    pub fn silent(tally: Tally) -> Self {
        Self {
            publish: Vec::new(),
            tally,
        }
    }

    pub fn publish(publish: Vec<Outgoing>, tally: Tally) -> Self {
        Self { publish, tally }
    }
}
