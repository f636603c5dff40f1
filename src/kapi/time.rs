//! Gregorian time as Erlang's `calendar` counts it: seconds since 0000-01-01.

use std::time::{SystemTime, UNIX_EPOCH};

/// Gregorian seconds at the Unix epoch (`calendar:datetime_to_gregorian_seconds({{1970,1,1},{0,0,0}})`).
pub const UNIX_EPOCH_GREGORIAN_SECS: u64 = 62_167_219_200;

fn unix_now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, in Gregorian seconds (the unit of a channel's `timestamp`).
pub fn gregorian_now_secs() -> u64 {
    unix_now().as_secs() + UNIX_EPOCH_GREGORIAN_SECS
}

/// Now, in Gregorian microseconds (the unit Kazoo puts in the AMQP `timestamp` property).
pub fn gregorian_now_micros() -> u64 {
    let d = unix_now();
    (d.as_secs() + UNIX_EPOCH_GREGORIAN_SECS) * 1_000_000 + u64::from(d.subsec_micros())
}

/// Now, in Unix microseconds (the unit of a call event's `Msg-ID` and `Channel-Created-Time`).
pub fn unix_now_micros() -> u64 {
    unix_now().as_micros() as u64
}

pub fn unix_to_gregorian_secs(unix_secs: u64) -> u64 {
    unix_secs + UNIX_EPOCH_GREGORIAN_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_converts() {
        // crossbar channels.md: timestamp 63573977746 is Unix 1406758546.
        assert_eq!(unix_to_gregorian_secs(1_406_758_546), 63_573_977_746);
    }

    #[test]
    fn now_is_gregorian() {
        let g = gregorian_now_secs();
        assert!(g > 63_800_000_000 && g < 64_500_000_000, "{g}");
        assert_eq!(gregorian_now_micros() / 1_000_000 / 10, g / 10);
    }
}
