//! A peer's snapshot part → merge into a populated registry. Whatever merges,
//! the registry's replies and its own snapshot stay strict JSON.
#![no_main]

use std::time::Instant;

use kazoo_channels::cluster::snapshot;
use kazoo_channels_fuzz::{ask_all, registry, snapshot_roundtrip};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(part) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut reg = registry();
    let _ = snapshot::apply(&mut reg, &[&part], Instant::now());
    ask_all(&reg);
    snapshot_roundtrip(&reg);
});
