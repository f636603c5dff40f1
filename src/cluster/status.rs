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
    let (queries, commands) = (
        Stats::get(&s.requests_answered),
        Stats::get(&s.commands_answered),
    );
    put("Requests-Answered", json!(queries + commands));
    put("Queries-Answered", json!(queries));
    put("Commands-Answered", json!(commands));
    put("Requests-Rejected", json!(Stats::get(&s.requests_rejected)));
    put("Reconnects", json!(Stats::get(&s.reconnects)));
    put("Channels-Reaped", json!(Stats::get(&s.channels_reaped)));
    put(
        "Channels-Reconciled",
        json!(Stats::get(&s.channels_reconciled)),
    );
    req.reply(&shared.identity, CATEGORY, RESP, body).ok()
}

/// One row per instance, sorted by node, for `kazoo-channels status`.
pub fn table(replies: &[Value]) -> String {
    let mut rows: Vec<&Value> = replies.iter().collect();
    rows.sort_by_key(|r| r["Node"].as_str().unwrap_or_default().to_owned());
    let cols = [
        ("NODE", "Node"),
        ("STATE", "State"),
        ("CHANNELS", "Channels"),
        ("UPTIME_S", "Uptime-Seconds"),
        ("EVENTS", "Events-Applied"),
        ("REJECTED", "Events-Rejected"),
        ("ANSWERED", "Requests-Answered"),
        ("RECONNECTS", "Reconnects"),
        ("WARMED_FROM", "Warmed-From"),
    ];
    let cell = |r: &Value, key: &str| match &r[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let widths: Vec<usize> = cols
        .iter()
        .map(|(h, k)| {
            rows.iter()
                .map(|r| cell(r, k).len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut l = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    let mut out = line(cols.iter().map(|(h, _)| h.to_string()).collect());
    for r in rows {
        out += &line(cols.iter().map(|(_, k)| cell(r, k)).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_instance() {
        let t = table(&[
            json!({"Node": "b@h", "State": "warm", "Channels": 2}),
            json!({"Node": "a@h", "State": "warming", "Channels": 0}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NODE"));
        assert!(lines[1].starts_with("a@h") && lines[1].contains("warming"));
        assert!(lines[2].starts_with("b@h"));
    }
}
