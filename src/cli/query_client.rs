//! `kazoo-channels query …`: a requester that sends exactly what Crossbar (or,
//! for device lookups, Kazoo's own apps) sends, and collects replies as Crossbar
//! does: a private reply queue bound to `targeted`, a fresh `Msg-ID`, replies
//! gathered until the timeout, channels merged and de-duplicated by `uuid`.
//! `--dialect 5` sends what Kazoo 5.1+ sends (WIRE-5.md §1).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::render::render;
use crate::bus::{BusClient, BusError, Collect};
use crate::config::Settings;
use crate::kapi::Dialect;
use crate::kapi::asks::{self, Ask};
use crate::kapi::time::UNIX_EPOCH_GREGORIAN_SECS;

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
    /// Which Kazoo to speak as: 4 (4.3/5.0: `call_event` on `callevt`) or 5
    /// (5.1+: `channel` on `channels`, routing key `query.status`).
    #[arg(long, global = true, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=5))]
    pub dialect: u8,
}

impl QueryArgs {
    pub fn dialect(&self) -> Dialect {
        if self.dialect == 5 {
            Dialect::Kazoo5
        } else {
            Dialect::Kazoo4
        }
    }
}

/// The ids a Kazoo 5.x `count_req` / `channels_req` selects by.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selectors {
    /// `Device-ID`: channels it authorized (`channels`: `ID@ACCOUNT_ID`).
    #[arg(long)]
    pub device: Option<String>,
    /// `Endpoint-ID`: channels it authorized or owns.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// `Owner-ID`: channels it owns.
    #[arg(long)]
    pub owner: Option<String>,
    /// `User-ID`: as `--owner`.
    #[arg(long)]
    pub user: Option<String>,
    /// Only channels of this direction (`inbound`, `outbound`).
    #[arg(long)]
    pub direction: Option<String>,
}

impl Selectors {
    fn ids(&self) -> Vec<(&'static str, &str)> {
        [
            ("Device-ID", &self.device),
            ("Endpoint-ID", &self.endpoint),
            ("Owner-ID", &self.owner),
            ("User-ID", &self.user),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
        .collect()
    }
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
    /// [5.x] The call ids of an endpoint's channels in an account
    /// (`query_endpoint_channels_req`), or with `--count-only` how many.
    Endpoint {
        account_id: String,
        endpoint_id: String,
        #[arg(long)]
        direction: Option<String>,
        #[arg(long)]
        count_only: bool,
    },
    /// [5.x] How many channels an account has, and of them each given id's (`count_req`).
    Count {
        account_id: String,
        #[command(flatten)]
        by: Selectors,
    },
    /// [5.x] The channels of an account and of each given `ID@ACCOUNT_ID`
    /// (`channels_req`), with ecallmgr's record fields.
    Channels {
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        by: Selectors,
        /// A `#channel` record field to return (repeat); default ecallmgr's
        /// switch_url, is_onhold, destination, other_leg.
        #[arg(long = "field")]
        fields: Vec<String>,
    },
}

/// One request, as the Kazoo app that makes it sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub ask: Ask,
    /// Crossbar returns on the first valid reply for a single channel.
    pub first_reply_wins: bool,
}

impl QueryKind {
    /// What `dialect`'s Kazoo sends for this lookup (WIRE.md §3.1–§3.4, WIRE-5.md).
    pub fn outbound(&self, dialect: Dialect) -> Outbound {
        let mut out = self.outbound4();
        out.ask = asks::in_dialect(out.ask, dialect);
        out
    }

    fn outbound4(&self) -> Outbound {
        let list = |ask| Outbound {
            ask,
            first_reply_wins: false,
        };
        match self {
            QueryKind::Account { account_id } => list(asks::account_channels(account_id)),
            QueryKind::User { realm, usernames } => list(asks::user_channels(realm, usernames)),
            QueryKind::Device { auth_id } => list(asks::device_channels(auth_id)),
            QueryKind::Owner { owner_id } => list(asks::owner_channels(owner_id)),
            QueryKind::Channel { call_id } => Outbound {
                ask: asks::channel(call_id),
                first_reply_wins: true,
            },
            QueryKind::Status { call_id } => list(asks::channel_status(call_id, None)),
            QueryKind::Endpoint {
                account_id,
                endpoint_id,
                direction,
                count_only,
            } => list(asks::endpoint_channels(
                account_id,
                endpoint_id,
                direction.as_deref(),
                *count_only,
            )),
            QueryKind::Count { account_id, by } => list(asks::scoped(
                "count_req",
                Some(account_id),
                &by.ids(),
                by.direction.as_deref(),
            )),
            QueryKind::Channels {
                account,
                by,
                fields,
            } => {
                let mut ask = asks::scoped(
                    "channels_req",
                    account.as_deref(),
                    &by.ids(),
                    by.direction.as_deref(),
                );
                if !fields.is_empty() {
                    ask.body.insert("Fields".into(), fields.clone().into());
                }
                list(ask)
            }
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
    let collect = Collect {
        timeout,
        max_replies,
        done: None,
    };
    client.ask(out.ask.clone(), collect).await
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
        QueryKind::Endpoint { .. } | QueryKind::Count { .. } | QueryKind::Channels { .. } => {
            scoped_table(kind, replies)
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

/// One row per responder (`endpoint`, `count`), or per channel (`channels`).
fn scoped_table(kind: &QueryKind, replies: &[Value]) -> String {
    let node = |r: &Value| cell(r.get("Node"));
    match kind {
        QueryKind::Count { .. } => {
            let keys = ["account", "device", "endpoint", "owner", "user"];
            let rows: Vec<Vec<String>> = replies
                .iter()
                .map(|r| {
                    let mut row = vec![node(r)];
                    row.extend(keys.iter().map(|k| cell(r["Count"].get(*k))));
                    row
                })
                .collect();
            render(
                &[
                    "answered_by",
                    "account",
                    "device",
                    "endpoint",
                    "owner",
                    "user",
                ],
                &rows,
            )
        }
        QueryKind::Channels { .. } => {
            let mut rows = Vec::new();
            for r in replies {
                let Some(by) = r.get("Channels").and_then(Value::as_object) else {
                    continue;
                };
                for (key, channels) in by {
                    for (id, ch) in channels.as_object().into_iter().flatten() {
                        rows.push(vec![node(r), key.clone(), id.clone(), ch.to_string()]);
                    }
                }
            }
            render(&["answered_by", "key", "call_id", "fields"], &rows)
        }
        _ => {
            let rows: Vec<Vec<String>> = replies
                .iter()
                .map(|r| {
                    let channels = r["Channels"].as_array().map(|c| {
                        c.iter()
                            .map(|id| cell(Some(id)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    });
                    let count = r.get("Count").map(|c| c.to_string());
                    let n = count.or_else(|| r["Channels"].as_array().map(|c| c.len().to_string()));
                    vec![
                        node(r),
                        cell(n.map(Value::String).as_ref()),
                        channels.unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            render(&["answered_by", "count", "channels"], &rows)
        }
    }
}

/// Runs `kazoo-channels query …`: 0 when answered, 1 when nothing answered, 2 on
/// a broker error.
pub async fn main(settings: &Settings, args: &QueryArgs) -> ExitCode {
    let timeout = Duration::from_secs_f64(args.timeout.max(0.0));
    let out = args.what.outbound(args.dialect());
    let client = async { BusClient::connect_first(&settings.brokers()?, APP_NAME).await };
    let replies = match client.await {
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
            out.ask.name.replace("_req", "_resp"),
            timeout.as_secs_f64()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_send_what_kazoo_sends() {
        let o = QueryKind::Channel {
            call_id: "a@b.c".into(),
        }
        .outbound(Dialect::Kazoo4);
        assert!(o.first_reply_wins);
        assert_eq!(o.ask, asks::channel("a@b.c"));
        let o = QueryKind::Device {
            auth_id: "d".into(),
        }
        .outbound(Dialect::Kazoo4);
        assert!(!o.first_reply_wins);
        assert_eq!(o.ask, asks::device_channels("d"));
        let o = QueryKind::Channels {
            account: None,
            by: Selectors {
                device: Some("d@a".into()),
                ..Default::default()
            },
            fields: vec!["uuid".into()],
        }
        .outbound(Dialect::Kazoo5);
        assert_eq!((o.ask.exchange, o.ask.category), ("channels", "channel"));
        assert_eq!(
            Value::Object(o.ask.body),
            json!({"Device-ID": "d@a", "Fields": ["uuid"]})
        );
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
