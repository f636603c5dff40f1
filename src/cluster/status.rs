//! `channels`/`status_req` → `status_resp`: answered by every instance (each binds
//! a queue of its own), so an operator sees the whole cluster.

use serde_json::{Map, Value, json};

use crate::app::state::{Outcome, State};
use crate::kapi::Request;
use crate::kapi::asks::CHANNELS_CATEGORY as CATEGORY;
use crate::stats::{Stats, Tally};

pub const RESP: &str = "status_resp";

/// This instance's counters, to the requester (no reply without a `Server-ID`).
pub fn handle(shared: &State, req: &Request) -> Outcome {
    let s = &shared.stats;
    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    put("Instance-ID", json!(shared.instance));
    put("Uptime-Seconds", json!(shared.started.elapsed().as_secs()));
    put(
        "State",
        json!(if shared.is_warm() { "warm" } else { "warming" }),
    );
    put("Warmed-From", json!(shared.warmed_from()));
    put("Channels", json!(shared.registry().len()));
    put("Events-Applied", json!(Stats::get(&s.events_applied)));
    put("Events-Rejected", json!(Stats::get(&s.events_rejected)));
    let (queries, commands) = (
        Stats::get(&s.requests_answered),
        Stats::get(&s.commands_answered),
    );
    put("Requests-Answered", json!(queries + commands));
    put("Queries-Answered", json!(queries));
    put("Commands-Answered", json!(commands));
    put("Requests-Rejected", json!(Stats::get(&s.requests_rejected)));
    put("Requests-Expired", json!(Stats::get(&s.requests_expired)));
    put("Handler-Panics", json!(Stats::get(&s.handler_panics)));
    put("Reconnects", json!(Stats::get(&s.reconnects)));
    let brokers: Vec<Value> = shared
        .broker_views()
        .into_iter()
        .map(|b| json!({"URL": b.url, "Zone": b.zone, "Connected": b.connected, "Blocked": b.blocked}))
        .collect();
    put("Brokers", Value::Array(brokers));
    put("Zone", json!(shared.settings.amqp.local_zone()));
    put("Last-Advert", json!(shared.adverts.last_unix_secs()));
    put("Channels-Reaped", json!(Stats::get(&s.channels_reaped)));
    put(
        "Channels-Reconciled",
        json!(Stats::get(&s.channels_reconciled)),
    );
    put("Replies-Too-Large", json!(Stats::get(&s.replies_too_large)));
    put("Channel-Errors", json!(Stats::get(&s.channel_errors)));
    put("Warm-Up-Channels", json!(Stats::get(&s.warmup_channels)));
    put("Warm-Up-Ms", json!(Stats::get(&s.warmup_ms)));
    let reply = req.reply(&shared.identity, CATEGORY, RESP, body).ok();
    Outcome::publish(reply.into_iter().collect(), Tally::Nothing)
}
