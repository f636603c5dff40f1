//! Configuration: built-in defaults < optional TOML file < `KAZOO_CHANNELS__*`
//! environment variables (e.g. `KAZOO_CHANNELS__AMQP__URL`, where several
//! brokers are separated by commas).
//!
//! Over 400 lines as one job: every setting, its default and its check; half
//! of it is the tests.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::amqp_settings::{
    AmqpSettings, BrokerMode, BrokerUrls, QueueType, TlsSettings, redact_url,
};

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
pub struct NodeSettings {
    /// The `Node` we put on every message; empty = `kazoo-channels@<hostname>-<instance>`.
    pub name: String,
    /// Advertise on Kazoo's `nodes` exchange, so `sup kz_nodes status` lists us.
    pub advertise: bool,
    /// Seconds between adverts; each says it expires after 1.5 times this.
    pub advertise_interval_secs: u64,
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
    /// ANSI colours in text logs: `auto` (only when stderr is a terminal and
    /// `NO_COLOR` is unset), `always` or `never`.
    pub color: String,
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
    /// A query or command older than this (from its AMQP timestamp, else from
    /// its arrival) is dropped unanswered: its requester gave up (Crossbar
    /// waits 2 s).
    pub request_deadline_ms: u64,
    /// Seconds between passive checks for Kazoo 5.1+'s `channels` exchange
    /// (the query queue is bound to it once it exists; WIRE-5.md §1).
    pub kazoo5_check_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// How long a starting instance waits for the next part of a peer's
    /// snapshot (a deadline for progress, not for the whole transfer).
    pub snapshot_timeout_ms: u64,
    /// Transfers tried from a live peer before seeding from ecallmgr.
    pub snapshot_attempts: u32,
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
    /// A reply read while warming up (a peer's snapshot part of 2,000
    /// channels, an ecallmgr's channel list) longer than this is refused
    /// before it is parsed.
    pub max_warmup_reply_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// The liveness file the worker refreshes while its bus session is up and its
    /// registry warm (`kazoo-channels health` checks it); empty = none.
    pub file: String,
}

/// The built-in defaults; also the source of the commented file the packages
/// ship (`crate::default_config`).
pub(crate) const DEFAULTS: &str = r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
brokers = "failover"
queue_type = "classic"
prefetch = 256
heartbeat_secs = 10
min_backoff_ms = 100
max_backoff_secs = 10
max_body_bytes = 4194304
max_message_bytes = 16777216
compress_above_bytes = 1048576

[amqp.tls]
ca_file = ""
cert_file = ""
key_file = ""
verify_peer = true

[node]
name = ""
advertise = true
advertise_interval_secs = 10

[log]
format = "text"
level = "info"
summary_interval_secs = 10
color = "auto"

[registry]
reorder_window_ms = 5000
tombstone_secs = 120

[queries]
system_wide_listing = false
request_deadline_ms = 2000
kazoo5_check_secs = 60

[cluster]
snapshot_timeout_ms = 2000
snapshot_attempts = 3
seed_timeout_ms = 2000
shutdown_grace_secs = 10
max_channel_age_secs = 0
reconcile_interval_secs = 300
reconcile_min_age_secs = 3600
reconcile_batch = 200
max_warmup_reply_bytes = 67108864

[health]
file = ""
"#;

pub const ENV_PREFIX: &str = "KAZOO_CHANNELS";

impl Settings {
    /// Loads the layers and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, None)
    }

    /// [`Settings::load`] with the environment given (tests), or the process's.
    pub(crate) fn load_with(
        file: Option<&Path>,
        env: Option<config::Map<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            b = b.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        b = b.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(env),
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
        if self.amqp.url.as_slice().is_empty() {
            return invalid("amqp.url", "names no broker");
        }
        // Each URL is read as the worker will read it (TLS files included),
        // so a typo is a configuration error naming it, not a reconnect loop.
        if let Err(e) = self.brokers() {
            return invalid("amqp.url", &e.to_string());
        }
        if let Err(e) = self.layout() {
            return invalid(e.key(), &e.to_string());
        }
        if !self.node.name.is_empty() && self.node.name.matches('@').count() != 1 {
            return invalid(
                "node.name",
                "must hold exactly one `@` (name@host): Kazoo's node list splits on it",
            );
        }
        if self.node.advertise_interval_secs == 0 {
            return invalid(
                "node.advertise_interval_secs",
                "must be at least 1 (node.advertise = false turns adverts off)",
            );
        }
        if self.amqp.compress_above_bytes >= self.amqp.max_message_bytes {
            return invalid(
                "amqp.compress_above_bytes",
                "must be below amqp.max_message_bytes",
            );
        }
        if self.cluster.snapshot_attempts == 0 {
            return invalid("cluster.snapshot_attempts", "must be at least 1");
        }
        if self.amqp.prefetch == 0 {
            return invalid("amqp.prefetch", "must be at least 1");
        }
        if !matches!(self.log.color.as_str(), "auto" | "always" | "never") {
            return invalid("log.color", "must be \"auto\", \"always\" or \"never\"");
        }
        if self.queries.request_deadline_ms == 0 {
            return invalid("queries.request_deadline_ms", "must be at least 1");
        }
        if self.amqp.max_body_bytes == 0 {
            return invalid("amqp.max_body_bytes", "must be at least 1");
        }
        if self.cluster.max_warmup_reply_bytes == 0 {
            return invalid("cluster.max_warmup_reply_bytes", "must be at least 1");
        }
        if self.queries.kazoo5_check_secs == 0 {
            return invalid("queries.kazoo5_check_secs", "must be at least 1");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid("log.format", "must be \"text\" or \"json\"");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid("log.level", "is not a valid tracing filter (e.g. \"info\")");
        }
        Ok(())
    }

    /// The brokers, in the order they are preferred in (Kazoo's: the
    /// alphabetically smallest URL first).
    pub fn brokers(&self) -> Result<Vec<crate::bus::Broker>, crate::bus::BrokerError> {
        let a = &self.amqp;
        let mut brokers = a
            .url
            .as_slice()
            .iter()
            .map(|url| crate::bus::Broker::parse(url, &a.tls, a.heartbeat_secs))
            .collect::<Result<Vec<_>, _>>()?;
        brokers.sort_by(|x, y| x.configured().cmp(y.configured()));
        brokers.dedup_by(|x, y| x.configured() == y.configured());
        Ok(brokers)
    }

    /// Every zone's brokers, the local zone's first (see [`crate::zones::Layout`]).
    pub fn layout(&self) -> Result<crate::zones::Layout, crate::zones::ZoneError> {
        crate::zones::Layout::new(&self.amqp, self.brokers()?)
    }

    pub fn min_backoff(&self) -> Duration {
        Duration::from_millis(self.amqp.min_backoff_ms.max(1))
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.amqp.max_backoff_secs.max(1)).max(self.min_backoff())
    }

    pub fn reorder_window(&self) -> Duration {
        Duration::from_millis(self.registry.reorder_window_ms)
    }

    /// The effective configuration as TOML, password redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.amqp.url = self.amqp.url.redacted();
        shown.amqp.zones = crate::amqp_settings::redacted(&self.amqp.zones);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_against_a_local_broker() {
        let s = Settings::defaults();
        assert_eq!(
            s.amqp.url.as_slice(),
            ["amqp://guest:guest@127.0.0.1:5672/%2f"]
        );
        assert_eq!(s.amqp.brokers, BrokerMode::Failover);
        assert_eq!(s.amqp.queue_type, QueueType::Classic);
        assert_eq!(s.amqp.heartbeat_secs, 10);
        assert!(s.amqp.tls.verify_peer);
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
        std::fs::write(&path, "[amqp]\nqueue_type = \"quorum\"\n").unwrap();
        assert_eq!(
            Settings::load(Some(&path)).unwrap().amqp.queue_type,
            QueueType::Quorum
        );
        std::fs::write(&path, "[amqp]\nqueue_type = \"mirrored\"\n").unwrap();
        assert!(Settings::load(Some(&path)).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn several_brokers_from_a_file_are_shown_redacted_and_preferred_by_name() {
        let dir = std::env::temp_dir().join(format!("kc-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[amqp]\nurl = [\"amqp://k:pw3@rabbit3:5672/kz\", \"amqp://k:pw1@rabbit1:5672/kz\"]\nbrokers = \"all\"\n",
        )
        .unwrap();
        let s = Settings::load_with(Some(&path), Some(config::Map::new())).unwrap();
        assert_eq!(s.amqp.brokers, BrokerMode::All);
        let order: Vec<String> = s
            .brokers()
            .unwrap()
            .iter()
            .map(|b| b.shown().to_owned())
            .collect();
        assert_eq!(
            order,
            [
                "amqp://k:***@rabbit1:5672/kz",
                "amqp://k:***@rabbit3:5672/kz"
            ]
        );
        let shown = s.to_redacted_toml();
        assert!(
            shown.contains("amqp://k:***@rabbit3:5672/kz")
                && shown.contains("amqp://k:***@rabbit1:5672/kz"),
            "{shown}"
        );
        assert!(!shown.contains("pw1") && !shown.contains("pw3"), "{shown}");

        // A malformed one is refused, named, its password hidden.
        std::fs::write(
            &path,
            "[amqp]\nurl = [\"amqp://k:pw1@rabbit1/kz\", \"amqp://k:pw2@rabbit2:port/kz\"]\n",
        )
        .unwrap();
        let e = Settings::load_with(Some(&path), Some(config::Map::new()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("amqp.url") && e.contains("amqp://k:***@rabbit2:port/kz"),
            "{e}"
        );
        assert!(!e.contains("pw2"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_environment_lists_brokers_with_commas() {
        let env = config::Map::from([
            (
                "KAZOO_CHANNELS__AMQP__URL".to_owned(),
                "amqp://a:1@b/x, amqps://a:2@a/x?verify=verify_none".to_owned(),
            ),
            (
                "KAZOO_CHANNELS__AMQP__HEARTBEAT_SECS".to_owned(),
                "5".to_owned(),
            ),
        ]);
        let s = Settings::load_with(None, Some(env)).unwrap();
        assert_eq!(s.amqp.url.as_slice().len(), 2);
        let brokers = s.brokers().unwrap();
        assert_eq!(
            brokers[0].shown(),
            "amqp://a:***@b/x",
            "amqp:// sorts before amqps://"
        );
        assert!(brokers[1].is_tls());
        assert_eq!(brokers[1].heartbeat_secs(), 5);
        assert_eq!(s.amqp.url.primary(), "amqp://a:1@b/x");
    }

    #[test]
    fn zones_come_from_the_file_or_the_environment() {
        let env = config::Map::from([
            ("KAZOO_CHANNELS__AMQP__ZONE".to_owned(), "z100".to_owned()),
            (
                "KAZOO_CHANNELS__AMQP__ZONES__Z200__URL".to_owned(),
                "amqp://k:pw@b1/kz,amqp://k:pw@b2/kz".to_owned(),
            ),
        ]);
        let s = Settings::load_with(None, Some(env)).unwrap();
        assert_eq!(s.amqp.local_zone(), "z100");
        let layout = s.layout().unwrap();
        assert_eq!(layout.brokers.len(), 3);
        assert_eq!((layout.zone(0), layout.zone(2)), ("z100", "z200"));
        let shown = s.to_redacted_toml();
        assert!(
            shown.contains("[amqp.zones.z200]") && shown.contains("amqp://k:***@b2/kz"),
            "{shown}"
        );
        assert!(!shown.contains("pw@"), "{shown}");

        let mut same = Settings::defaults();
        same.amqp.zone = Some("z100".into());
        let remote = crate::amqp_settings::RemoteZone {
            url: "amqp://b/kz".into(),
        };
        same.amqp.zones = [("z100".to_owned(), remote)].into();
        let e = same.validate().unwrap_err().to_string();
        assert!(e.contains("amqp.zone:") && e.contains("z100"), "{e}");
        assert_eq!(Settings::defaults().amqp.local_zone(), "local");
    }
}
