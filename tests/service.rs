//! The worker as the packaged systemd unit runs it (`Type=notify`): the
//! built binary on a vhost of its own, with a notify socket of the test's
//! own standing in for systemd's, and stderr standing in for the journal.

mod common;

use std::time::{Duration, Instant};

use common::{ChildGuard, TestVhost, exit_status, wait_for_instances, worker_command};
use serde_json::Value;
use tokio::net::UnixDatagram;

fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kc-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The worker binary on `vh` with `env`, its stderr into `stderr`, nothing
/// of the systemd environment inherited but what `env` gives.
fn worker(vh: &TestVhost, env: &[(&str, &str)], stderr: std::fs::File) -> ChildGuard {
    let mut cmd = worker_command(vh, &[("RUST_LOG", "info")]);
    cmd.env_remove("KAZOO_CHANNELS_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .stderr(stderr);
    ChildGuard::new(cmd.spawn().expect("worker binary starts"))
}

fn sigterm(child: &ChildGuard) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

async fn notice(socket: &UnixDatagram, within: Duration) -> String {
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(within, socket.recv(&mut buf))
        .await
        .expect("a notice within the time allowed")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_warm_and_serving_stopping_on_sigterm() {
    let vh = TestVhost::new("notify");
    let dir = temp_dir("notify");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let began = Instant::now();
    let log = std::fs::File::create(dir.join("stderr")).unwrap();
    let child = worker(&vh, &[("NOTIFY_SOCKET", path.to_str().unwrap())], log);

    let ready = notice(&socket, Duration::from_secs(30)).await;
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving: 0 channels, broker amqp://guest:***@"),
        "{ready}"
    );
    eprintln!("READY=1 after {} ms", began.elapsed().as_millis());
    // Ready means answering: the instance says it is warm at once.
    let replies = wait_for_instances(&vh, 1, 0).await;
    assert_eq!(replies[0]["State"], "warm", "{replies:?}");

    sigterm(&child);
    let stopping = notice(&socket, Duration::from_secs(5)).await;
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping}");
    let status = exit_status(child).await;
    assert!(status.success(), "exit status {status:?}");
    let log = std::fs::read_to_string(dir.join("stderr")).unwrap();
    assert!(!log.contains("cannot notify systemd"), "{log}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A worker whose stderr is "the journal" (`$JOURNAL_STREAM` names it), run
/// until it serves, then stopped: its log.
async fn journal_log(vh: &TestVhost, format: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("journal");
    let path = dir.join("journal");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let child = worker(
        vh,
        &[
            ("JOURNAL_STREAM", stream.as_str()),
            ("KAZOO_CHANNELS__LOG__FORMAT", format),
        ],
        file,
    );
    wait_for_instances(vh, 1, 0).await;
    sigterm(&child);
    assert!(exit_status(child).await.success());
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_journal_text_lines_have_no_colour_nor_timestamp_and_json_keeps_fields() {
    let vh = TestVhost::new("journal");
    let text = journal_log(&vh, "text").await;
    assert!(!text.contains('\u{1b}'), "no ANSI escapes: {text}");
    let starting = text
        .lines()
        .find(|l| l.contains("starting"))
        .unwrap_or_else(|| panic!("a starting line: {text}"));
    // journald stamps the line; the worker does not.
    assert!(
        starting.trim_start().starts_with("INFO "),
        "no timestamp of its own: {starting}"
    );
    assert!(
        starting.contains("node=") && starting.contains("instance="),
        "{starting}"
    );

    let json = journal_log(&vh, "json").await;
    assert!(!json.contains('\u{1b}'), "{json}");
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let starting = lines
        .iter()
        .find(|l| l["message"] == "starting")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(starting["level"], "INFO");
    assert!(
        starting["node"].is_string() && starting["instance"].is_string(),
        "{starting}"
    );
    let serving = lines
        .iter()
        .find(|l| l["message"] == "connected; topology declared, consuming events")
        .unwrap_or_else(|| panic!("{json}"));
    assert!(serving["broker"].is_string(), "{serving}");
}
