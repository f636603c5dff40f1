//! The registry in process (issue 6): applying call events, answering account
//! and user queries, and memory per channel, in a registry of 1,000,000
//! channels built from Kazoo 4.3-shaped events (CREATE then ANSWER for both
//! legs of every call; 100 channels per account, one account of 10,000; a realm
//! per account; every user on two channels).
//!
//! Each measurement is printed next to a baseline measured in the same run
//! (absolute times on a shared machine drift; the ratios hold better):
//! applying an event next to a bare `CallEvent::decode` of it, a query reply
//! next to a plain copy of the same bytes and to `serde_json::to_vec` of them
//! parsed. Memory is the process's resident size before and after filling,
//! divided by the channel count.
//!
//! A snapshot of the whole registry is then written as a peer streams it and
//! applied to an empty registry as a starting instance does, next to
//! gunzipping and parsing the same parts into `serde_json::Value`.
//!
//! `cargo bench --bench registry`. `REGISTRY_CHANNELS` (default 1000000) scales
//! the registry down for a quick look; the goals are for the default.
//! `REGISTRY_PROFILE_QUERIES=N` repeats the account query N more times, for a
//! profiler (`perf record`) to see mostly that.

#[path = "support/allocator.rs"]
mod allocator;

use std::hint::black_box;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use kazoo_channels::cluster::snapshot;
use kazoo_channels::kapi::compress::{self, Limits};
use kazoo_channels::kapi::{Incoming, Request};

use kazoo_channels::config::QuerySettings;
use kazoo_channels::kapi::time::gregorian_now_secs;
use kazoo_channels::kapi::{CallEvent, Identity};
use kazoo_channels::queries;
use kazoo_channels::registry::{Registry, RegistryConfig};

/// Channels in every account but the big one.
const ACCOUNT_CHANNELS: usize = 100;
/// Channels in the big account.
const BIG_CHANNELS: usize = 10_000;
/// Calls per batch when timing event application (two legs each).
const BATCH_CALLS: usize = 10_000;
const ROUNDS: usize = 3;

const APPLY_GOAL_NS: f64 = 2_000.0;
const ACCOUNT_GOAL: Duration = Duration::from_millis(5);
const USER_GOAL: Duration = Duration::from_micros(20);
const MEMORY_GOAL: f64 = 1024.0;
/// Each side of a million-channel warm-up, so the whole can be within 30 s.
const SNAPSHOT_GOAL: Duration = Duration::from_secs(15);

fn main() {
    let total: usize = std::env::var("REGISTRY_CHANNELS")
        .ok()
        .map(|v| v.parse().expect("REGISTRY_CHANNELS: a number"))
        .unwrap_or(1_000_000);
    assert!(total >= BIG_CHANNELS + ACCOUNT_CHANNELS, "too few channels");
    let began = Instant::now();
    let mut rows = Vec::new();

    // Filling: the events are written one at a time into one buffer, so the
    // resident size grows by the registry alone.
    let mut reg = Registry::new(RegistryConfig::default());
    let now = Instant::now();
    let rss_before = rss_bytes();
    let big = Account::new(0, BIG_CHANNELS / 2);
    let mut body = Vec::with_capacity(4096);
    let accounts = 1 + (total - BIG_CHANNELS) / ACCOUNT_CHANNELS;
    for a in 0..accounts {
        let acct = if a == 0 {
            big.clone()
        } else {
            Account::new(a, ACCOUNT_CHANNELS / 2)
        };
        for call in 0..acct.calls {
            for kind in [Kind::Create, Kind::Answer] {
                for leg in [Leg::A, Leg::B] {
                    acct.event(&mut body, kind, call, leg);
                    reg.apply(CallEvent::decode(&body).expect("decodes"), now);
                }
            }
        }
    }
    let rss_after = rss_bytes();
    let channels = reg.len();
    assert_eq!(
        channels,
        accounts * ACCOUNT_CHANNELS - ACCOUNT_CHANNELS + BIG_CHANNELS
    );
    let per_channel = (rss_after.saturating_sub(rss_before)) as f64 / channels as f64;
    eprintln!(
        "filled {channels} channels in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    // Applying: fresh calls in accounts of their own, so the registry stays at
    // its size; one batch decoded inside the timed loop, one decoded beforehand.
    let mut apply: Vec<[Vec<f64>; 3]> = vec![Default::default(); 4];
    for round in 0..ROUNDS {
        let base = accounts + 1 + round * 4 * BATCH_CALLS / ACCOUNT_CHANNELS;
        let with = Batch::new(base, BATCH_CALLS);
        let without = Batch::new(base + 2 * BATCH_CALLS / ACCOUNT_CHANNELS, BATCH_CALLS);
        for (k, kind) in Kind::ALL.into_iter().enumerate() {
            let bodies = with.bodies(kind);
            let t = Instant::now();
            for b in &bodies {
                reg.apply(CallEvent::decode(b).expect("decodes"), now);
            }
            apply[k][0].push(per(t.elapsed(), bodies.len()));

            let bodies = without.bodies(kind);
            let t = Instant::now();
            let events: Vec<CallEvent> = bodies
                .iter()
                .map(|b| CallEvent::decode(b).expect("decodes"))
                .collect();
            apply[k][2].push(per(t.elapsed(), bodies.len()));
            let t = Instant::now();
            for ev in events {
                reg.apply(ev, now);
            }
            apply[k][1].push(per(t.elapsed(), bodies.len()));
        }
    }
    assert_eq!(reg.len(), channels, "every batch call was destroyed");
    for (kind, [with, without, decode]) in Kind::ALL.into_iter().zip(&mut apply) {
        let (with, without, decode) = (median(with), median(without), median(decode));
        rows.push(Row {
            what: format!("apply {}, decode included", kind.name()),
            value: format!("{with:.0} ns/event"),
            baseline: format!("decode alone {decode:.0} ns"),
            goal: "< 2000 ns".into(),
            pass: with < APPLY_GOAL_NS,
        });
        rows.push(Row {
            what: format!("apply {}, decoded beforehand", kind.name()),
            value: format!("{without:.0} ns/event"),
            baseline: String::new(),
            goal: "< 2000 ns".into(),
            pass: without < APPLY_GOAL_NS,
        });
    }

    // Queries: the handler's own path, request bytes in, reply bytes out.
    let identity = Identity::new("kazoo-channels@bench");
    let settings = QuerySettings {
        system_wide_listing: false,
        ..kazoo_channels::config::Settings::defaults().queries
    };
    let account_req = request(
        "query_account_channels_req",
        &format!(
            r#""Account-ID":"{}","Usernames":[],"Active-Only":false"#,
            big.id
        ),
    );
    let reply_len = |body: &[u8]| {
        let a = queries::answer_body(&reg, &identity, &settings, body, gregorian_now_secs())
            .expect("the request decodes");
        let reply = a.reply.expect("a reply");
        (a.matched, reply.body, reply.content_encoding)
    };
    // Past `amqp.compress_above_bytes` the reply goes gzip-compressed, as the
    // worker publishes it: the baselines are of its plain JSON.
    let (matched, sent, encoding) = reply_len(&account_req);
    let reply = compress::decode(sent.clone(), encoding, 1 << 30).expect("gunzips");
    assert_eq!(matched, BIG_CHANNELS);
    let account = time(15, || {
        reply_len(&account_req);
    });
    // For a profiler: this many more account queries, nothing else measured.
    if let Some(n) = std::env::var("REGISTRY_PROFILE_QUERIES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        time(n, || {
            reply_len(&account_req);
        });
    }
    let copy = time(15, || {
        black_box(reply.to_vec());
    });
    let tree: serde_json::Value = serde_json::from_slice(&reply).expect("the reply is JSON");
    let serde = time(5, || {
        black_box(serde_json::to_vec(&tree).expect("serializes"));
    });
    let gzip = time(5, || {
        black_box(compress::fit(reply.clone(), Limits::default()).expect("fits"));
    });
    rows.push(Row {
        what: format!("account query, {BIG_CHANNELS} channels, full reply"),
        value: format!(
            "{} ({:.1} MB of JSON, {:.1} MB {})",
            show(account),
            reply.len() as f64 / 1e6,
            sent.len() as f64 / 1e6,
            encoding.unwrap_or("plain")
        ),
        baseline: format!(
            "copy {}, gzip alone {}, serde_json::to_vec {}",
            show(copy),
            show(gzip),
            show(serde)
        ),
        goal: "< 5 ms".into(),
        pass: account < ACCOUNT_GOAL,
    });
    let lookup = time(101, || {
        let found: Vec<_> = reg.by_account(&big.id).collect();
        assert_eq!(found.len(), BIG_CHANNELS);
        black_box(found);
    });
    rows.push(Row {
        what: format!("account lookup alone, {BIG_CHANNELS} channels"),
        value: show(lookup),
        baseline: String::new(),
        goal: "< 5 ms".into(),
        pass: lookup < ACCOUNT_GOAL,
    });

    let user_req = request(
        "query_user_channels_req",
        &format!(
            r#""Realm":"{}","Username":"{}","Active-Only":false"#,
            big.realm,
            big.username(7)
        ),
    );
    let (matched, reply, _) = reply_len(&user_req);
    assert_eq!(matched, 2, "a user is on two channels");
    let user = time(10_001, || {
        reply_len(&user_req);
    });
    let copy = time(10_001, || {
        black_box(reply.to_vec());
    });
    rows.push(Row {
        what: "user query, 2 channels, full reply".into(),
        value: show(user),
        baseline: format!("copy {}", show(copy)),
        goal: "< 20 µs".into(),
        pass: user < USER_GOAL,
    });
    rows.push(Row {
        what: format!("memory at {channels} channels"),
        value: format!("{per_channel:.0} B/channel"),
        baseline: format!(
            "RSS {:.0} → {:.0} MB",
            rss_before as f64 / 1e6,
            rss_after as f64 / 1e6
        ),
        goal: "≤ 1024 B".into(),
        pass: per_channel <= MEMORY_GOAL,
    });

    snapshot_rows(&reg, &identity, &mut rows);

    println!("{}", table(&rows));
    eprintln!("took {:.1} s", began.elapsed().as_secs_f64());
}

/// A peer's whole snapshot, in process: every part written (copied, JSON,
/// compressed as a starting instance asks) as the worker publishes it, then
/// applied to an empty registry (decompressed, decoded, merged) as the
/// starting instance does. The broker's share of
/// a warm-up is the `warmup` bench's.
fn snapshot_rows(reg: &Registry, identity: &Identity, rows: &mut Vec<Row>) {
    let channels = reg.len();
    // What a starting instance asks for (compact records, zstd).
    let mut ask = kazoo_channels::kapi::asks::snapshot().body;
    for (k, v) in [
        ("Msg-ID", "bench"),
        ("Server-ID", "q"),
        ("Node", "newcomer@bench"),
    ] {
        ask.insert(k.into(), v.into());
    }
    let req = Request::parse(&Incoming::new(
        "channels.snapshot",
        serde_json::to_vec(&ask).expect("serializes"),
    ))
    .expect("the request parses");
    let t = Instant::now();
    let mut producer = snapshot::Producer::new(reg, identity, &req, Limits::default());
    let mut parts = Vec::new();
    while let Some(part) = producer.copy(reg) {
        let part = producer.encode(part).expect("a part fits");
        parts.push((part.body, part.content_encoding));
    }
    let write = t.elapsed();
    let wire: usize = parts.iter().map(|(b, _)| b.len()).sum();
    let encoding = parts[0].1.unwrap_or("plain");
    let t = Instant::now();
    let bodies: Vec<Vec<u8>> = parts
        .iter()
        .map(|(b, e)| compress::decode(b.clone(), *e, 1 << 30).expect("decompresses"))
        .collect();
    let unpack = t.elapsed();
    let raw: usize = bodies.iter().map(Vec::len).sum();
    if std::env::var_os("REGISTRY_SHOW_PART").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&bodies[1][..4000]));
    }
    let t = Instant::now();
    for b in &bodies {
        black_box(serde_json::from_slice::<serde_json::Value>(b).expect("JSON"));
    }
    let tree = t.elapsed();
    let t = Instant::now();
    let mut again = Vec::with_capacity(raw);
    for b in &bodies {
        again.clear();
        again.extend_from_slice(b);
        black_box(&again);
    }
    let copy = t.elapsed();

    drop(parts);
    kazoo_channels::memory::release();
    let rss_before = rss_bytes();
    let newcomer = RwLock::new(Registry::new(RegistryConfig::default()));
    let mut receiving = snapshot::Receiving::default();
    let t = Instant::now();
    for b in &bodies {
        receiving
            .apply(&newcomer, b, Instant::now())
            .expect("applies");
    }
    let apply = t.elapsed() + unpack;
    let newcomer = newcomer.into_inner().expect("lock");
    assert!(receiving.done);
    assert_eq!(newcomer.len(), channels, "the newcomer holds every channel");
    // With the parts still held, as they were for the size before.
    kazoo_channels::memory::release();
    let per_channel = rss_bytes().saturating_sub(rss_before) as f64 / channels as f64;
    drop(bodies);
    let us = |d: Duration| d.as_secs_f64() * 1e6 / channels as f64;
    rows.push(Row {
        what: format!("snapshot of {channels} channels written: copy, JSON, {encoding}"),
        value: format!(
            "{:.2} s ({:.2} µs/channel, {:.0} B/channel on the wire)",
            write.as_secs_f64(),
            us(write),
            wire as f64 / channels as f64
        ),
        baseline: format!(
            "copying its {:.0} MB of JSON {}",
            raw as f64 / 1e6,
            show(copy)
        ),
        goal: "< 15 s".into(),
        pass: write < SNAPSHOT_GOAL,
    });
    rows.push(Row {
        what: format!(
            "snapshot applied to an empty registry: {encoding} decode, JSON decode, merge"
        ),
        value: format!("{:.2} s ({:.2} µs/channel)", apply.as_secs_f64(), us(apply)),
        baseline: format!(
            "{encoding} decode alone {}, serde_json Value of the same parts {}",
            show(unpack),
            show(tree)
        ),
        goal: "< 15 s".into(),
        pass: apply < SNAPSHOT_GOAL,
    });
    rows.push(Row {
        what: "memory of the registry built from the snapshot".into(),
        value: format!("{per_channel:.0} B/channel"),
        baseline: "its peer's: the row above".into(),
        goal: "≤ 1024 B".into(),
        pass: per_channel <= MEMORY_GOAL,
    });
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Create,
    Answer,
    Bridge,
    Destroy,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Create, Kind::Answer, Kind::Bridge, Kind::Destroy];

    fn name(self) -> &'static str {
        match self {
            Kind::Create => "CHANNEL_CREATE",
            Kind::Answer => "CHANNEL_ANSWER",
            Kind::Bridge => "CHANNEL_BRIDGE",
            Kind::Destroy => "CHANNEL_DESTROY",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Leg {
    A,
    B,
}

/// One account's calls: call `c` goes from user `c` to user `c + 1`, so every
/// user is on two channels (the A-leg of one call, the B-leg of another).
#[derive(Debug, Clone)]
struct Account {
    n: usize,
    id: String,
    realm: String,
    reseller: String,
    calls: usize,
}

impl Account {
    fn new(n: usize, calls: usize) -> Self {
        Self {
            n,
            id: format!("{:032x}", mix(n as u64) as u128 * 0x9e37_79b9),
            realm: format!(
                "{:06x}.sip.example-{}.com",
                mix(n as u64 + 1) & 0xff_ffff,
                n
            ),
            // Resellers own a few hundred accounts each.
            reseller: format!("{:032x}", mix(n as u64 / 300 + 7)),
            calls,
        }
    }

    fn username(&self, user: usize) -> String {
        format!(
            "user_{:06x}{}",
            mix((self.n << 20 | user) as u64) & 0xff_ffff,
            user
        )
    }

    fn device(&self, user: usize) -> String {
        format!(
            "{:032x}",
            mix((self.n << 20 | user) as u64 ^ 0xd1) as u128 * 7
        )
    }

    fn owner(&self, user: usize) -> String {
        format!(
            "{:032x}",
            mix((self.n << 20 | user) as u64 ^ 0x0e) as u128 * 5
        )
    }

    fn call_id(&self, call: usize, leg: Leg) -> String {
        let h = mix((self.n << 24 | call) as u64);
        match leg {
            Leg::A => format!(
                "{:08x}-{:08x}-{:08x}@10.26.{}.{}",
                h >> 32,
                h & 0xffff_ffff,
                mix(h) >> 32,
                h % 250,
                call % 250
            ),
            Leg::B => format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                h & 0xffff_ffff,
                (h >> 32) & 0xffff,
                (h >> 48) & 0xfff,
                mix(h ^ 1) & 0xfff,
                mix(h ^ 2) & 0xffff_ffff_ffff
            ),
        }
    }

    /// One event of one leg, written as Kazoo 4.3's ecallmgr sends it.
    fn event(&self, out: &mut Vec<u8>, kind: Kind, call: usize, leg: Leg) {
        use std::io::Write;
        let (caller, callee) = (call % self.calls.max(1), (call + 1) % self.calls.max(1));
        let user = if leg == Leg::A { caller } else { callee };
        let (me, peer) = match leg {
            Leg::A => (self.call_id(call, Leg::A), self.call_id(call, Leg::B)),
            Leg::B => (self.call_id(call, Leg::B), self.call_id(call, Leg::A)),
        };
        let node = mix(call as u64 ^ self.n as u64) % 8;
        let username = self.username(user);
        let realm = &self.realm;
        let direction = if leg == Leg::A { "inbound" } else { "outbound" };
        let msg_id = 1_702_380_800_000_000u64
            + match kind {
                Kind::Create => 0,
                Kind::Answer => 3_000_000,
                Kind::Bridge => 3_100_000,
                Kind::Destroy => 60_000_000,
            };
        let interaction = format!(
            "63869600000-{:08x}",
            mix(call as u64 ^ (self.n as u64) << 20) as u32
        );
        out.clear();
        write!(
            out,
            r#"{{"App-Name":"ecallmgr","App-Version":"4.3.142","Call-Direction":"{direction}","Call-ID":"{me}","Caller-ID-Name":"User {caller}","Caller-ID-Number":"{}","Channel-Call-State":"{}","Channel-Created-Time":1702380800120000,"Channel-Name":"sofia/sipinterface_1/{username}@{realm}","Channel-State":"{}","Custom-Application-Vars":{{}},"Custom-Channel-Vars":{{"Account-ID":"{}","Account-Name":"Account {}","Account-Realm":"{realm}","Authorizing-ID":"{}","Authorizing-Type":"device","#,
            1000 + caller,
            match kind {
                Kind::Create => "DOWN",
                Kind::Destroy => "HANGUP",
                _ => "ACTIVE",
            },
            match kind {
                Kind::Create => "NEW",
                Kind::Destroy => "DESTROY",
                _ => "EXECUTE",
            },
            self.id,
            self.n,
            self.device(user),
        )
        .expect("writes to a Vec");
        if !matches!(kind, Kind::Create) {
            write!(out, r#""Bridge-ID":"{}","#, self.call_id(call, Leg::A))
                .expect("writes to a Vec");
        }
        write!(out, r#""Call-Interaction-ID":"{interaction}","#).expect("writes to a Vec");
        if !matches!(kind, Kind::Create) {
            write!(
                out,
                r#""Channel-Authorized":"true","Fetch-ID":"{:08x}-9a7c-4e1b-8f3a-{:012x}","#,
                mix(call as u64) as u32,
                mix(self.n as u64 ^ call as u64) & 0xffff_ffff_ffff
            )
            .expect("writes to a Vec");
        }
        write!(
            out,
            r#""Ecallmgr-Node":"ecallmgr@kz{}.example.com","Owner-ID":"{}","Presence-ID":"{username}@{realm}","Realm":"{realm}","Reseller-ID":"{}","Username":"{username}"}},"Custom-SIP-Headers":{{}},"Event-Category":"call_event","Event-Name":"{}","From":"{}@{realm}","From-Tag":"{:010x}","From-Uri":"{}@{realm}","Media-Server":"fs{node}.example.com","Msg-ID":"{msg_id}","Node":"ecallmgr@kz{}.example.com","#,
            node % 2,
            self.owner(user),
            self.reseller,
            kind.name(),
            self.username(caller),
            mix(call as u64 ^ 0xf) & 0xff_ffff_ffff,
            self.username(caller),
            node % 2,
        )
        .expect("writes to a Vec");
        if matches!(kind, Kind::Bridge) || (leg == Leg::B && matches!(kind, Kind::Create)) {
            write!(
                out,
                r#""Other-Leg-Call-ID":"{peer}","Other-Leg-Caller-ID-Name":"User {caller}","Other-Leg-Caller-ID-Number":"{}","Other-Leg-Destination-Number":"{}","#,
                1000 + caller,
                1000 + callee
            )
            .expect("writes to a Vec");
        }
        if !matches!(kind, Kind::Create) {
            write!(
                out,
                r#""To-Tag":"{:013x}","#,
                mix(call as u64 ^ 0x7) & 0xf_ffff_ffff_ffff
            )
            .expect("writes to a Vec");
        }
        if matches!(kind, Kind::Destroy) {
            out.extend_from_slice(br#""Hangup-Cause":"NORMAL_CLEARING","Hangup-Code":"sip:200","Duration-Seconds":57,"Billing-Seconds":54,"Ringing-Seconds":3,"#);
        }
        write!(
            out,
            r#""Presence-ID":"{username}@{realm}","Request":"{}@{realm}","Switch-Hostname":"fs{node}.example.com","Switch-Nodename":"freeswitch@fs{node}.example.com","Switch-URI":"sip:10.26.0.{}:5060","Switch-URL":"sip:mod_sofia@10.26.0.{}:5060","Timestamp":{},"To":"{}@{realm}","To-Uri":"{}@{realm}"}}"#,
            1000 + callee,
            80 + node,
            80 + node,
            63_869_600_000u64 + msg_id / 1_000_000 - 1_702_380_800,
            1000 + callee,
            1000 + callee,
        )
        .expect("writes to a Vec");
    }
}

/// Fresh calls for timing: accounts of 100 channels numbered from `first`.
struct Batch {
    accounts: Vec<Account>,
}

impl Batch {
    fn new(first: usize, calls: usize) -> Self {
        let per = ACCOUNT_CHANNELS / 2;
        let accounts = (0..calls / per)
            .map(|a| Account::new(first + a, per))
            .collect();
        Self { accounts }
    }

    /// Both legs' events of every call; BRIDGE is reported on the A-leg only.
    fn bodies(&self, kind: Kind) -> Vec<Vec<u8>> {
        let legs: &[Leg] = match kind {
            Kind::Bridge => &[Leg::A],
            _ => &[Leg::A, Leg::B],
        };
        let mut out = Vec::new();
        for acct in &self.accounts {
            for call in 0..acct.calls {
                for &leg in legs {
                    let mut b = Vec::with_capacity(2048);
                    acct.event(&mut b, kind, call, leg);
                    out.push(b);
                }
            }
        }
        out
    }
}

/// A Crossbar-shaped request with `keys` added.
fn request(name: &str, keys: &str) -> Vec<u8> {
    format!(
        r#"{{"App-Name":"crossbar","App-Version":"4.3.142","Event-Category":"call_event","Event-Name":"{name}","Msg-ID":"b3d4c6a1e2f00912ab34cd56ef7890aa","Node":"crossbar@kz1.example.com","Server-ID":"crossbar@kz1.example.com-<0.31337.0>-6c1f0a2e",{keys}}}"#
    )
    .into_bytes()
}

/// splitmix64: ids that look random and are the same every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Resident set size, from /proc/self/statm (pages).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc_page_size() };
    pages * page
}

unsafe extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// `sysconf(_SC_PAGESIZE)`; `_SC_PAGESIZE` is 30 on Linux.
unsafe fn libc_page_size() -> u64 {
    // SAFETY: a plain query of a constant.
    let p = unsafe { sysconf(30) };
    if p > 0 { p as u64 } else { 4096 }
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of `n` runs of `f`, after one to warm up.
fn time(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut d: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    d.sort();
    d[n / 2]
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

struct Row {
    what: String,
    value: String,
    baseline: String,
    goal: String,
    pass: bool,
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | ours | baseline, same run | goal | |\n|:---|---:|:---|:---|:---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.what,
            r.value,
            r.baseline,
            r.goal,
            if r.pass { "pass" } else { "MISS" }
        ));
    }
    out
}
