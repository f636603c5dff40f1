//! `kazoo-channels query …`: a requester that sends exactly what Crossbar (or,
//! for device lookups, Kazoo's own apps) sends, and collects replies as Crossbar
//! does: a private reply queue bound to `targeted`, a fresh `Msg-ID`, replies
//! gathered until the timeout, channels merged and de-duplicated by `uuid`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::request::{Api, CATEGORY};
use crate::bus::{BusClient, BusError, Collect};
use crate::config::Settings;
use crate::kapi::encode;
use crate::kapi::time::UNIX_EPOCH_GREGORIAN_SECS;

/// Kazoo's exchange for channel queries (WIRE.md §3.0).
const CALLEVT: &str = "callevt";
/// The `App-Name` of our requests (and of our reply queue's name).
const APP_NAME: &str = "kazoo-channels-query";

#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub what: QueryKind,
    /// Seconds to wait for replies (Crossbar waits 2).
    #[arg(long, global = true, default_value_t = 2.0)]
    pub timeout: f64,
    /// Stop once this many replies are in (Crossbar stops after one per
    /// advertised ecallmgr); by default wait for the whole timeout.
    #[arg(long, global = true)]
    pub expect: Option<usize>,
    /// Print the raw replies as a JSON array instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueryKind {
    /// The channels of an account, as `GET /v2/accounts/{ACCOUNT_ID}/channels` asks.
    Account { account_id: String },
    /// The channels of SIP users of a realm, as `GET /v2/accounts/{A}/users/{U}/channels` asks.
    User {
        #[arg(long)]
        realm: String,
        #[arg(long = "username", required = true, num_args = 1..)]
        usernames: Vec<String>,
    },
    /// The channels a device authorized (`Authorizing-IDs`, as group pickup asks).
    Device { auth_id: String },
    /// The channels of a user, by owner id (`Owner-IDs`, our extension).
    Owner { owner_id: String },
    /// One channel, as `GET /v2/accounts/{A}/channels/{CALL_ID}` asks.
    Channel { call_id: String },
    /// Whether a call is up, as callflow's `channel_status_req` asks.
    Status { call_id: String },
}

/// One request, ready to publish on `callevt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub api: Api,
    pub routing_key: String,
    /// The API keys (the envelope is added when sending).
    pub body: Map<String, Value>,
    /// Crossbar returns on the first valid reply for a single channel.
    pub first_reply_wins: bool,
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("built from object literals"),
    }
}

fn status_req_key(word: &str) -> String {
    format!("call.status_req.{}", encode(word))
}

impl QueryKind {
    /// What Kazoo sends for this lookup (WIRE.md §3.1–§3.4).
    pub fn outbound(&self) -> Outbound {
        let list = |api, routing_key, body| Outbound {
            api,
            routing_key,
            body: object(body),
            first_reply_wins: false,
        };
        match self {
            QueryKind::Account { account_id } => list(
                Api::AccountChannels,
                status_req_key(account_id),
                json!({"Account-ID": account_id, "Active-Only": false, "Usernames": []}),
            ),
            QueryKind::User { realm, usernames } => {
                // Crossbar sends the sorted, unique SIP usernames; Kazoo's
                // publisher keys the request on the first of them.
                let mut names = usernames.clone();
                names.sort();
                names.dedup();
                list(
                    Api::UserChannels,
                    status_req_key(&format!("{}:{realm}", names[0])),
                    json!({"Realm": realm, "Usernames": names, "Active-Only": false}),
                )
            }
            QueryKind::Device { auth_id } => list(
                Api::UserChannels,
                status_req_key(""),
                json!({"Authorizing-IDs": [auth_id], "Active-Only": false}),
            ),
            QueryKind::Owner { owner_id } => list(
                Api::UserChannels,
                status_req_key(""),
                json!({"Owner-IDs": [owner_id], "Active-Only": false}),
            ),
            QueryKind::Channel { call_id } => Outbound {
                api: Api::Channels,
                routing_key: "call.status_req.channels".into(),
                body: object(json!({"Call-ID": call_id, "Fields": "all", "Active-Only": true})),
                first_reply_wins: true,
            },
            QueryKind::Status { call_id } => list(
                Api::ChannelStatus,
                status_req_key(call_id),
                json!({"Call-ID": call_id}),
            ),
        }
    }
}

/// Sends one request and collects its replies.
pub async fn request(
    client: &BusClient,
    out: &Outbound,
    timeout: Duration,
    expect: Option<usize>,
) -> Result<Vec<Value>, BusError> {
    let max_replies = if out.first_reply_wins {
        Some(1)
    } else {
        expect
    };
    client
        .request(
            CALLEVT,
            &out.routing_key,
            CATEGORY,
            out.api.request_name(),
            out.body.clone(),
            Collect {
                timeout,
                max_replies,
                done: None,
            },
        )
        .await
}

/// Crossbar's merge: every reply's `Channels`, de-duplicated by `uuid`, the last
/// copy winning, in first-seen order.
pub fn merge_channels(replies: &[Value]) -> Vec<Value> {
    let mut order: Vec<String> = Vec::new();
    let mut by_uuid: HashMap<String, Value> = HashMap::new();
    let listed = replies
        .iter()
        .filter_map(|r| r.get("Channels")?.as_array())
        .flatten();
    for ch in listed {
        let Some(uuid) = ch.get("uuid").and_then(Value::as_str) else {
            continue;
        };
        if by_uuid.insert(uuid.to_owned(), ch.clone()).is_none() {
            order.push(uuid.to_owned());
        }
    }
    order
        .into_iter()
        .filter_map(|u| by_uuid.remove(&u))
        .collect()
}

/// The table's columns: header, lower-case key (§4.1), capitalised key (§4.2).
const COLUMNS: [(&str, &str, &str); 10] = [
    ("uuid", "uuid", "Call-ID"),
    ("direction", "direction", "Call-Direction"),
    ("answered", "answered", "Answered"),
    ("username", "username", "Username"),
    ("destination", "destination", "Destination"),
    ("other_leg", "other_leg", "Other-Leg-Call-ID"),
    ("owner_id", "owner_id", "Owner-ID"),
    ("authorizing_id/type", "authorizing_id", "Authorizing-ID"),
    ("presence_id", "presence_id", "Presence-ID"),
    ("started", "timestamp", "Timestamp"),
];

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One table row from a channel in either form.
fn row(ch: &Value, capitalised: bool) -> Vec<String> {
    let get = |lower: &str, api: &str| ch.get(if capitalised { api } else { lower });
    COLUMNS
        .iter()
        .map(|(header, lower, api)| match *header {
            "authorizing_id/type" => format!(
                "{}/{}",
                cell(get(lower, api)),
                cell(get("authorizing_type", "Authorizing-Type"))
            ),
            "started" => get(lower, api)
                .and_then(Value::as_u64)
                .map(utc)
                .unwrap_or_else(|| "-".into()),
            _ => cell(get(lower, api)),
        })
        .collect()
}

/// Gregorian seconds as a UTC date and time.
pub fn utc(gregorian_secs: u64) -> String {
    let unix = gregorian_secs.saturating_sub(UNIX_EPOCH_GREGORIAN_SECS);
    let (days, rem) = (unix / 86_400, unix % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Left-aligned columns separated by two spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (c, w) in cells.zip(&widths) {
            s.push_str(&format!("{c:<w$}  "));
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

/// The readable form of the replies to `kind`.
pub fn table(kind: &QueryKind, replies: &[Value]) -> String {
    let headers: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    match kind {
        QueryKind::Status { .. } => {
            let headers = [
                "answered_by",
                "status",
                "switch_nodename",
                "other_leg",
                "username",
                "realm",
            ];
            let keys = [
                "Node",
                "Status",
                "Switch-Nodename",
                "Other-Leg-Call-ID",
                "Username",
                "Realm",
            ];
            let rows: Vec<Vec<String>> = replies
                .iter()
                .map(|r| keys.iter().map(|k| cell(r.get(*k))).collect())
                .collect();
            render(&headers, &rows)
        }
        QueryKind::Channel { call_id } => {
            let rows: Vec<Vec<String>> = replies
                .iter()
                .filter_map(|r| r.get("Channels")?.get(call_id))
                .map(|ch| row(ch, true))
                .collect();
            render(&headers, &rows)
        }
        _ => {
            let channels = merge_channels(replies);
            let rows: Vec<Vec<String>> = channels.iter().map(|ch| row(ch, false)).collect();
            format!("{}{} channel(s)\n", render(&headers, &rows), rows.len())
        }
    }
}

/// Runs `kazoo-channels query …`: 0 when answered, 1 when nothing answered, 2 on
/// a broker error.
pub async fn main(settings: &Settings, args: &QueryArgs) -> ExitCode {
    let timeout = Duration::from_secs_f64(args.timeout.max(0.0));
    let out = args.what.outbound();
    let replies = match BusClient::connect(&settings.amqp.url, APP_NAME).await {
        Ok(client) => {
            let r = request(&client, &out, timeout, args.expect).await;
            client.close().await;
            r
        }
        Err(e) => Err(e),
    };
    let replies = match replies {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kazoo-channels query: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&replies).expect("JSON values serialize")
        );
    } else if !replies.is_empty() {
        print!("{}", table(&args.what, &replies));
    }
    if replies.is_empty() {
        eprintln!(
            "kazoo-channels query: no {} within {:.1} s",
            out.api.reply_name(),
            timeout.as_secs_f64()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_what_kazoo_sends() {
        let acct = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let o = QueryKind::Account {
            account_id: acct.into(),
        }
        .outbound();
        assert_eq!(o.routing_key, format!("call.status_req.{acct}"));
        assert_eq!(
            Value::Object(o.body),
            json!({"Account-ID": acct, "Active-Only": false, "Usernames": []})
        );
        let o = QueryKind::User {
            realm: "account.realm.com".into(),
            usernames: vec!["user_zu0bf7".into(), "b".into(), "b".into()],
        }
        .outbound();
        assert_eq!(o.routing_key, "call.status_req.b%3Aaccount%2Erealm%2Ecom");
        assert_eq!(o.body["Usernames"], json!(["b", "user_zu0bf7"]));
        let o = QueryKind::Device {
            auth_id: "d".into(),
        }
        .outbound();
        assert_eq!(o.routing_key, "call.status_req.");
        assert_eq!(o.api, Api::UserChannels);
        let o = QueryKind::Channel {
            call_id: "a@b.c".into(),
        }
        .outbound();
        assert_eq!(o.routing_key, "call.status_req.channels");
        assert!(o.first_reply_wins);
        assert_eq!(
            Value::Object(o.body),
            json!({"Call-ID": "a@b.c", "Fields": "all", "Active-Only": true})
        );
        let o = QueryKind::Status {
            call_id: "a@b.c".into(),
        }
        .outbound();
        assert_eq!(o.routing_key, "call.status_req.a%40b%2Ec");
    }

    #[test]
    fn merge_dedupes_by_uuid_last_wins() {
        let replies = [
            json!({"Channels": [{"uuid": "1", "answered": false}, {"uuid": "2"}]}),
            json!({"Channels": [{"uuid": "1", "answered": true}]}),
            json!({"Channels": []}),
        ];
        let merged = merge_channels(&replies);
        assert_eq!(
            merged,
            vec![json!({"uuid": "1", "answered": true}), json!({"uuid": "2"})]
        );
    }

    #[test]
    fn gregorian_seconds_print_as_utc() {
        assert_eq!(utc(63_573_977_746), "2014-07-30 22:15:46");
        assert_eq!(utc(UNIX_EPOCH_GREGORIAN_SECS), "1970-01-01 00:00:00");
        assert_eq!(utc(63_869_600_000), "2023-12-12 11:33:20");
    }

    #[test]
    fn table_has_the_seed_columns() {
        let replies = [json!({"Channels": [{
            "uuid": "u1", "direction": "inbound", "answered": true, "username": "alice",
            "authorizing_id": "d1", "authorizing_type": "device", "timestamp": 63_869_600_000u64
        }]})];
        let t = table(
            &QueryKind::Account {
                account_id: "a".into(),
            },
            &replies,
        );
        let mut lines = t.lines();
        let header = lines.next().unwrap();
        for col in [
            "uuid",
            "direction",
            "answered",
            "other_leg",
            "authorizing_id/type",
            "started",
        ] {
            assert!(header.contains(col), "{header}");
        }
        let row = lines.next().unwrap();
        assert!(
            row.contains("d1/device") && row.contains("2023-12-12 11:33:20"),
            "{row}"
        );
        assert_eq!(lines.next(), Some("1 channel(s)"));
    }
}
