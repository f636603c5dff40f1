//! A command request → validate → check against a populated registry, with a
//! publisher that confirms without sending: the metaflow message we would
//! publish has a routing key that fits a short string and validates as kapi
//! metaflow, and the reply validates as `channels.command_resp`.
#![no_main]

use std::sync::{LazyLock, Mutex, RwLock};

use kazoo_channels::commands;
use kazoo_channels::kapi::{Identity, Outgoing, Publish, PublishError, PublishOutcome};
use kazoo_channels::registry::Registry;
use kazoo_channels_fuzz::{check_sent, registry};
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| RwLock::new(registry()));

#[derive(Default)]
struct Held(Mutex<Vec<Outgoing>>);

impl Publish for Held {
    async fn publish(&self, msg: Outgoing) -> Result<PublishOutcome, PublishError> {
        self.0.lock().expect("held").push(msg);
        Ok(PublishOutcome::Confirmed)
    }
}

fuzz_target!(|body: &[u8]| {
    let identity = Identity::new("kazoo-channels-fuzz@host");
    let held = Held::default();
    let reply = futures_executor::block_on(commands::respond(&REGISTRY, &identity, &held, body));
    for m in held.0.into_inner().expect("held") {
        assert!(
            m.routing_key.len() <= 255,
            "a routing key fits a short string"
        );
        let v = check_sent(&m.body, None);
        let name = v["Event-Name"].as_str().expect("named");
        check_sent(&m.body, Some(&format!("kapi.metaflow.{name}")));
    }
    if let Some(reply) = reply {
        assert!(
            reply.routing_key.len() <= 255,
            "a routing key fits a short string"
        );
        check_sent(&reply.body, Some("channels.command_resp"));
    }
});
