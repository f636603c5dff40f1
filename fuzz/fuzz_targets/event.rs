//! Call events → decode → apply to a populated registry → query it. The input
//! is up to eight events, split at 0xFF bytes (never in UTF-8 JSON), so a
//! CREATE and its later events can meet. Every reply and snapshot part we
//! would send parses as strict JSON and validates against its schema, and a
//! snapshot merges back into an empty registry whole.
#![no_main]

use std::time::Instant;

use kazoo_channels::kapi::CallEvent;
use kazoo_channels_fuzz::{ask_all, registry, snapshot_roundtrip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reg = registry();
    for body in data.split(|b| *b == 0xFF).take(8) {
        if let Ok(ev) = CallEvent::decode(body) {
            reg.apply(ev, Instant::now());
        }
    }
    reg.expire(Instant::now());
    ask_all(&reg);
    snapshot_roundtrip(&reg);
});
