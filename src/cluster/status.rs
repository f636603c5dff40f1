//! `channels`/`status_req` → `status_resp`: answered by every instance (each binds
//! a queue of its own), so an operator sees the whole cluster.

use serde_json::{Map, Value, json};

use crate::kapi::Outgoing;
use crate::kapi::request::Request;
use crate::stats::Stats;
use crate::worker::Shared;

pub const CATEGORY: &str = "channels";
pub const REQ: &str = "status_req";
pub const RESP: &str = "status_resp";

pub fn reply(shared: &Shared, req: &Request) -> Option<Outgoing> {
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
    put("Requests-Answered", json!(Stats::get(&s.requests_answered)));
    put("Requests-Rejected", json!(Stats::get(&s.requests_rejected)));
    put("Reconnects", json!(Stats::get(&s.reconnects)));
    put("Channels-Reaped", json!(Stats::get(&s.channels_reaped)));
    put(
        "Channels-Reconciled",
        json!(Stats::get(&s.channels_reconciled)),
    );
    req.reply(&shared.identity, CATEGORY, RESP, body).ok()
}
