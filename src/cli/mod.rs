//! The command line: run the worker, inspect configuration and topology,
//! ask the bus (query, command, status), simulate calls. Each client in a file
//! of its own; one table renderer ([`render`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod command_client;
mod query_client;
mod render;
pub mod simulate;
mod status_client;

use crate::bus::Topology;
use crate::config::Settings;
use crate::{app, logging};
use command_client::CommandArgs;
use query_client::QueryArgs;
use simulate::SimulateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "kazoo-channels",
    version,
    about = "Kazoo channel registry, queries and commands over AMQP"
)]
pub struct Cli {
    /// A TOML configuration file (layered over the defaults, under the environment).
    #[arg(long, global = true, env = "KAZOO_CHANNELS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker (the default).
    Run,
    /// Print the effective configuration (password redacted) and validate it.
    CheckConfig,
    /// Print the AMQP topology as a RabbitMQ definitions.json.
    Topology {
        #[arg(long, default_value = "/")]
        vhost: String,
        /// The instance id to put in per-instance queue names.
        #[arg(long, default_value = "INSTANCE")]
        instance: String,
    },
    /// Publish simulated Kazoo call events to the broker.
    Simulate(SimulateArgs),
    /// List every running instance (each answers a `channels`/`status_req`).
    Status {
        /// How long to wait for answers, in seconds.
        #[arg(long, default_value_t = 1.0)]
        timeout: f64,
        /// Print the raw replies.
        #[arg(long)]
        json: bool,
    },
    /// Act on a live channel through the workers (prints the real outcome).
    Command(CommandArgs),
    /// Ask the bus for channels, as Crossbar asks (any ecallmgr or kazoo-channels answers).
    Query(QueryArgs),
    /// Health probe (container HEALTHCHECK): 0 while the worker's liveness file
    /// (`health.file`) is fresh, 1 when it is missing or stale, 2 when unset.
    Health {
        /// The oldest refresh still healthy, in seconds.
        #[arg(long, default_value_t = app::health::DEFAULT_MAX_AGE.as_secs())]
        max_age: u64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kazoo-channels: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Topology { vhost, instance } => {
            let defs = Topology::for_instance(&instance)
                .with_queue_type(settings.amqp.queue_type)
                .to_definitions(&vhost);
            println!("{}", serde_json::to_string_pretty(&defs).expect("json"));
            ExitCode::SUCCESS
        }
        Command::Run => runtime().block_on(run(settings)),
        Command::Status { timeout, json } => {
            runtime().block_on(status_client::run(settings, timeout, json))
        }
        Command::Command(args) => {
            logging::init(&settings.log);
            runtime().block_on(command_client::run(&settings, &args))
        }
        Command::Query(args) => runtime().block_on(query_client::main(&settings, &args)),
        Command::Health { max_age } => health(&settings, Duration::from_secs(max_age)),
        Command::Simulate(mut args) => {
            logging::init(&settings.log);
            args.progress = std::io::stderr().is_terminal();
            let accounts = simulate::accounts_for(&args);
            print!("{}", simulate::announce(&args, &accounts));
            let url = settings.amqp.url.primary();
            match runtime().block_on(simulate::run_accounts(url, &args, &accounts)) {
                Ok(r) => {
                    println!(
                        "simulated {} calls ({} channels), {} events published, {} calls hung up{}",
                        r.calls,
                        r.calls * 2,
                        r.events,
                        r.destroyed_calls,
                        if args.leave_up {
                            " (--leave-up: channels left up)"
                        } else {
                            ""
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kazoo-channels simulate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn health(settings: &Settings, max_age: Duration) -> ExitCode {
    use app::health::{Unhealthy, check};
    match check(&settings.health.file, max_age) {
        Ok((line, age)) => {
            println!("healthy: {line} (refreshed {}s ago)", age.as_secs());
            ExitCode::SUCCESS
        }
        Err(e @ Unhealthy::NotConfigured) => {
            eprintln!("kazoo-channels health: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            println!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn run(settings: Settings) -> ExitCode {
    logging::init(&settings.log);
    let handle = app::spawn(settings);
    // The worker never ends on its own (a broker fault only makes it retry).
    wait_for_signal().await;
    tracing::info!("signal received; finishing in-flight requests");
    if handle.shutdown().await {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
