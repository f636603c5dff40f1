//! Shared integration-test plumbing: a private vhost per test on the real
//! broker, a worker started in-process on it, and Kazoo-shaped fixtures.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use kazoo_channels::bus::BusClient;
use kazoo_channels::config::Settings;
use kazoo_channels::kapi::{Outgoing, encode};
use kazoo_channels::worker::{self, WorkerHandle};
use serde_json::Value;

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
}

fn mgmt(method: &str, path: &str) -> bool {
    let Ok(base) = std::env::var("KAZOO_CHANNELS_TEST_MGMT_URL") else {
        return false;
    };
    let (auth, host) = base
        .trim_start_matches("http://")
        .rsplit_once('@')
        .map(|(a, h)| (a.to_owned(), h.to_owned()))
        .unwrap_or_else(|| {
            (
                "guest:guest".into(),
                base.trim_start_matches("http://").to_owned(),
            )
        });
    let status = Command::new("curl")
        .args([
            "-sf",
            "-u",
            &auth,
            "-X",
            method,
            "-H",
            "content-type: application/json",
        ])
        .args(["-d", r#"{"configure":".*","write":".*","read":".*"}"#])
        .arg(format!("http://{host}/api/{path}"))
        .status()
        .expect("curl runs");
    assert!(status.success(), "management API {method} {path} failed");
    true
}

fn rabbitmqctl(args: &[&str]) {
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
    pub fn new(test: &str) -> Self {
        let name = format!(
            "kc-test-{test}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        if !mgmt("PUT", &format!("vhosts/{name}")) {
            rabbitmqctl(&["add_vhost", &name]);
            rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        } else {
            mgmt("PUT", &format!("permissions/{name}/guest"));
        }
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", base_url(), encode_vhost(&self.name))
    }

    /// Worker settings for this vhost: no periodic summary noise.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::defaults();
        s.amqp.url = self.url();
        s.log.summary_interval_secs = 0;
        s.amqp.max_backoff_secs = 1;
        s
    }

    /// Starts a worker on this vhost and waits until it consumes.
    pub async fn worker(&self) -> WorkerHandle {
        self.worker_with(self.settings()).await
    }

    pub async fn worker_with(&self, settings: Settings) -> WorkerHandle {
        let w = worker::spawn(settings);
        assert!(
            w.wait_connected(Duration::from_secs(20)).await,
            "worker did not connect"
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

impl Drop for TestVhost {
    fn drop(&mut self) {
        if !mgmt("DELETE", &format!("vhosts/{}", self.name)) {
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
