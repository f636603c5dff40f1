//! `kazoo-channels command`: sends one `command_req` over the bus, as a whapp
//! would, and prints the answer.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::bus::{BusClient, Collect};
use crate::kapi::asks;

/// Exit codes: 0 accepted, 1 refused (the answer says why), 2 bad arguments,
/// 3 no answer (no worker, or the broker is unreachable).
const REFUSED: u8 = 1;
const BAD_ARGS: u8 = 2;
const NO_ANSWER: u8 = 3;

#[derive(Debug, Clone, Args)]
pub struct CommandArgs {
    /// The channel's Call-ID.
    pub call_id: String,
    /// The account the channel must belong to.
    #[arg(long)]
    pub account: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Print the raw `command_resp` instead of a summary.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: ActionArgs,
}

/// Extra keys for an action's data, as a JSON object.
#[derive(Debug, Clone, Args)]
pub struct DataArg {
    #[arg(long, default_value = "{}")]
    pub data: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ActionArgs {
    /// Put a metaflow tree on the channel: a node `{"module", "data", "children"}`.
    Metaflow {
        flow: String,
    },
    /// Hang the channel up.
    Hangup(DataArg),
    /// Transfer the bridged call (Crossbar's keys: target, transfer-type, moh).
    Transfer {
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "blind")]
        transfer_type: String,
        #[arg(long)]
        moh: Option<String>,
        #[command(flatten)]
        extra: DataArg,
    },
    /// Play a media file.
    Play {
        #[arg(long)]
        media_id: String,
        /// self, peer or both.
        #[arg(long)]
        leg: Option<String>,
        #[command(flatten)]
        extra: DataArg,
    },
    #[command(name = "audio_level")]
    AudioLevel(DataArg),
    Break(DataArg),
    /// Run a callflow (`--data '{"id":"..."}'`).
    Callflow(DataArg),
    Hold(DataArg),
    /// Intercept (`--data '{"target_type":"device","target_id":"..."}'`).
    Intercept(DataArg),
    Move(DataArg),
    Park(DataArg),
    #[command(name = "record_call")]
    RecordCall(DataArg),
    Resume(DataArg),
    Say(DataArg),
    Tts(DataArg),
    Unpark(DataArg),
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{what} must be a JSON object")),
        Err(e) => Err(format!("{what} is not JSON: {e}")),
    }
}

impl ActionArgs {
    /// The request's `Action` and `Data`.
    pub fn action_and_data(&self) -> Result<(&'static str, Value), String> {
        use ActionArgs::*;
        // Each action's own options, laid over its `--data`.
        let (action, extra, options): (_, _, &[(&str, Option<&String>)]) = match self {
            Metaflow { flow } => {
                return Ok(("metaflow", Value::Object(object(flow, "the metaflow")?)));
            }
            Transfer {
                target,
                transfer_type,
                moh,
                extra,
            } => (
                "transfer",
                extra,
                &[
                    ("target", Some(target)),
                    ("transfer-type", Some(transfer_type)),
                    ("moh", moh.as_ref()),
                ],
            ),
            Play {
                media_id,
                leg,
                extra,
            } => (
                "play",
                extra,
                &[("id", Some(media_id)), ("leg", leg.as_ref())],
            ),
            Hangup(d) => ("hangup", d, &[]),
            AudioLevel(d) => ("audio_level", d, &[]),
            Break(d) => ("break", d, &[]),
            Callflow(d) => ("callflow", d, &[]),
            Hold(d) => ("hold", d, &[]),
            Intercept(d) => ("intercept", d, &[]),
            Move(d) => ("move", d, &[]),
            Park(d) => ("park", d, &[]),
            RecordCall(d) => ("record_call", d, &[]),
            Resume(d) => ("resume", d, &[]),
            Say(d) => ("say", d, &[]),
            Tts(d) => ("tts", d, &[]),
            Unpark(d) => ("unpark", d, &[]),
        };
        let mut data = object(&extra.data, "--data")?;
        for (key, value) in options {
            if let Some(v) = value {
                data.insert((*key).into(), json!(v));
            }
        }
        Ok((action, Value::Object(data)))
    }
}

impl CommandArgs {
    /// The `command_req` keys of our own (the envelope is the client's).
    pub fn request_body(&self) -> Result<Map<String, Value>, String> {
        let (action, data) = self.action.action_and_data()?;
        let mut body = Map::new();
        body.insert("Account-ID".into(), json!(self.account));
        body.insert("Call-ID".into(), json!(self.call_id));
        body.insert("Action".into(), json!(action));
        body.insert("Data".into(), data);
        Ok(body)
    }
}

/// A readable account of a `command_resp`, and whether it was accepted.
pub fn render(reply: &Value) -> (String, bool) {
    let call = reply["Call-ID"].as_str().unwrap_or("?");
    if reply["Status"] == "accepted" {
        return (format!("accepted: {call}\n"), true);
    }
    let mut out = format!(
        "error {}: {}\n",
        reply["Error-Code"],
        reply["Error-Message"].as_str().unwrap_or("(no message)")
    );
    for e in reply["Validation-Errors"].as_array().into_iter().flatten() {
        let path = e["path"].as_str().unwrap_or_default();
        let path = if path.is_empty() { "(request)" } else { path };
        let _ = writeln!(
            out,
            "  {path}: {}",
            e["message"].as_str().unwrap_or_default()
        );
    }
    (out, false)
}

pub async fn run(settings: &crate::config::Settings, args: &CommandArgs) -> ExitCode {
    let body = match args.request_body() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kazoo-channels command: {e}");
            return ExitCode::from(BAD_ARGS);
        }
    };
    let client =
        async { BusClient::connect_first(&settings.brokers()?, "kazoo-channels-cli").await };
    let client = match client.await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kazoo-channels command: cannot reach the broker: {e}");
            return ExitCode::from(NO_ANSWER);
        }
    };
    let timeout = Duration::from_secs_f64(args.timeout.max(0.0));
    let sent = client
        .ask(asks::command(body), Collect::first(timeout))
        .await;
    client.close().await;
    let reply = match sent {
        Ok(replies) => replies.into_iter().next(),
        Err(e) => {
            eprintln!("kazoo-channels command: {e}");
            return ExitCode::from(NO_ANSWER);
        }
    };
    let Some(reply) = reply else {
        eprintln!(
            "kazoo-channels command: no answer within {}s (is a kazoo-channels worker running?)",
            args.timeout
        );
        return ExitCode::from(NO_ANSWER);
    };
    let (text, accepted) = render(&reply);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reply).expect("json"));
    } else {
        print!("{text}");
    }
    if accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(REFUSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: CommandArgs,
    }

    fn body(argv: &[&str]) -> Result<Map<String, Value>, String> {
        let mut full = vec!["command"];
        full.extend_from_slice(argv);
        T::try_parse_from(full)
            .map_err(|e| e.to_string())?
            .args
            .request_body()
    }

    #[test]
    fn arguments_become_the_request() {
        let b = body(&["c1", "--account", "A", "hangup"]).unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"Account-ID": "A", "Call-ID": "c1", "Action": "hangup", "Data": {}})
        );
        let b = body(&[
            "c1",
            "--account",
            "A",
            "transfer",
            "--target",
            "2600",
            "--moh",
            "m",
        ])
        .unwrap();
        assert_eq!(
            b["Data"],
            json!({"target": "2600", "transfer-type": "blind", "moh": "m"})
        );
        let b = body(&["c1", "--account", "A", "metaflow", r#"{"module":"hangup"}"#]).unwrap();
        assert_eq!(
            (b["Action"].as_str(), &b["Data"]),
            (Some("metaflow"), &json!({"module": "hangup"}))
        );
        let b = body(&["c1", "--account", "A", "play", "--media-id", "m1"]).unwrap();
        assert_eq!(b["Data"], json!({"id": "m1"}));
        let b = body(&[
            "c1",
            "--account",
            "A",
            "record_call",
            "--data",
            r#"{"action":"start"}"#,
        ])
        .unwrap();
        assert_eq!(
            (b["Action"].as_str(), &b["Data"]),
            (Some("record_call"), &json!({"action": "start"}))
        );
        assert!(body(&["c1", "--account", "A", "metaflow", "[1]"]).is_err());
        assert!(body(&["c1", "--account", "A", "break", "--data", "nope"]).is_err());
        assert!(body(&["c1", "hangup"]).is_err(), "--account is required");
    }

    #[test]
    fn answers_read_well() {
        let (t, ok) = render(&json!({"Status": "accepted", "Call-ID": "c1"}));
        assert!(ok && t == "accepted: c1\n");
        let (t, ok) = render(
            &json!({"Status": "error", "Error-Code": 400, "Error-Message": "invalid request: 1 validation error(s)",
            "Validation-Errors": [{"path": "/Data/module", "message": "\"module\" is a required property"}]}),
        );
        assert!(!ok);
        assert_eq!(
            t,
            "error 400: invalid request: 1 validation error(s)\n  /Data/module: \"module\" is a required property\n"
        );
    }
}
