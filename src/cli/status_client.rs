//! `kazoo-channels status`: every running instance answers a
//! `channels`/`status_req`; one row each.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::render::render;
use crate::bus::{BusClient, Collect};
use crate::config::Settings;
use crate::kapi::asks;
use crate::kapi::envelope::APP_NAME;

pub async fn run(settings: Settings, timeout: f64, json: bool) -> ExitCode {
    let result = async {
        let client = BusClient::connect_first(&settings.brokers()?, APP_NAME).await?;
        let replies = client
            .ask(
                asks::status(),
                Collect::all(Duration::from_secs_f64(timeout)),
            )
            .await;
        client.close().await;
        replies
    }
    .await;
    match result {
        Ok(replies) if replies.is_empty() => {
            eprintln!("kazoo-channels status: no instance answered");
            ExitCode::FAILURE
        }
        Ok(replies) if json => {
            println!("{}", serde_json::to_string_pretty(&replies).expect("json"));
            ExitCode::SUCCESS
        }
        Ok(replies) => {
            print!("{}", table(&replies));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kazoo-channels status: {e}");
            ExitCode::FAILURE
        }
    }
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
        ("ZONE", "Zone"),
        ("BROKERS", "Brokers"),
        ("ADVERTISED", "Last-Advert"),
        ("WARMED_FROM", "Warmed-From"),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cell = |r: &Value, key: &str| match &r[key] {
        Value::String(s) => s.clone(),
        Value::Array(brokers) => brokers_cell(brokers),
        Value::Number(t) if key == "Last-Advert" => {
            format!(
                "{}s ago",
                now.saturating_sub(t.as_u64().unwrap_or_default())
            )
        }
        Value::Null => "-".into(),
        v => v.to_string(),
    };
    let headers: Vec<&str> = cols.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|(_, k)| cell(r, k)).collect())
        .collect();
    render(&headers, &rows)
}

/// The brokers an instance is connected to, by host and port (`!` = blocked),
/// each after its zone when the instance reaches several zones.
fn brokers_cell(brokers: &[Value]) -> String {
    let mut zones: Vec<&str> = brokers.iter().filter_map(|b| b["Zone"].as_str()).collect();
    zones.dedup();
    let zoned = zones.len() > 1;
    let up: Vec<String> = brokers
        .iter()
        .filter(|b| b["Connected"] == true)
        .map(|b| {
            let url = b["URL"].as_str().unwrap_or_default();
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            let host = host.split('/').next().unwrap_or_default();
            let blocked = if b["Blocked"] == true { "!" } else { "" };
            match b["Zone"].as_str().filter(|_| zoned) {
                Some(zone) => format!("{zone}/{host}{blocked}"),
                None => format!("{host}{blocked}"),
            }
        })
        .collect();
    if up.is_empty() {
        "-".into()
    } else {
        up.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn brokers_are_shown_by_host_with_blocked_marked() {
        let t = table(&[json!({"Node": "a@h", "Brokers": [
            {"URL": "amqp://k:***@rabbit1:5672/kz", "Connected": true, "Blocked": true},
            {"URL": "amqps://rabbit2:5671/kz", "Connected": true, "Blocked": false},
            {"URL": "amqp://rabbit3/kz", "Connected": false, "Blocked": false}
        ]})]);
        assert!(t.contains("rabbit1:5672!,rabbit2:5671"), "{t}");
        assert!(!t.contains("rabbit3") && !t.contains("***"), "{t}");
    }

    #[test]
    fn zones_and_the_last_advert_are_shown() {
        let ten_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 10;
        let t = table(&[
            json!({"Node": "a@h", "Zone": "z100", "Last-Advert": ten_ago, "Brokers": [
                {"URL": "amqp://rabbit1/kz", "Zone": "z100", "Connected": true, "Blocked": false},
                {"URL": "amqp://rabbit9/kz", "Zone": "z200", "Connected": true, "Blocked": false}
            ]}),
            json!({"Node": "b@h", "Last-Advert": null}),
        ]);
        assert!(t.contains("z100/rabbit1,z200/rabbit9"), "{t}");
        assert!(t.contains("10s ago") || t.contains("11s ago"), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("ZONE") && lines[0].contains("ADVERTISED"),
            "{t}"
        );
    }
}
