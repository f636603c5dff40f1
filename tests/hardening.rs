//! Hostile requests and a stalled worker against a real broker (issue 10):
//! a reply address no routing key can hold costs no reconnect, and a worker
//! paused past its requests' deadline answers none of them late.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kazoo_channels::bus::{BusClient, Collect};
use kazoo_channels::kapi::{Outgoing, encode};
use serde_json::{Map, Value, json};

/// The one status reply of the one worker on the vhost.
async fn status(client: &BusClient) -> Value {
    let mut replies = status_replies(client, Duration::from_millis(600)).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies.remove(0)
}

/// An account query as Crossbar sends it, its reply collected for `wait`.
async fn account_query(client: &BusClient, account: &str, wait: Duration) -> Vec<Value> {
    let body: Map<String, Value> =
        json!({"Account-ID": account, "Active-Only": false, "Usernames": []})
            .as_object()
            .unwrap()
            .clone();
    client
        .request(
            "callevt",
            &format!("call.status_req.{}", encode(account)),
            "call_event",
            "query_account_channels_req",
            body,
            Collect::first(wait),
        )
        .await
        .unwrap()
}

/// A fresh account query is answered, within 2 s.
async fn answered_at_once(client: &BusClient, account: &str) {
    let began = Instant::now();
    let replies = account_query(client, account, Duration::from_secs(5)).await;
    assert_eq!(replies.len(), 1, "answered");
    let took = began.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_address_longer_than_a_routing_key_costs_no_reconnect() {
    let vh = TestVhost::new("long-server-id");
    let w = vh.worker().await;
    let client = vh.client("crossbar").await;
    let before = status(&client).await;
    let account = hex_id();
    let long = "q".repeat(256);
    for server_id in [long.clone(), format!("pid://<0.5511.0>/{long}")] {
        for n in 0..2 {
            let body = json!({
                "Event-Category": "call_event", "Event-Name": "query_account_channels_req",
                "App-Name": "crossbar", "App-Version": "4.0.0", "Node": "crossbar@kz1",
                "Msg-ID": format!("long-{n}"), "Server-ID": server_id,
                "Account-ID": account, "Active-Only": false,
            });
            let rk = format!("call.status_req.{}", encode(&account));
            client
                .publish(&Outgoing::json("callevt", rk, &body))
                .await
                .unwrap();
        }
    }
    // The next request is answered at once, by the same session.
    answered_at_once(&client, &account).await;
    let after = status(&client).await;
    assert_eq!(after["Reconnects"], before["Reconnects"], "{after}");
    let rejected = |s: &Value| s["Requests-Rejected"].as_u64().unwrap();
    assert_eq!(rejected(&after), rejected(&before) + 4, "{after}");
    client.close().await;
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_the_deadline_answers_nothing_late() {
    let vh = TestVhost::new("sigstop");
    let child = spawn_binary(&vh, &[]);
    wait_for_instances(&vh, 1, 0).await;
    let client = vh.client("crossbar").await;
    let account = hex_id();
    assert_eq!(
        account_query(&client, &account, Duration::from_secs(5))
            .await
            .len(),
        1,
        "answered before the pause"
    );
    let signal = |sig: &str| {
        let sent = std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {sig}");
    };
    signal("-STOP");
    // Six requests as Crossbar sends them (a Gregorian timestamp, no
    // expiration) reach the stopped worker's prefetch buffer. Nobody waits
    // for them here: any reply to them would count as a stray reply.
    let strays = client.stray_replies();
    let rk = format!("call.status_req.{}", encode(&account));
    for n in 0..6 {
        let body = json!({
            "Event-Category": "call_event", "Event-Name": "query_account_channels_req",
            "App-Name": "crossbar", "App-Version": "4.0.0", "Node": "crossbar@kz1",
            "Msg-ID": format!("paused-{n}"), "Server-ID": client.reply_queue(),
            "Account-ID": account, "Active-Only": false,
        });
        client
            .publish(&Outgoing::json("callevt", rk.clone(), &body))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    signal("-CONT");
    // New requests are answered at once.
    answered_at_once(&client, &account).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        client.stray_replies(),
        strays,
        "a request past its deadline was answered late"
    );
    let status = status(&client).await;
    assert_eq!(status["Requests-Expired"], 6, "{status}");
    drop(child);
}

/// The worker binary's log, its stderr a pipe (as a file, journald or
/// `docker logs` is), for `run_for`, with the broker at `url`.
fn log_of_worker(url: &str, run_for: Duration) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kazoo-channels"))
        .arg("run")
        .env("KAZOO_CHANNELS__AMQP__URL", url)
        .env("KAZOO_CHANNELS__LOG__SUMMARY_INTERVAL_SECS", "0")
        .env("KAZOO_CHANNELS__AMQP__MAX_BACKOFF_SECS", "1")
        .env_remove("RUST_LOG")
        .env("KAZOO_CHANNELS__LOG__LEVEL", "info,kazoo_channels=debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("worker binary starts");
    std::thread::sleep(run_for);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the worker keeps retrying, it does not exit"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

#[test]
fn a_refused_login_or_vhost_is_one_configuration_error_naming_amqp_url() {
    let vh = TestVhost::new("refused");
    let wrong_password = vh
        .url()
        .replacen("guest:guest@", "guest:not-the-password@", 1);
    let missing_vhost = format!("{}/kc-test-no-such-vhost-{}", base_url(), hex_id());
    for (url, says) in [
        (wrong_password, "check the user and password"),
        (missing_vhost, "check the vhost"),
    ] {
        let log = log_of_worker(&url, Duration::from_millis(2500));
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("configuration error"))
            .collect();
        assert_eq!(errors.len(), 1, "once per distinct error:\n{log}");
        let error_lines = log.lines().filter(|l| l.contains("ERROR")).count();
        assert_eq!(error_lines, 1, "nothing else (lapin) repeats it:\n{log}");
        assert!(
            errors[0].contains("amqp.url") && errors[0].contains(says),
            "{}",
            errors[0]
        );
        assert!(
            !log.contains("not-the-password"),
            "no credentials in the log"
        );
        assert!(
            log.contains("still refused by the broker"),
            "the backoff continues:\n{log}"
        );
        assert!(
            !log.contains('\u{1b}'),
            "no ANSI colour codes in a pipe:\n{log}"
        );
    }
}
