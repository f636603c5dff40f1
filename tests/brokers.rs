//! Several brokers, as Kazoo operators run them: three independent RabbitMQ
//! nodes of this machine's own (`scripts/brokers`: kc1–kc3 on 5681–5683, TLS
//! on 5691; another set beside them with `KC_BROKERS_PREFIX` and
//! `KC_BROKERS_PORT_BASE`), stopped, killed, blocked and cut off under the
//! worker. They are not the shared broker, but the tests stop and start them,
//! so this target is not run by a plain `cargo test`: `scripts/test` runs it
//! after `faults`, one test at a time.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use common::{a_leg_event, event_msg, eventually, hex_id};
use kazoo_channels::app::{self as worker, BusStatus, WorkerHandle};
use kazoo_channels::bus::{BusClient, Collect};
use kazoo_channels::config::{BrokerMode, Settings};
use kazoo_channels::kapi::encode;
use kazoo_channels::stats::Stats;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Node {
    name: &'static str,
    port: u16,
}

/// The nodes `scripts/brokers` runs, named and numbered as it does
/// (`KC_BROKERS_PREFIX`, `KC_BROKERS_PORT_BASE`), so another checkout's set
/// can run beside this one.
fn nodes() -> &'static [Node; 3] {
    static NODES: std::sync::OnceLock<[Node; 3]> = std::sync::OnceLock::new();
    NODES.get_or_init(|| {
        let prefix = std::env::var("KC_BROKERS_PREFIX").unwrap_or_else(|_| "kc".into());
        let node = |i: u16| Node {
            name: Box::leak(format!("{prefix}{i}").into_boxed_str()),
            port: port_base() + i,
        };
        [node(1), node(2), node(3)]
    })
}

fn port_base() -> u16 {
    std::env::var("KC_BROKERS_PORT_BASE")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5680)
}

fn kc1() -> Node {
    nodes()[0]
}
fn kc2() -> Node {
    nodes()[1]
}
fn kc3() -> Node {
    nodes()[2]
}
fn tls_port() -> u16 {
    port_base() + 11
}
/// Where `scripts/brokers` keeps the test CA and certificates.
fn tls_dir() -> String {
    let dir = std::env::var("KC_BROKERS_DIR").unwrap_or_else(|_| match kc1().name {
        "kc1" => "/tmp/kazoo-channels-brokers".into(),
        first => format!(
            "/tmp/kazoo-channels-brokers-{}",
            first.trim_end_matches('1')
        ),
    });
    format!("{dir}/tls")
}

fn script(args: &[&str]) -> String {
    common::stdout_of(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/brokers")).args(args),
        &format!("scripts/brokers {args:?}"),
    )
}

/// All three nodes up (started once per run; a test that stopped one starts it again).
fn nodes_up() {
    static START: Once = Once::new();
    START.call_once(|| {
        script(&["start"]);
    });
}

fn ctl(node: Node, args: &[&str]) -> String {
    let mut all = vec!["ctl", node.name];
    all.extend_from_slice(args);
    script(&all)
}

/// Worker logs in the test's captured output (RUST_LOG, default warn).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A vhost of its own on each node, deleted when dropped.
struct Vhosts {
    name: String,
    nodes: Vec<Node>,
}

impl Vhosts {
    fn new(test: &str, nodes: &[Node]) -> Self {
        nodes_up();
        init_logging();
        let name = format!("kc-brokers-{test}-{}", &hex_id()[..8]);
        for n in nodes {
            ctl(*n, &["add_vhost", &name]);
            ctl(
                *n,
                &["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"],
            );
        }
        Self {
            name,
            nodes: nodes.to_vec(),
        }
    }

    fn url(&self, node: Node) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/{}", node.port, self.name)
    }

    fn url_via(&self, port: u16) -> String {
        format!("amqp://guest:guest@127.0.0.1:{port}/{}", self.name)
    }

    fn settings(&self, urls: Vec<String>) -> Settings {
        let mut s = Settings::defaults();
        s.amqp.url = urls.into();
        s.log.summary_interval_secs = 0;
        s.amqp.min_backoff_ms = 100;
        s.amqp.max_backoff_secs = 1;
        s.cluster.snapshot_timeout_ms = 400;
        s.cluster.seed_timeout_ms = 400;
        s
    }

    async fn client(&self, node: Node, app: &str) -> BusClient {
        BusClient::connect(&self.url(node), app)
            .await
            .expect("client connects")
    }
}

impl Drop for Vhosts {
    fn drop(&mut self) {
        for n in &self.nodes {
            let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/brokers"))
                .args(["ctl", n.name, "delete_vhost", &self.name])
                .output();
        }
    }
}

async fn started(settings: Settings) -> WorkerHandle {
    let w = worker::spawn(settings);
    assert!(
        w.wait_warm(Duration::from_secs(30)).await,
        "worker did not warm up"
    );
    w
}

/// `count` calls (A legs, created and answered) of one account, published on `node`.
async fn calls_on(vh: &Vhosts, node: Node, account: &str, count: usize) -> Vec<String> {
    let feeder = vh.client(node, "ecallmgr").await;
    let mut ids = Vec::new();
    for _ in 0..count {
        let id = format!("{}@10.26.0.91", uuid::Uuid::new_v4());
        for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
            feeder
                .publish(&event_msg(&a_leg_event(name, &id, account)))
                .await
                .expect("event published");
        }
        ids.push(id);
    }
    feeder.close().await;
    ids
}

/// Crossbar's account query on `client`'s broker: the reply's channels, or
/// None when nothing answered within Crossbar's 2 s.
async fn account_channels(client: &BusClient, account: &str) -> Option<usize> {
    let keys = json!({"Account-ID": account, "Active-Only": false, "Usernames": []});
    let replies = client
        .request(
            "callevt",
            &format!("call.status_req.{}", encode(account)),
            "call_event",
            "query_account_channels_req",
            keys.as_object().unwrap().clone(),
            Collect::first(Duration::from_secs(2)),
        )
        .await
        .ok()?;
    let r = replies.first()?;
    Some(match &r["Channels"] {
        Value::Array(a) => a.len(),
        _ => 0,
    })
}

/// The broker (redacted URL) the worker's session is on, if any.
fn on(w: &WorkerHandle) -> Option<String> {
    w.brokers().into_iter().find(|b| b.connected).map(|b| b.url)
}

fn shown(url: &str) -> String {
    kazoo_channels::config::redact_url(url)
}

/// What one requester saw of one query.
#[derive(Debug, Clone)]
struct Asked {
    sent: Instant,
    broker: usize,
    /// Channels in the reply, None when unanswered.
    channels: Option<usize>,
    took: Duration,
}

/// A Kazoo-like requester: sends its queries to the alphabetically smallest
/// broker it can reach (as every Kazoo node does), moving when that one goes
/// and coming back when it returns; `per_second` queries a second, each
/// waiting Crossbar's 2 s.
struct Load {
    asked: Arc<Mutex<Vec<Asked>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<Arc<BusClient>>>,
}

impl Load {
    fn start(urls: Vec<String>, account: String, per_second: u32) -> Self {
        let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let (rec, halt) = (asked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let clients: Arc<Mutex<Vec<Option<Arc<BusClient>>>>> =
                Arc::new(Mutex::new(vec![None; urls.len()]));
            let mut all = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            let mut probe = Instant::now() - Duration::from_secs(1);
            let mut inflight = tokio::task::JoinSet::new();
            while !halt.is_cancelled() {
                tick.tick().await;
                // Reconnect what is missing, at most once a second, preferred first.
                if probe.elapsed() >= Duration::from_secs(1) {
                    probe = Instant::now();
                    for (i, url) in urls.iter().enumerate() {
                        let missing = clients.lock().unwrap()[i].is_none();
                        if missing
                            && let Ok(Ok(c)) = tokio::time::timeout(
                                Duration::from_millis(500),
                                BusClient::connect(url, "crossbar"),
                            )
                            .await
                        {
                            let c = Arc::new(c);
                            all.push(c.clone());
                            clients.lock().unwrap()[i] = Some(c);
                        }
                    }
                }
                let pick = clients
                    .lock()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .find_map(|(i, c)| c.clone().map(|c| (i, c)));
                let Some((broker, client)) = pick else {
                    continue;
                };
                let (rec, clients, account) = (rec.clone(), clients.clone(), account.clone());
                inflight.spawn(async move {
                    let sent = Instant::now();
                    let keys =
                        json!({"Account-ID": account, "Active-Only": false, "Usernames": []});
                    let result = client
                        .request(
                            "callevt",
                            &format!("call.status_req.{}", encode(&account)),
                            "call_event",
                            "query_account_channels_req",
                            keys.as_object().unwrap().clone(),
                            Collect::first(Duration::from_secs(2)),
                        )
                        .await;
                    let channels = match result {
                        Ok(r) => r
                            .first()
                            .map(|r| r["Channels"].as_array().map_or(0, Vec::len)),
                        Err(_) => {
                            // Its broker went away: drop it until it can be reached again.
                            clients.lock().unwrap()[broker] = None;
                            None
                        }
                    };
                    rec.lock().unwrap().push(Asked {
                        sent,
                        broker,
                        channels,
                        took: sent.elapsed(),
                    });
                });
            }
            while inflight.join_next().await.is_some() {}
            all
        });
        Self { asked, stop, task }
    }

    fn asked(&self) -> Vec<Asked> {
        let mut a = self.asked.lock().unwrap().clone();
        a.sort_by_key(|a| a.sent);
        a
    }

    /// Stops and returns how many replies matched no request (late or twice).
    async fn finish(self) -> (Vec<Asked>, u64) {
        self.stop.cancel();
        let clients = self.task.await.expect("load task");
        let stray = clients.iter().map(|c| c.stray_replies()).sum();
        let mut a = self.asked.lock().unwrap().clone();
        a.sort_by_key(|a| a.sent);
        (a, stray)
    }
}

/// The first query sent after `t` that `broker` answered.
fn answered_on(asked: &[Asked], t: Instant, broker: usize) -> Option<&Asked> {
    asked
        .iter()
        .find(|a| a.sent >= t && a.broker == broker && a.channels.is_some())
}

/// The queries sent since `t`, as (broker, answered), for a failure's message.
fn since(asked: &[Asked], t: Instant) -> Vec<(usize, Option<usize>)> {
    asked
        .iter()
        .filter(|a| a.sent >= t)
        .map(|a| (a.broker, a.channels))
        .collect()
}

fn check_answers(asked: &[Asked], want: usize) {
    for a in asked {
        if let Some(n) = a.channels {
            assert_eq!(n, want, "an incomplete answer: {a:?}");
            assert!(
                a.took <= Duration::from_secs(2),
                "an answer past the deadline: {a:?}"
            );
        }
    }
}

/// Asserts that the worker is on broker `to` within `within` of now, and that
/// the requesters get an answer from it within 10 s more.
async fn moved(
    w: &WorkerHandle,
    load: &Load,
    urls: &[String],
    to: usize,
    within: Duration,
    what: &str,
) {
    let t = Instant::now();
    assert!(
        eventually(within, || on(w) == Some(shown(&urls[to]))).await,
        "{what}: not on broker {to} within {within:?}"
    );
    let took = t.elapsed();
    assert!(
        eventually(Duration::from_secs(10), || answered_on(
            &load.asked(),
            t,
            to
        )
        .is_some())
        .await,
        "{what}: no answer from broker {to}: {:?}",
        since(&load.asked(), t)
    );
    let asked = load.asked();
    let first = answered_on(&asked, t, to).expect("answered");
    eprintln!(
        "{what}: the worker on broker {to} after {took:?}; the first query it answered was sent {:?} after",
        first.sent.saturating_duration_since(t)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_follows_kazoos_primary_and_comes_back() {
    let nodes = [kc1(), kc2(), kc3()];
    let vh = Vhosts::new("failover", &nodes);
    let urls: Vec<String> = nodes.iter().map(|n| vh.url(*n)).collect();
    // Listed out of order: the primary is the alphabetically smallest, kc1.
    let w = started(vh.settings(vec![urls[2].clone(), urls[0].clone(), urls[1].clone()])).await;
    assert_eq!(on(&w), Some(shown(&urls[0])), "kc1 is Kazoo's primary");
    let account = hex_id();
    calls_on(&vh, kc1(), &account, 3).await;
    assert!(eventually(Duration::from_secs(10), || w.registry().len() == 3).await);

    let load = Load::start(urls.clone(), account.clone(), 20);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The primary's app stops: the worker and the requesters move to kc2.
    ctl(kc1(), &["stop_app"]);
    moved(&w, &load, &urls, 1, Duration::from_secs(10), "kc1 stopped").await;
    assert_eq!(w.registry().len(), 3, "the registry was kept");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // kc1 back: the worker returns to it within 30 s.
    ctl(kc1(), &["start_app"]);
    moved(&w, &load, &urls, 0, Duration::from_secs(30), "kc1 back").await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The primary's VM killed outright: the same, from a crash.
    script(&["kill", kc1().name]);
    moved(&w, &load, &urls, 1, Duration::from_secs(10), "kc1 killed").await;
    // A killed node keeps its definitions (the vhost) on disk.
    script(&["start", kc1().name]);
    moved(
        &w,
        &load,
        &urls,
        0,
        Duration::from_secs(30),
        "kc1 restarted",
    )
    .await;

    let (asked, stray) = load.finish().await;
    check_answers(&asked, 3);
    assert_eq!(
        stray, 0,
        "no reply came twice or after its requester gave up"
    );
    let answered = asked.iter().filter(|a| a.channels.is_some()).count();
    eprintln!(
        "{} queries under load, {answered} answered (each complete, none late), {} unanswered while brokers went and came",
        asked.len(),
        asked.len() - answered
    );
    assert_eq!(
        w.registry().len(),
        3,
        "the registry was kept across every move"
    );
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_consumes_every_broker_and_answers_where_asked() {
    let vh = Vhosts::new("all", &[kc1(), kc2()]);
    let (a, b) = (vh.url(kc1()), vh.url(kc2()));
    let mut s = vh.settings(vec![a.clone(), b.clone()]);
    s.amqp.brokers = BrokerMode::All;
    let w = started(s).await;
    assert!(
        all_connected(&w, Duration::from_secs(10)).await,
        "consuming from both brokers"
    );
    let account = hex_id();
    let on_a = calls_on(&vh, kc1(), &account, 2).await;
    let on_b = calls_on(&vh, kc2(), &account, 1).await;
    // ecallmgr publishing the same events on both brokers: applied once.
    let feeder = vh.client(kc2(), "ecallmgr").await;
    for id in &on_a {
        for name in ["CHANNEL_CREATE", "CHANNEL_ANSWER"] {
            feeder
                .publish(&event_msg(&a_leg_event(name, id, &account)))
                .await
                .unwrap();
        }
    }
    feeder.close().await;
    assert!(
        eventually(Duration::from_secs(10), || taken(&w) >= 10).await,
        "all ten events taken: {}",
        taken(&w)
    );
    assert_eq!(
        w.registry().len(),
        3,
        "events of both brokers in one registry, duplicates once"
    );
    for id in on_a.iter().chain(&on_b) {
        assert!(w.registry().get(id).is_some(), "{id} listed");
    }

    // Each query is answered on the broker it was asked on: the requester's
    // reply queue exists on that broker alone.
    let (ca, cb) = (
        vh.client(kc1(), "crossbar").await,
        vh.client(kc2(), "crossbar").await,
    );
    assert_eq!(
        account_channels(&cb, &account).await,
        Some(3),
        "asked on kc2, answered on kc2"
    );
    assert_eq!(
        account_channels(&ca, &account).await,
        Some(3),
        "asked on kc1, answered on kc1"
    );

    // kc2 goes: kc1 keeps answering, and kc2's call stays listed.
    cb.close().await;
    ctl(kc2(), &["stop_app"]);
    assert!(
        eventually(Duration::from_secs(10), || w
            .brokers()
            .iter()
            .filter(|b| b.connected)
            .count()
            == 1)
        .await
    );
    assert_eq!(
        account_channels(&ca, &account).await,
        Some(3),
        "kc1 answers with kc2's call kept"
    );
    ctl(kc2(), &["start_app"]);
    assert!(
        all_connected(&w, Duration::from_secs(20)).await,
        "kc2 consumed again once back"
    );
    let cb = vh.client(kc2(), "crossbar").await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            account_channels(&cb, &account).await == Some(3)
        })
        .await,
        "kc2 answers again"
    );
    no_reply_twice(ca, cb).await;
    w.shutdown().await;
}

/// Whether `w` is connected to every broker it lists within `within`.
async fn all_connected(w: &WorkerHandle, within: Duration) -> bool {
    eventually(within, || w.brokers().iter().all(|b| b.connected)).await
}

/// Two requesters' end: no request of theirs was answered twice.
async fn no_reply_twice(ca: BusClient, cb: BusClient) {
    assert_eq!(
        ca.stray_replies() + cb.stray_replies(),
        0,
        "nothing answered twice"
    );
    ca.close().await;
    cb.close().await;
}

/// Events the worker took, whatever it made of them.
fn taken(w: &WorkerHandle) -> u64 {
    let s = &w.state.stats;
    [&s.events_applied, &s.events_ignored, &s.events_rejected]
        .into_iter()
        .map(Stats::get)
        .sum()
}

async fn eventually_async<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut cond: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// `list_connections` of a node: (vhost, ssl, client properties) per connection.
fn connections(node: Node, vhost: &str) -> Vec<String> {
    ctl(
        node,
        &["list_connections", "vhost", "ssl", "client_properties"],
    )
    .lines()
    .filter(|l| l.starts_with(&format!("{vhost}\t")))
    .map(str::to_owned)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_operators_ca() {
    let vh = Vhosts::new("tls", &[kc1()]);
    let dir = tls_dir();
    let url = format!("amqps://guest:guest@localhost:{}/{}", tls_port(), vh.name);

    // amqp.tls.ca_file: connects, and the broker lists the connection under our Node.
    let mut s = vh.settings(vec![url.clone()]);
    s.amqp.tls.ca_file = format!("{dir}/ca.pem");
    s.node.name = format!("kazoo-channels-tls{}@test", &hex_id()[..6]);
    let w = started(s.clone()).await;
    let conns = connections(kc1(), &vh.name);
    assert!(
        conns
            .iter()
            .any(|c| c.contains("\ttrue\t") && c.contains(&s.node.name)),
        "a TLS connection named after the Node: {conns:#?}"
    );
    w.shutdown().await;

    // A CA that did not sign the broker's certificate: refused, retried.
    let mut wrong = s.clone();
    wrong.amqp.tls.ca_file = format!("{dir}/other-ca.pem");
    let w = worker::spawn(wrong);
    assert!(
        eventually(Duration::from_secs(10), || Stats::get(
            &w.state.stats.connect_failures
        ) >= 3)
        .await,
        "keeps retrying"
    );
    assert_ne!(w.status(), BusStatus::Connected);
    let error = w.brokers()[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "a clear reason: {error}"
    );
    assert!(
        !error.contains("guest:guest"),
        "no credentials in the error: {error}"
    );
    w.shutdown().await;

    // Kazoo's own URI form: the files as query parameters, with a client certificate.
    let kazoo = format!(
        "{url}?cacertfile={dir}/ca.pem&certfile={dir}/client.pem&keyfile={dir}/client.key&verify=verify_peer"
    );
    let w = started(vh.settings(vec![kazoo])).await;
    assert_eq!(w.status(), BusStatus::Connected);
    w.shutdown().await;
}

/// A TCP proxy that can stop forwarding without closing anything: a broker
/// behind a dead link, or a stalled load balancer.
struct Proxy {
    frozen: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(listen: u16, to: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", listen))
            .await
            .expect("proxy port free");
        let (frozen, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                tokio::spawn(pipe(cr, uw, rx.clone()));
                tokio::spawn(pipe(ur, cw, rx.clone()));
            }
        });
        Self { frozen, task }
    }

    fn freeze(&self, frozen: bool) {
        let _ = self.frozen.send(frozen);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Frozen: read nothing, write nothing, close nothing.
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_is_left_within_two_heartbeats() {
    let vh = Vhosts::new("halfopen", &[kc2(), kc3()]);
    let proxy = Proxy::start(port_base() + 15, kc2().port).await;
    // 127.0.0.1 sorts before localhost: the proxied broker is the primary.
    let via_proxy = vh.url_via(port_base() + 15);
    let direct = format!("amqp://guest:guest@localhost:{}/{}", kc3().port, vh.name);
    let mut s = vh.settings(vec![direct.clone(), via_proxy.clone()]);
    s.amqp.heartbeat_secs = 2;
    let w = started(s).await;
    assert_eq!(on(&w), Some(shown(&via_proxy)));

    proxy.freeze(true);
    let frozen = Instant::now();
    assert!(
        eventually(Duration::from_secs(2 * 2 + 5), || on(&w)
            == Some(shown(&direct)))
        .await,
        "the stalled link was not noticed within 2 × heartbeat + 5 s"
    );
    eprintln!(
        "half-open link noticed and left for the next broker in {:?}",
        frozen.elapsed()
    );
    assert!(w.wait_warm(Duration::from_secs(10)).await);

    proxy.freeze(false);
    assert!(
        eventually(Duration::from_secs(30), || on(&w)
            == Some(shown(&via_proxy)))
        .await,
        "back through the proxy once it forwards again"
    );
    w.shutdown().await;
}

/// What a resource alarm does to one connection, for the connection named
/// `name` alone on `node` (a real alarm blocks every publisher of the node,
/// requesters included, so no request could reach the worker meanwhile): the
/// broker sends `connection.blocked` once it next publishes, and reads nothing
/// more from it until unblocked.
fn conserve(node: Node, name: &str, on: bool) {
    let expr = format!(
        "[rabbit_reader:conserve_resources(P, memory, {{[], {on}, []}}) || P <- rabbit_networking:connections(), \
         lists:member({{<<\"connection_name\">>, longstr, <<\"{name}\">>}}, \
         proplists:get_value(client_properties, rabbit_reader:info(P, [client_properties])))]."
    );
    let out = ctl(node, &["eval", &expr]);
    assert!(
        out.contains("ok"),
        "no connection named {name} on {}: {out}",
        node.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_connection_takes_no_requests_until_unblocked() {
    let vh = Vhosts::new("blocked", &[kc3()]);
    let mut s = vh.settings(vec![vh.url(kc3())]);
    s.node.name = format!("kazoo-channels-blocked{}@test", &hex_id()[..6]);
    let node = s.node.name.clone();
    let w = started(s).await;
    let account = hex_id();
    calls_on(&vh, kc3(), &account, 2).await;
    assert!(eventually(Duration::from_secs(10), || w.registry().len() == 2).await);
    let client = vh.client(kc3(), "crossbar").await;
    assert_eq!(account_channels(&client, &account).await, Some(2));

    conserve(kc3(), &node, true);
    // The worker learns it is blocked by publishing: the answer to this one
    // is held by the broker until it unblocks (its requester gives up first).
    let first = vh.client(kc3(), "crossbar").await;
    assert_eq!(account_channels(&first, &account).await, None);
    assert!(
        eventually(Duration::from_secs(10), || w.brokers()[0].blocked).await,
        "the worker saw connection.blocked"
    );
    let answered = Stats::get(&w.state.stats.requests_answered);
    // Delivered to the worker now, a request could only be answered after
    // its requester's deadline: it is not taken, and expires in its queue.
    let asker = vh.client(kc3(), "crossbar").await;
    assert_eq!(
        account_channels(&asker, &account).await,
        None,
        "nothing answered while blocked"
    );
    assert_eq!(
        Stats::get(&w.state.stats.requests_answered),
        answered,
        "no request taken while blocked"
    );
    // Events are still applied.
    calls_on(&vh, kc3(), &account, 1).await;
    assert!(
        eventually(Duration::from_secs(10), || w.registry().len() == 3).await,
        "an event applied while blocked"
    );

    conserve(kc3(), &node, false);
    assert!(
        eventually(Duration::from_secs(10), || !w.brokers()[0].blocked).await,
        "unblocked"
    );
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            account_channels(&client, &account).await == Some(3)
        })
        .await,
        "answers again once unblocked"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        asker.stray_replies(),
        0,
        "the request delivered while blocked was never answered, late or not"
    );
    assert_eq!(client.stray_replies(), 0);
    for c in [client, first, asker] {
        c.close().await;
    }
    w.shutdown().await;
}

/// Two Kazoo zones, kc2 as zone `za` and kc3 as zone `zb` (NODES.md §2): one
/// instance local to each, each reading the other zone as Kazoo's federated
/// listeners do. Calls are made in both zones; Crossbar in each zone asks on
/// its own broker and gets every zone's channels, there, once; each instance
/// advertises on its own zone's broker only; losing zone B leaves zone A's
/// answers untouched, and zone B is read again when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_zones_answer_everywhere_with_every_zones_channels() {
    let (za, zb) = (kc2(), kc3());
    let vh = Vhosts::new("zones", &[za, zb]);
    let mut taps = (
        common::NodesTap::open(&vh.url(za)).await,
        common::NodesTap::open(&vh.url(zb)).await,
    );
    let zoned = |local: Node, name: &str, remote: Node, other: &str| {
        let mut s = vh.settings(vec![vh.url(local)]);
        s.amqp.zone = Some(name.to_owned());
        s.amqp.zones = [(
            other.to_owned(),
            kazoo_channels::amqp_settings::RemoteZone {
                url: vh.url(remote).into(),
            },
        )]
        .into();
        s.node.name = format!("kazoo-channels-{name}{}@test", &hex_id()[..6]);
        s.node.advertise_interval_secs = 1;
        s
    };
    let a = started(zoned(za, "za", zb, "zb")).await;
    assert!(
        all_connected(&a, Duration::from_secs(10)).await,
        "zone A's instance reads both zones: {:?}",
        a.brokers()
    );
    let zones: Vec<String> = a.brokers().into_iter().map(|b| b.zone).collect();
    assert_eq!(zones, ["za", "zb"], "each broker's zone");

    let account = hex_id();
    let in_a = calls_on(&vh, za, &account, 2).await;
    let in_b = calls_on(&vh, zb, &account, 1).await;
    assert!(
        eventually(Duration::from_secs(10), || a.registry().len() == 3).await,
        "zone B's call events are read too"
    );
    // Zone B's instance starts now: its events queue missed these calls, so
    // they come from zone A's instance's snapshot, every zone's channels in it.
    let b = started(zoned(zb, "zb", za, "za")).await;
    assert!(
        eventually(Duration::from_secs(10), || b.registry().len() == 3).await,
        "warmed from a peer with both zones' channels: {}",
        b.registry().len()
    );
    for id in in_a.iter().chain(&in_b) {
        assert!(b.registry().get(id).is_some(), "{id} in zone B's instance");
    }

    let (ca, cb) = (
        vh.client(za, "crossbar").await,
        vh.client(zb, "crossbar").await,
    );
    for _ in 0..5 {
        for (requester, zone) in [(&ca, "A"), (&cb, "B")] {
            let answer = account_channels(requester, &account).await;
            assert_eq!(answer, Some(3), "asked in zone {zone}");
        }
    }

    // Each advert on its own zone's broker only.
    let (on_a, on_b) = (
        taps.0.during(Duration::from_secs(3)).await,
        taps.1.during(Duration::from_secs(3)).await,
    );
    let nodes_of = |adverts: &[common::Advert]| {
        let mut n: Vec<String> = adverts
            .iter()
            .map(|v| v.body["Node"].as_str().unwrap().to_owned())
            .collect();
        n.dedup();
        n
    };
    assert_eq!(
        nodes_of(&on_a),
        std::slice::from_ref(&a.state.identity.node),
        "kc2 sees zone A's"
    );
    assert_eq!(
        nodes_of(&on_b),
        std::slice::from_ref(&b.state.identity.node),
        "kc3 sees zone B's"
    );
    assert!(
        on_a.len() >= 2 && on_b.len() >= 2,
        "{} and {} adverts in 3 s",
        on_a.len(),
        on_b.len()
    );
    assert!(on_a.iter().all(|v| v.body["Zone"] == "za"));
    assert!(on_b.iter().all(|v| v.body["Zone"] == "zb"));

    // Zone B goes: zone A's answers are untouched.
    cb.close().await;
    ctl(zb, &["stop_app"]);
    assert!(
        eventually(Duration::from_secs(10), || !a.brokers()[1].connected).await,
        "zone B's broker is gone"
    );
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(
            account_channels(&ca, &account).await,
            Some(3),
            "zone A answers as before"
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "and at once: {:?}",
            t.elapsed()
        );
    }
    assert!(a.brokers()[0].connected, "zone A's session kept");
    ctl(zb, &["start_app"]);
    assert!(
        all_connected(&a, Duration::from_secs(20)).await,
        "zone B read again once back"
    );
    let late = calls_on(&vh, zb, &account, 1).await;
    assert!(
        eventually(Duration::from_secs(10), || a
            .registry()
            .get(&late[0])
            .is_some())
        .await,
        "a call made in zone B after its return is seen in zone A"
    );
    let cb = vh.client(zb, "crossbar").await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            account_channels(&cb, &account).await == Some(4)
        })
        .await,
        "zone B answered again, with every zone's channels"
    );
    assert_eq!(account_channels(&ca, &account).await, Some(4));
    no_reply_twice(ca, cb).await;
    a.shutdown().await;
    b.shutdown().await;
    taps.0.close().await;
    taps.1.close().await;
}
