//! The broker settings (`[amqp]`, its TLS and zones), apart from the rest of
//! the configuration: the bus and the zone layout read them, and the
//! configuration loads and checks them, so they sit below all three.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost` (vhost `/` is `%2f`), or several:
    /// the brokers of the zone, as Kazoo's repeated `[amqp] uri =`.
    pub url: BrokerUrls,
    /// `failover` (Kazoo's rule: one broker at a time, the alphabetically
    /// smallest reachable) or `all` (Kamailio's: consume from every broker).
    pub brokers: BrokerMode,
    /// The kind of our queues: `classic` (independent brokers, a single
    /// node) or `quorum` (a RabbitMQ cluster: replicated, they outlive a node).
    pub queue_type: QueueType,
    /// Unacknowledged deliveries per consumer.
    pub prefetch: u16,
    /// The AMQP heartbeat we ask for (0 = none); a URL's `?heartbeat=` wins.
    pub heartbeat_secs: u16,
    /// The first wait before reconnecting when no broker can be reached.
    pub min_backoff_ms: u64,
    /// Seconds between reconnection attempts at most (backoff grows up to this).
    pub max_backoff_secs: u64,
    /// The largest message we publish: set it to the broker's
    /// `max_message_size` (16 MiB by default from RabbitMQ 4.0, 128 MiB before).
    /// A reply still larger once compressed is not sent.
    pub max_message_bytes: usize,
    /// Replies (and snapshot parts) larger than this go gzip-compressed.
    pub compress_above_bytes: usize,
    /// An event or request body longer than this is refused before it is
    /// parsed (replies read while warming up: `cluster.max_warmup_reply_bytes`).
    pub max_body_bytes: usize,
    /// For `amqps://` URLs; a URL's own `?cacertfile=` etc. win.
    pub tls: TlsSettings,
    /// The local zone's name (Kazoo's `zone =`); unset = Kazoo's `local`,
    /// and the advert then carries no `Zone` (see [`crate::zones`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The other zones, each with its brokers (`[amqp.zones.NAME]`, `url`).
    #[serde(default)]
    pub zones: RemoteZones,
}

/// How several brokers are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerMode {
    Failover,
    All,
}

/// The RabbitMQ queue type of the queues we declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Classic,
    Quorum,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM file of the CA(s) that sign the brokers' certificates; empty = the
    /// system's trust store.
    pub ca_file: String,
    /// PEM client certificate (chain) and its key, for brokers that ask for one.
    pub cert_file: String,
    pub key_file: String,
    /// Check the broker's certificate and name (false = `verify_none`).
    pub verify_peer: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            verify_peer: true,
        }
    }
}

/// One broker URL or several: a TOML string or array; a string may hold
/// several separated by commas (the environment's only way to give a list;
/// a comma inside a password is written `%2C`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BrokerUrls(Vec<String>);

impl BrokerUrls {
    /// The same URLs with their passwords hidden, for printing.
    pub fn redacted(&self) -> Self {
        Self(self.0.iter().map(|u| redact_url(u)).collect())
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The URL Kazoo would pick first: the alphabetically smallest. For tools
    /// that talk to one broker.
    pub fn primary(&self) -> &str {
        self.0.iter().min().map_or("", String::as_str)
    }
}

impl From<String> for BrokerUrls {
    fn from(url: String) -> Self {
        Self::from(vec![url])
    }
}

impl From<&str> for BrokerUrls {
    fn from(url: &str) -> Self {
        Self::from(url.to_owned())
    }
}

impl From<Vec<String>> for BrokerUrls {
    fn from(urls: Vec<String>) -> Self {
        Self(
            urls.iter()
                .flat_map(|u| u.split(','))
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl Serialize for BrokerUrls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for BrokerUrls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(url) => url.into(),
            OneOrMany::Many(urls) => urls.into(),
        })
    }
}

impl AmqpSettings {
    /// The local zone's name.
    pub fn local_zone(&self) -> &str {
        self.zone.as_deref().unwrap_or(DEFAULT_ZONE)
    }

    pub fn limits(&self) -> crate::kapi::compress::Limits {
        crate::kapi::compress::Limits {
            max_message_bytes: self.max_message_bytes,
            compress_above_bytes: self.compress_above_bytes,
        }
    }
}

/// Kazoo's name for a node's zone when none is configured (`kz_config:zone/0`).
pub const DEFAULT_ZONE: &str = "local";

/// One remote zone: `[amqp.zones.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteZone {
    /// The zone's brokers, as `amqp.url`: one URL or a list.
    pub url: BrokerUrls,
}

/// The remote zones by name (sorted, so their brokers have a stable order).
pub type RemoteZones = BTreeMap<String, RemoteZone>;

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

/// `[amqp.zones.NAME]` with the URLs' passwords hidden, for `check-config`.
pub fn redacted(zones: &RemoteZones) -> RemoteZones {
    zones
        .iter()
        .map(|(name, z)| {
            let url: Vec<String> = z.url.as_slice().iter().map(|u| redact_url(u)).collect();
            (name.clone(), RemoteZone { url: url.into() })
        })
        .collect()
}
