//! Configuration: built-in defaults < optional TOML file < `KAZOO_CHANNELS__*`
//! environment variables (e.g. `KAZOO_CHANNELS__AMQP__URL`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub node: NodeSettings,
    pub log: LogSettings,
    pub registry: RegistrySettings,
    pub queries: QuerySettings,
    pub cluster: ClusterSettings,
    pub health: HealthSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost` (vhost `/` is `%2f`).
    pub url: String,
    /// Unacknowledged deliveries per consumer.
    pub prefetch: u16,
    /// Seconds between reconnection attempts at most (backoff grows up to this).
    pub max_backoff_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// The `Node` we put on every message; empty = `kazoo-channels@<hostname>-<instance>`.
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (readable lines) or `json` (one object per line).
    pub format: String,
    /// A tracing filter; `RUST_LOG` wins when set.
    pub level: String,
    /// Seconds between the one-line registry summaries; 0 turns them off.
    pub summary_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// How long an ANSWER/BRIDGE for a call not yet created waits for its CREATE.
    pub reorder_window_ms: u64,
    /// How long a destroyed call id refuses late events.
    pub tombstone_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySettings {
    /// Answer `Account-ID: all` with every channel (crossbar's system-wide listing).
    pub system_wide_listing: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// How long a starting instance waits for a peer's snapshot.
    pub snapshot_timeout_ms: u64,
    /// With no peer, how long it collects ecallmgr's `query_channels_resp` replies.
    pub seed_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    pub shutdown_grace_secs: u64,
    /// Drop channels older than this many seconds; 0 = never.
    pub max_channel_age_secs: u64,
    /// Seconds between reconciles with ecallmgr; 0 = never.
    pub reconcile_interval_secs: u64,
    /// Only channels older than this are checked with ecallmgr (`channel_status_req`).
    pub reconcile_min_age_secs: u64,
    /// At most this many channels are checked per reconcile.
    pub reconcile_batch: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// The liveness file the worker refreshes while its bus session is up and its
    /// registry warm (`kazoo-channels health` checks it); empty = none.
    pub file: String,
}

const DEFAULTS: &str = r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
prefetch = 256
max_backoff_secs = 10

[node]
name = ""

[log]
format = "text"
level = "info"
summary_interval_secs = 10

[registry]
reorder_window_ms = 5000
tombstone_secs = 120

[queries]
system_wide_listing = false

[cluster]
snapshot_timeout_ms = 2000
seed_timeout_ms = 2000
shutdown_grace_secs = 10
max_channel_age_secs = 0
reconcile_interval_secs = 300
reconcile_min_age_secs = 3600
reconcile_batch = 200

[health]
file = ""
"#;

pub const ENV_PREFIX: &str = "KAZOO_CHANNELS";

impl Settings {
    /// Loads the layers and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            b = b.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let s: Settings = b.build()?.try_deserialize()?;
        s.validate()?;
        Ok(s)
    }

    /// The built-in defaults alone (tests and tools that take a URL directly).
    pub fn defaults() -> Self {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("built-in defaults are valid")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if !(self.amqp.url.starts_with("amqp://") || self.amqp.url.starts_with("amqps://")) {
            return invalid("amqp.url", "must start with amqp:// or amqps://");
        }
        if !crate::bus::is_amqp_uri(&self.amqp.url) {
            return invalid("amqp.url", "is not a valid AMQP URI");
        }
        if self.amqp.prefetch == 0 {
            return invalid("amqp.prefetch", "must be at least 1");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid("log.format", "must be \"text\" or \"json\"");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid("log.level", "is not a valid tracing filter (e.g. \"info\")");
        }
        Ok(())
    }

    pub fn reorder_window(&self) -> Duration {
        Duration::from_millis(self.registry.reorder_window_ms)
    }

    /// The effective configuration as TOML, password redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.amqp.url = redact_url(&self.amqp.url);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// `amqp://user:secret@host/vh` → `amqp://user:***@host/vh`, for logs and printing.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                format!("{scheme}://{user}@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_against_a_local_broker() {
        let s = Settings::defaults();
        assert_eq!(s.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert!(!s.queries.system_wide_listing);
        s.validate().unwrap();
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("amqp://guest:s3cr@t@rabbit:5672/%2f"),
            "amqp://guest:***@rabbit:5672/%2f"
        );
        assert_eq!(redact_url("amqp://rabbit/%2f"), "amqp://rabbit/%2f");
        let mut s = Settings::defaults();
        s.amqp.url = "amqp://kazoo:hunter2@rabbit:5672/kazoo".into();
        let shown = s.to_redacted_toml();
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("kazoo:***@rabbit"));
    }

    #[test]
    fn bad_values_are_named() {
        let mut s = Settings::defaults();
        s.log.format = "xml".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("log.format"), "{e}");
        let mut s = Settings::defaults();
        s.amqp.url = "http://x".into();
        assert!(s.validate().unwrap_err().to_string().contains("amqp.url"));
    }

    #[test]
    fn file_layer_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("kc-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[queries]\nsystem_wide_listing = true\n[amqp]\nprefetch = 7\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert!(s.queries.system_wide_listing);
        assert_eq!(s.amqp.prefetch, 7);
        std::fs::write(&path, "[amqp]\nprefetch = \"many\"\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
