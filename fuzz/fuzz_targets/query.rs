//! Each channel query API: request bytes → answer over a populated registry.
//! Every reply parses as JSON and validates against its schema.
#![no_main]

use std::sync::LazyLock;

use kazoo_channels::kapi::Identity;
use kazoo_channels::queries;
use kazoo_channels::registry::Registry;
use kazoo_channels_fuzz::{NOW, check_reply, registry, settings};
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<Registry> = LazyLock::new(registry);

fuzz_target!(|body: &[u8]| {
    let identity = Identity::new("kazoo-channels-fuzz@host");
    if let Ok(answer) = queries::answer_body(&REGISTRY, &identity, &settings(), body, NOW)
        && let Some(reply) = answer.reply
    {
        assert_eq!(reply.exchange, "targeted");
        assert!(
            reply.routing_key.len() <= 255,
            "a routing key fits a short string"
        );
        check_reply(&reply.body);
    }
});
