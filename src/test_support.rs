//! Fixtures for unit tests: the constructed Kazoo payloads in `tests/fixtures/`.

use serde_json::Value;

use crate::kapi::CallEvent;
use crate::registry::Channel;

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).expect("fixture is JSON")
}

/// The constructed 4.3 A-leg, answered, as a channel of its own.
pub fn answered_channel() -> Channel {
    let body = fixture_bytes("kazoo43.callevt.CHANNEL_ANSWER.a-leg.json");
    let ev = CallEvent::decode(&body).unwrap().into_owned();
    let mut ch = Channel::from_event(&ev, 0);
    ch.answered = true;
    ch
}

/// What a writer wrote, parsed back.
pub fn written(write: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut out = Vec::new();
    write(&mut out);
    serde_json::from_slice(&out).unwrap()
}
