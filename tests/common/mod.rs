//! State integration-test plumbing: a private vhost per test on the real
//! broker, a worker started in-process on it, and Kazoo-shaped fixtures.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use kazoo_channels::app::{self, WorkerHandle};
use kazoo_channels::bus::BusClient;
use kazoo_channels::config::Settings;
use kazoo_channels::kapi::{Outgoing, encode};
use serde_json::{Value, json};

/// The broker without a vhost: `KAZOO_CHANNELS_TEST_AMQP_URL`, default local guest.
pub fn base_url() -> String {
    std::env::var("KAZOO_CHANNELS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
        .trim_end_matches('/')
        .to_owned()
}

/// A vhost of its own for one test, deleted when dropped. Two workers on one
/// vhost would answer each other's requests, so tests never share one.
pub struct TestVhost {
    pub name: String,
    /// Dropped with the vhost, which tells the watchdog the test is over.
    _watchdog: Option<std::sync::mpsc::Sender<()>>,
}

/// The management HTTP API, when `KAZOO_CHANNELS_TEST_MGMT_URL` is set (the
/// compose `tests` profile, where no `rabbitmqctl` runs beside the broker).
/// Returns the response body, or `None` without a management URL.
fn mgmt(method: &str, path: &str) -> Option<String> {
    mgmt_with(
        method,
        path,
        r#"{"configure":".*","write":".*","read":".*"}"#,
    )
}

/// [`mgmt`] with `body` for a PUT.
fn mgmt_with(method: &str, path: &str, body: &str) -> Option<String> {
    let base = std::env::var("KAZOO_CHANNELS_TEST_MGMT_URL").ok()?;
    let base = base.trim_start_matches("http://").to_owned();
    let (auth, host) = base
        .rsplit_once('@')
        .map(|(a, h)| (a.to_owned(), h.to_owned()))
        .unwrap_or_else(|| ("guest:guest".into(), base.clone()));
    let mut cmd = Command::new("curl");
    cmd.args(["-sf", "-u", &auth, "-X", method]);
    if method == "PUT" {
        cmd.args(["-H", "content-type: application/json"])
            .args(["-d", body]);
    }
    let out = cmd
        .arg(format!("http://{host}/api/{path}"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "management API {method} {path} failed"
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (or set KAZOO_CHANNELS_TEST_MGMT_URL)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestVhost {
    /// A vhost for one test, which may take at most [`TEST_LIMIT`].
    pub fn new(test: &str) -> Self {
        Self::watched(test, TEST_LIMIT)
    }

    /// A vhost for a test that may take at most `limit` (the scale tests fill
    /// registries of hundreds of thousands of channels first).
    pub fn watched(test: &str, limit: Duration) -> Self {
        let mut vh = Self::unwatched(test);
        vh._watchdog = Some(watchdog(test, limit));
        vh
    }

    /// A vhost for a benchmark, which takes as long as it is asked to.
    #[allow(dead_code)]
    pub fn unwatched(test: &str) -> Self {
        // Worker logs in the test's captured output (RUST_LOG, default warn).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let name = format!(
            "kc-test-{test}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        if mgmt("PUT", &format!("vhosts/{name}")).is_none() {
            rabbitmqctl(&["add_vhost", &name]);
            rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        } else {
            mgmt("PUT", &format!("permissions/{name}/guest"));
        }
        Self {
            name,
            _watchdog: None,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", base_url(), encode_vhost(&self.name))
    }

    /// Worker settings for this vhost: no periodic summary noise.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::defaults();
        s.amqp.url = self.url().into();
        s.log.summary_interval_secs = 0;
        s.amqp.max_backoff_secs = 1;
        // No peer and no ecallmgr on a test vhost unless the test brings one:
        // don't wait the production 2 s + 2 s for them.
        s.cluster.snapshot_timeout_ms = 400;
        s.cluster.seed_timeout_ms = 400;
        s
    }

    /// Starts a worker on this vhost and waits until it consumes.
    pub async fn worker(&self) -> WorkerHandle {
        self.worker_with(self.settings()).await
    }

    pub async fn worker_with(&self, settings: Settings) -> WorkerHandle {
        let w = app::spawn(settings);
        assert!(
            w.wait_connected(Duration::from_secs(20)).await,
            "worker did not connect"
        );
        assert!(
            w.wait_warm(Duration::from_secs(20)).await,
            "worker did not warm up"
        );
        w
    }

    pub async fn client(&self, app: &str) -> BusClient {
        BusClient::connect(&self.url(), app)
            .await
            .expect("client connects")
    }

    /// (messages ready, messages unacknowledged) of a queue of this vhost.
    pub fn queue_depth(&self, queue: &str) -> Option<(u64, u64)> {
        // The management API's counts are samples (every 5 s by default) and a
        // new queue has none at first: read until there is one that says
        // empty, or up to 15 s, and give the last reading.
        let path = format!("queues/{}/{queue}", self.name);
        if let Some(first) = mgmt("GET", &path) {
            let read = |body: &str| {
                let q: Value = serde_json::from_str(body).ok()?;
                Some((
                    q["messages_ready"].as_u64()?,
                    q["messages_unacknowledged"].as_u64()?,
                ))
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            let mut last = read(&first);
            while last != Some((0, 0)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                last = mgmt("GET", &path).as_deref().and_then(read);
            }
            return last;
        }
        let out = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_queues",
                "-p",
                &self.name,
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ])
            .output()
            .expect("rabbitmqctl runs");
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut f = l.split('\t');
            if f.next()? != queue {
                return None;
            }
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
    }

    /// `rabbitmqctl list_bindings` for this vhost: (source, destination, routing key).
    pub fn bindings(&self) -> Vec<(String, String, String)> {
        if let Some(body) = mgmt("GET", &format!("bindings/{}", self.name)) {
            let list: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
            let field = |b: &Value, k: &str| b[k].as_str().unwrap_or_default().to_owned();
            return list
                .iter()
                .map(|b| {
                    (
                        field(b, "source"),
                        field(b, "destination"),
                        field(b, "routing_key"),
                    )
                })
                .filter(|(src, _, _)| !src.is_empty())
                .collect();
        }
        let out = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_bindings",
                "-p",
                &self.name,
                "source_name",
                "destination_name",
                "routing_key",
            ])
            .output()
            .expect("rabbitmqctl runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((
                    f.next()?.to_owned(),
                    f.next()?.to_owned(),
                    f.next()?.to_owned(),
                ))
            })
            .filter(|(src, _, _)| !src.is_empty() && src != "source_name")
            .collect()
    }
}

impl TestVhost {
    /// Every queue of this vhost as the broker lists it: `name`, `durable`,
    /// `exclusive`, `auto_delete`, `arguments` (a JSON object).
    pub fn queues(&self) -> Vec<Value> {
        let body = mgmt("GET", &format!("queues/{}", self.name)).unwrap_or_else(|| {
            let out = Command::new("rabbitmqctl")
                .args(["-q", "list_queues", "-p", &self.name, "--formatter", "json"])
                .args(["name", "durable", "exclusive", "auto_delete", "arguments"])
                .output()
                .expect("rabbitmqctl runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        serde_json::from_str(&body).expect("a JSON list of queues")
    }

    /// Sets guest's permissions on this vhost (regular expressions).
    pub fn set_permissions(&self, configure: &str, write: &str, read: &str) {
        let body = json!({"configure": configure, "write": write, "read": read}).to_string();
        if mgmt_with("PUT", &format!("permissions/{}/guest", self.name), &body).is_none() {
            rabbitmqctl(&[
                "set_permissions",
                "-p",
                &self.name,
                "guest",
                configure,
                write,
                read,
            ]);
        }
    }

    pub fn delete_queue(&self, queue: &str) {
        if mgmt("DELETE", &format!("queues/{}/{queue}", self.name)).is_none() {
            rabbitmqctl(&["delete_queue", queue, "-p", &self.name]);
        }
    }
}

/// The longest any integration test may take. A test that hangs would hold
/// CI until its own deadline; this ends the whole test binary instead, naming
/// the test, so the run goes red at once.
const TEST_LIMIT: Duration = Duration::from_secs(180);

fn watchdog(test: &str, limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let test = test.to_owned();
    std::thread::spawn(move || {
        // Nothing is ever sent: the sender's drop ends the wait early.
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
            // Straight to stderr: eprintln! would be captured with the test's output, and lost.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "the test on vhost kc-test-{test}-… is still running after {limit:?}: aborting"
            );
            std::process::exit(101);
        }
    });
    done
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        if mgmt("DELETE", &format!("vhosts/{}", self.name)).is_none() {
            let _ = Command::new("rabbitmqctl")
                .args(["-q", "delete_vhost", &self.name])
                .output();
        }
    }
}

fn encode_vhost(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `cmd` (`what` names it in a failure) and returns its stdout; a
/// failure fails the test with its stderr.
pub fn stdout_of(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what} runs: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `kazoo-channels ARGS` against this vhost's broker.
pub async fn cli(vh: &TestVhost, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
        .args(args)
        .env("KAZOO_CHANNELS__AMQP__URL", vh.url())
        .env_remove("KAZOO_CHANNELS_CONFIG")
        .output()
        .await
        .expect("the CLI runs")
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON")
}

/// A call event on `callevt` with Kazoo's routing key for its call id.
pub fn event_msg(ev: &Value) -> Outgoing {
    let name = ev["Event-Name"].as_str().expect("Event-Name");
    let id = ev["Call-ID"].as_str().expect("Call-ID");
    Outgoing::json("callevt", format!("call.{name}.{}", encode(id)), ev)
}

/// A fresh 32-hex id (accounts, owners, devices).
pub fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The constructed 4.3 A-leg event `name`, moved to a fresh call id and account.
pub fn a_leg_event(name: &str, call_id: &str, account_id: &str) -> Value {
    let mut v = fixture(&format!("kazoo43.callevt.{name}.a-leg.json"));
    v["Call-ID"] = Value::String(call_id.into());
    v["Custom-Channel-Vars"]["Account-ID"] = Value::String(account_id.into());
    v
}

/// Polls `cond` until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stand-in Kazoo peer (ecallmgr, konami…): its own queue bound to `exchange`
/// with `routing_key`; every message is recorded, and `answer` may return a
/// reply body, which goes to `targeted`/`Server-ID` with the request's `Msg-ID`.
pub struct StandIn {
    pub received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    conn: lapin::Connection,
}

impl StandIn {
    pub async fn start(
        vh: &TestVhost,
        app_name: &str,
        bindings: &[(&str, &str)],
        answer: impl Fn(&Value) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        use futures_util::StreamExt;
        use lapin::options::BasicPublishOptions;
        let conn = lapin::Connection::connect(&vh.url(), lapin::ConnectionProperties::default())
            .await
            .expect("stand-in connects");
        let ch = conn.create_channel().await.unwrap();
        // Kazoo apps declare the exchanges they use, with Kazoo's flags.
        let mut exchanges = kazoo_channels::bus::Topology::for_instance("standin");
        exchanges.queues.clear();
        kazoo_channels::bus::declare(&ch, &exchanges).await.unwrap();
        let q = format!("{app_name}@standin-{}", &hex_id()[..8]);
        let (_, mut consumer) = tap(&ch, &q, bindings).await;
        let received: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
        let rec = received.clone();
        let app = app_name.to_owned();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let Ok(v) = serde_json::from_slice::<Value>(&d.data) else {
                    continue;
                };
                rec.lock()
                    .unwrap()
                    .push((d.routing_key.to_string(), v.clone()));
                let Some(mut reply) = answer(&v) else {
                    continue;
                };
                let Some(to) = v["Server-ID"].as_str() else {
                    continue;
                };
                reply["Msg-ID"] = v["Msg-ID"].clone();
                reply["App-Name"] = Value::String(app.clone());
                reply["App-Version"] = Value::String("4.0.0".into());
                reply["Node"] = Value::String(format!("{app}@standin"));
                let body = serde_json::to_vec(&reply).unwrap();
                let _ = ch
                    .basic_publish(
                        "targeted".into(),
                        to.into(),
                        BasicPublishOptions::default(),
                        &body,
                        lapin::BasicProperties::default()
                            .with_content_type("application/json".into()),
                    )
                    .await;
            }
        });
        Self { received, conn }
    }

    pub fn received(&self) -> Vec<(String, Value)> {
        self.received.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// A queue of the test's own (server-named when `queue` is empty), bound to
/// `bindings` (exchange, routing key) and read without acks: what a Kazoo app
/// listening on the bus receives. Returns the queue's name and its consumer.
pub async fn tap(
    ch: &lapin::Channel,
    queue: &str,
    bindings: &[(&str, &str)],
) -> (String, lapin::Consumer) {
    use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let q = ch
        .queue_declare(queue.into(), opts, FieldTable::default())
        .await
        .expect("tap queue declared");
    let name = q.name().to_string();
    for (ex, rk) in bindings {
        ch.queue_bind(
            name.as_str().into(),
            (*ex).into(),
            (*rk).into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("tap queue bound");
    }
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let consumer = ch
        .basic_consume(
            name.as_str().into(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .expect("tap consumed");
    (name, consumer)
}

/// Every instance's answer to our own `channels`/`status_req`, collected for `wait`.
pub async fn status_replies(client: &BusClient, wait: Duration) -> Vec<Value> {
    client
        .ask(
            kazoo_channels::kapi::asks::status(),
            kazoo_channels::bus::Collect::all(wait),
        )
        .await
        .unwrap_or_default()
}

/// Waits until every call of `calls` is in the worker's registry, answered.
pub async fn until_answered(w: &WorkerHandle, calls: &[&str]) {
    assert!(
        eventually(Duration::from_secs(10), || {
            let reg = w.registry();
            calls
                .iter()
                .all(|c| reg.get(c).is_some_and(|ch| ch.answered))
        })
        .await,
        "calls not in the registry: {calls:?}"
    );
}

/// Waits until `call` is in the worker's registry, bridged.
pub async fn until_bridged(w: &WorkerHandle, call: &str) {
    assert!(
        eventually(Duration::from_secs(10), || w
            .registry()
            .get(call)
            .is_some_and(|c| c.other_leg.is_some()))
        .await,
        "channel {call} not bridged in the registry"
    );
}

/// A worker process of the built binary, killed when dropped.
pub struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or_default()
    }
    pub fn take(&mut self) -> std::process::Child {
        self.0.take().expect("child still held")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A worker as a child process of the built binary, on `vh`.
pub fn spawn_binary(vh: &TestVhost, extra: &[(&str, &str)]) -> ChildGuard {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kazoo-channels"));
    cmd.arg("run")
        .env("KAZOO_CHANNELS__AMQP__URL", vh.url())
        .env("KAZOO_CHANNELS__LOG__SUMMARY_INTERVAL_SECS", "0")
        .env("KAZOO_CHANNELS__CLUSTER__SNAPSHOT_TIMEOUT_MS", "1500")
        .env("KAZOO_CHANNELS__CLUSTER__SEED_TIMEOUT_MS", "300")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    ChildGuard(Some(cmd.spawn().expect("worker binary starts")))
}

/// Status replies from every instance, once `n` of them say they are warm with `channels`.
pub async fn wait_for_instances(vh: &TestVhost, n: usize, channels: u64) -> Vec<Value> {
    let client = vh.client("operator").await;
    let mut last = Vec::new();
    for _ in 0..60 {
        last = status_replies(&client, Duration::from_millis(500)).await;
        if last.len() == n
            && last
                .iter()
                .all(|r| r["State"] == "warm" && r["Channels"] == channels)
        {
            break;
        }
    }
    client.close().await;
    assert_eq!(last.len(), n, "{last:?}");
    last
}

/// Waits (off the runtime's threads) until the child exits.
#[allow(dead_code)]
pub async fn exit_status(mut child: ChildGuard) -> std::process::ExitStatus {
    let mut child = child.take();
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}
