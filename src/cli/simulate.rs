//! A call simulator for people without a Kazoo cluster: publishes realistic
//! Kazoo 4.3-shaped lifecycles of both legs of device-to-device calls to `callevt`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::bus::{Broker, BusError, Session, Topology};
use crate::kapi::time::{gregorian_now_secs, unix_now_micros};
use crate::kapi::{Outgoing, PublishOutcome, encode};

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// How many calls (each has two legs, so two channels).
    #[arg(long, default_value_t = 100)]
    pub calls: u64,
    /// New calls per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Spread the calls over this many accounts (new ones, random ids).
    #[arg(long, default_value_t = 3)]
    pub accounts: usize,
    /// Use this account id (32 hex digits) instead of new ones; repeatable.
    /// With it, `--accounts` is not used.
    #[arg(long = "account", value_name = "ID", value_parser = account_id)]
    pub account_ids: Vec<String>,
    /// How long each call stays up before it is hung up, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub hold_ms: u64,
    /// Do not hang up: leave every channel up.
    #[arg(long)]
    pub leave_up: bool,
    /// Draw a progress bar (on when stderr is a terminal).
    #[arg(skip = true)]
    pub progress: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimulateReport {
    pub calls: u64,
    pub events: u64,
    pub destroyed_calls: u64,
    pub not_routed: u64,
}

/// A simulated account with a few devices that call each other.
#[derive(Debug, Clone)]
pub struct SimAccount {
    pub id: String,
    pub realm: String,
    pub devices: Vec<SimDevice>,
}

#[derive(Debug, Clone)]
pub struct SimDevice {
    pub id: String,
    pub owner_id: String,
    pub username: String,
    pub number: String,
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Kazoo's account ids are 32 lowercase hex digits (a CouchDB uuid).
fn account_id(s: &str) -> Result<String, String> {
    if s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(s.to_owned())
    } else {
        Err("an account id is 32 lowercase hex digits".into())
    }
}

impl SimAccount {
    pub fn new(n: usize) -> Self {
        Self::with_id(n, hex_id())
    }

    /// The `n`th account, with a given id.
    pub fn with_id(n: usize, id: String) -> Self {
        let realm = format!("{}.sim{n}.kazoo.example", &id[..6]);
        let devices = (0..10)
            .map(|d| SimDevice {
                id: hex_id(),
                owner_id: hex_id(),
                username: format!("user_{}{d}", &id[..4]),
                number: format!("{}", 1000 + d),
            })
            .collect();
        Self { id, realm, devices }
    }
}

/// One call: A-leg from one device of the account to another (the B-leg).
#[derive(Debug, Clone)]
pub struct SimCall {
    pub account: SimAccount,
    pub from: usize,
    pub to: usize,
    /// Call ids with `@` and `.`, as SIP-derived ones are, so escaping is exercised.
    pub a_leg: String,
    pub b_leg: String,
    pub started_gregorian: u64,
}

impl SimCall {
    pub fn new(account: &SimAccount, seq: u64) -> Self {
        let n = account.devices.len();
        let from = (seq as usize) % n;
        let u = uuid::Uuid::new_v4();
        Self {
            account: account.clone(),
            from,
            to: (from + 1 + (seq as usize / n) % (n - 1)) % n,
            a_leg: format!("{}@10.26.{}.{}", u.hyphenated(), seq % 250, seq % 7),
            b_leg: format!("{}-b@10.26.0.92", u.simple()),
            started_gregorian: gregorian_now_secs(),
        }
    }

    fn leg(&self, a: bool, name: &str) -> Value {
        let (me, peer, dev, other, dir) = if a {
            (
                &self.a_leg,
                &self.b_leg,
                &self.account.devices[self.from],
                &self.account.devices[self.to],
                "inbound",
            )
        } else {
            (
                &self.b_leg,
                &self.a_leg,
                &self.account.devices[self.to],
                &self.account.devices[self.from],
                "outbound",
            )
        };
        let realm = &self.account.realm;
        let answered = name != "CHANNEL_CREATE";
        let mut ccv = json!({
            "Account-ID": self.account.id,
            "Account-Realm": realm,
            "Authorizing-ID": dev.id,
            "Authorizing-Type": "device",
            "Call-Interaction-ID": format!("{}-{}", self.started_gregorian, &self.a_leg[..8]),
            "Ecallmgr-Node": "ecallmgr@sim.kazoo.example",
            "Owner-ID": dev.owner_id,
            "Presence-ID": format!("{}@{realm}", dev.username),
            "Realm": realm,
            "Username": dev.username,
        });
        if answered {
            ccv["Bridge-ID"] = json!(self.a_leg);
            ccv["Channel-Authorized"] = json!("true");
        }
        let mut v = json!({
            "App-Name": "ecallmgr",
            "App-Version": "4.0.0",
            "Call-Direction": dir,
            "Call-ID": me,
            "Caller-ID-Name": format!("Sim {}", self.account.devices[self.from].number),
            "Caller-ID-Number": self.account.devices[self.from].number,
            "Channel-Call-State": if answered { "ACTIVE" } else { "DOWN" },
            "Channel-Created-Time": unix_now_micros(),
            "Channel-Name": format!("sofia/sipinterface_1/{}@{realm}", dev.username),
            "Channel-State": if answered { "EXECUTE" } else { "NEW" },
            "Custom-Application-Vars": {},
            "Custom-Channel-Vars": ccv,
            "Custom-SIP-Headers": {},
            "Event-Category": "call_event",
            "Event-Name": name,
            "From-Tag": &me[..8],
            "Media-Server": "fs1.sim.kazoo.example",
            "Msg-ID": unix_now_micros().to_string(),
            "Node": "ecallmgr@sim.kazoo.example",
            "Presence-ID": format!("{}@{realm}", dev.username),
            "Request": format!("{}@{realm}", other.number),
            "Switch-Hostname": "fs1.sim.kazoo.example",
            "Switch-Nodename": "freeswitch@fs1.sim.kazoo.example",
            "Switch-URL": "sip:mod_sofia@10.26.0.81:5060",
            "Timestamp": gregorian_now_secs(),
            "To": format!("{}@{realm}", other.number),
        });
        if !a || name == "CHANNEL_BRIDGE" {
            v["Other-Leg-Call-ID"] = json!(peer);
        }
        if answered {
            v["To-Tag"] = json!(&peer[..8]);
        }
        if name == "CHANNEL_DESTROY" {
            v["Hangup-Cause"] = json!("NORMAL_CLEARING");
            v["Hangup-Code"] = json!("sip:200");
        }
        v
    }

    fn event(&self, a: bool, name: &str) -> Outgoing {
        let body = self.leg(a, name);
        let id = if a { &self.a_leg } else { &self.b_leg };
        Outgoing::json("callevt", format!("call.{name}.{}", encode(id)), &body)
    }

    /// These events, each for both legs, in this order.
    pub fn events(&self, names: &[&str]) -> Vec<Outgoing> {
        names
            .iter()
            .flat_map(|n| [self.event(true, n), self.event(false, n)])
            .collect()
    }

    /// CREATE both legs, ANSWER both, BRIDGE both: the call is up.
    pub fn setup_events(&self) -> Vec<Outgoing> {
        self.events(&["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE"])
    }

    pub fn teardown_events(&self) -> Vec<Outgoing> {
        vec![
            self.event(false, "CHANNEL_DESTROY"),
            self.event(true, "CHANNEL_DESTROY"),
        ]
    }
}

/// The accounts a run uses: those given with `--account`, else `accounts` new ones.
pub fn accounts_for(args: &SimulateArgs) -> Vec<SimAccount> {
    if args.account_ids.is_empty() {
        (0..args.accounts.max(1)).map(SimAccount::new).collect()
    } else {
        args.account_ids
            .iter()
            .enumerate()
            .map(|(n, id)| SimAccount::with_id(n, id.clone()))
            .collect()
    }
}

/// What the simulator tells before it starts: each account (id and realm) and
/// a query to paste, so the calls can be found.
pub fn announce(args: &SimulateArgs, accounts: &[SimAccount]) -> String {
    let mut out = format!(
        "simulating {} calls over {} account(s):\n",
        args.calls,
        accounts.len()
    );
    for a in accounts {
        out.push_str(&format!("  account {}  realm {}\n", a.id, a.realm));
    }
    if let Some(a) = accounts.first() {
        out.push_str(&format!(
            "see them with: kazoo-channels query account {}\n",
            a.id
        ));
    }
    out
}

/// Publishes the simulated calls over [`accounts_for`] `args`.
pub async fn run(url: &str, args: &SimulateArgs) -> Result<SimulateReport, BusError> {
    run_accounts(url, args, &accounts_for(args)).await
}

/// Publishes the simulated calls at `rate`, round-robin over `accounts`, and,
/// unless `leave_up`, hangs each up after `hold_ms`. Returns when every event is
/// confirmed by the broker.
pub async fn run_accounts(
    url: &str,
    args: &SimulateArgs,
    accounts: &[SimAccount],
) -> Result<SimulateReport, BusError> {
    if accounts.is_empty() {
        return Ok(SimulateReport::default());
    }
    let mut bus = Session::open(&Broker::plain(url)?, "kazoo-channels-simulator").await?;
    let mut exchanges = Topology::for_instance("simulator");
    exchanges.queues.clear();
    bus.declare(&exchanges).await?;
    let publisher = bus.publisher(1, Box::new(|| {})).await?;

    let bar = if args.progress {
        let total = if args.leave_up {
            args.calls
        } else {
            args.calls * 2
        };
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message("calls up / hung up");
        b
    } else {
        ProgressBar::hidden()
    };

    let mut report = SimulateReport::default();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let hold = Duration::from_millis(args.hold_ms);
    let mut hangups: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut live: std::collections::HashMap<u64, SimCall> = Default::default();
    let mut next = 0u64;
    loop {
        let next_start = (next < args.calls).then(|| start + interval.mul_f64(next as f64));
        let next_hangup = hangups.peek().map(|Reverse((t, _))| *t);
        let (at, is_start) = match (next_start, next_hangup) {
            (None, None) => break,
            (Some(s), None) => (s, true),
            (None, Some(h)) => (h, false),
            (Some(s), Some(h)) => {
                if s <= h {
                    (s, true)
                } else {
                    (h, false)
                }
            }
        };
        tokio::time::sleep_until(at).await;
        let msgs = if is_start {
            let call = SimCall::new(&accounts[(next as usize) % accounts.len()], next);
            let msgs = call.setup_events();
            if !args.leave_up {
                hangups.push(Reverse((Instant::now() + hold, next)));
                live.insert(next, call);
            }
            next += 1;
            report.calls += 1;
            msgs
        } else {
            let Reverse((_, id)) = hangups.pop().expect("peeked");
            report.destroyed_calls += 1;
            live.remove(&id)
                .map(|c| c.teardown_events())
                .unwrap_or_default()
        };
        report.events += msgs.len() as u64;
        for o in publisher.send_all(&msgs).await? {
            if o != PublishOutcome::Confirmed {
                report.not_routed += 1;
            }
        }
        bar.inc(1);
    }
    bar.finish();
    bus.close().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimulateArgs,
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied())).map(|c| c.sim)
    }

    const A: &str = "0d1f7a2c9b8e4f60a1b2c3d4e5f60718";
    const B: &str = "3a1b2c3d4e5f60718293a4b5c6d7e8f9";

    #[test]
    fn given_accounts_are_used_in_order_instead_of_new_ones() {
        let args = parse(&["--account", A, "--account", B, "--accounts", "7"]).unwrap();
        let accounts = accounts_for(&args);
        let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, [A, B]);
        assert_ne!(accounts[0].realm, accounts[1].realm);
        assert!(accounts[0].realm.starts_with(&A[..6]));
        // Without --account: that many new, distinct accounts.
        let fresh = accounts_for(&parse(&["--accounts", "4"]).unwrap());
        assert_eq!(fresh.len(), 4);
        assert!(fresh.iter().all(|a| account_id(&a.id).is_ok()));
    }

    #[test]
    fn an_account_id_is_32_lowercase_hex_digits() {
        assert!(parse(&["--account", "not-an-id"]).is_err());
        assert!(parse(&["--account", &A.to_uppercase()]).is_err());
        assert!(parse(&["--account", &A[..31]]).is_err());
    }

    #[test]
    fn the_announcement_names_every_account_and_a_query_to_paste() {
        let args = parse(&["--calls", "200", "--account", A, "--account", B]).unwrap();
        let accounts = accounts_for(&args);
        let text = announce(&args, &accounts);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "simulating 200 calls over 2 account(s):");
        for (line, a) in lines[1..3].iter().zip(&accounts) {
            assert_eq!(
                line.split_whitespace().collect::<Vec<_>>(),
                ["account", &a.id, "realm", &a.realm]
            );
        }
        assert_eq!(
            lines[3],
            format!("see them with: kazoo-channels query account {A}")
        );
    }
}
