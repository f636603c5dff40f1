//! A call simulator for people without a Kazoo cluster: publishes realistic
//! Kazoo 4.3-shaped lifecycles of both legs of device-to-device calls to `callevt`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::bus::{BusError, Session, Topology};
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
    /// Spread the calls over this many accounts.
    #[arg(long, default_value_t = 3)]
    pub accounts: usize,
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

impl SimAccount {
    pub fn new(n: usize) -> Self {
        let id = hex_id();
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

/// Publishes the simulated calls at `rate` and, unless `leave_up`, hangs each up
/// after `hold_ms`. Returns when every event is confirmed by the broker.
pub async fn run(url: &str, args: &SimulateArgs) -> Result<SimulateReport, BusError> {
    let mut bus = Session::open(url, "kazoo-channels-simulator").await?;
    let mut exchanges = Topology::for_instance("simulator");
    exchanges.queues.clear();
    bus.declare(&exchanges).await?;
    let publisher = bus.publisher(1, Box::new(|| {})).await?;
    let accounts: Vec<SimAccount> = (0..args.accounts.max(1)).map(SimAccount::new).collect();

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
