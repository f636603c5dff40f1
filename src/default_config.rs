//! The commented `config.toml` that the packages install at
//! `/etc/kazoo-channels/config.toml` (`kazoo-channels default-config`): every
//! key of the built-in defaults, commented out at its default, under a
//! one-line meaning. It is made from [`crate::config::DEFAULTS`] itself so the
//! two cannot drift, and a key without a meaning in [`MEANINGS`] is an error,
//! so a new setting cannot ship unexplained.

use thiserror::Error;

/// Every key, in the order the file shows them, with what it means. A key of
/// the built-in defaults missing here fails [`render`] (and the tests): add
/// its line where it belongs.
pub const MEANINGS: &[(&str, &str)] = &[
    (
        "amqp.url",
        "The broker: amqp://user:pass@host:port/vhost (vhost / is %2f), or several as a list (the brokers of the zone).",
    ),
    (
        "amqp.brokers",
        "With several brokers: \"failover\" (Kazoo's rule, one at a time) or \"all\" (Kamailio's, every broker at once).",
    ),
    (
        "amqp.queue_type",
        "The kind of every queue we declare: \"classic\" (one RabbitMQ, or Kazoo's independent brokers) or \"quorum\" (a RabbitMQ cluster: replicated, they outlive a node).",
    ),
    ("amqp.prefetch", "Unacknowledged deliveries per consumer."),
    (
        "amqp.heartbeat_secs",
        "The AMQP heartbeat asked for, in seconds (0 = none); a URL's ?heartbeat= wins.",
    ),
    (
        "amqp.min_backoff_ms",
        "The first wait before reconnecting when no broker answers (it doubles at each attempt).",
    ),
    (
        "amqp.max_backoff_secs",
        "The longest wait between reconnection attempts, in seconds.",
    ),
    (
        "amqp.max_body_bytes",
        "An event or request body longer than this is refused unread.",
    ),
    (
        "amqp.max_message_bytes",
        "The largest message we publish: the broker's max_message_size (16 MiB from RabbitMQ 4.0, 128 MiB before).",
    ),
    (
        "amqp.compress_above_bytes",
        "Replies and snapshot parts larger than this go gzip-compressed (must be below max_message_bytes).",
    ),
    (
        "amqp.tls.ca_file",
        "For amqps:// URLs: PEM file of the CAs that sign the brokers' certificates; empty = the system's store.",
    ),
    (
        "amqp.tls.cert_file",
        "PEM client certificate (chain), for brokers that ask for one.",
    ),
    (
        "amqp.tls.key_file",
        "The PEM key of that client certificate.",
    ),
    (
        "amqp.tls.verify_peer",
        "Check the broker's certificate and name (false = Kazoo's verify_none).",
    ),
    (
        "node.name",
        "The Node on every message we send; empty = kazoo-channels-<instance>@<hostname>.",
    ),
    (
        "node.advertise",
        "Advertise on Kazoo's nodes exchange, so sup kz_nodes status lists this instance.",
    ),
    (
        "node.advertise_interval_secs",
        "Seconds between adverts; each says Expires = 1.5 x this.",
    ),
    (
        "log.format",
        "\"text\" (readable lines) or \"json\" (one object per line, every field kept).",
    ),
    (
        "log.level",
        "A tracing filter, e.g. \"info,kazoo_channels=debug\"; RUST_LOG wins when set.",
    ),
    (
        "log.summary_interval_secs",
        "Seconds between the one-line registry summaries; 0 turns them off.",
    ),
    (
        "log.color",
        "ANSI colours in text logs: \"auto\" (a terminal only: never in the journal), \"always\" or \"never\".",
    ),
    (
        "registry.reorder_window_ms",
        "How long an ANSWER or BRIDGE for a call not yet created waits for its CREATE.",
    ),
    (
        "registry.tombstone_secs",
        "How long a destroyed call id refuses late events (no ghost channels).",
    ),
    (
        "queries.system_wide_listing",
        "Answer Account-ID \"all\" with every channel (Crossbar's system-wide listing).",
    ),
    (
        "queries.request_deadline_ms",
        "A query or command older than this is dropped unanswered (Crossbar waits 2 s).",
    ),
    (
        "queries.kazoo5_check_secs",
        "Seconds between checks for Kazoo 5.1+'s channels exchange (bound once it exists).",
    ),
    (
        "cluster.snapshot_timeout_ms",
        "How long a starting instance waits for the next part of a peer's snapshot.",
    ),
    (
        "cluster.snapshot_attempts",
        "Snapshot transfers tried from a live peer before seeding from ecallmgr.",
    ),
    (
        "cluster.seed_timeout_ms",
        "With no peer, how long seeding collects ecallmgr's channel lists.",
    ),
    (
        "cluster.shutdown_grace_secs",
        "On SIGTERM, how long in-flight requests get to finish (the unit's TimeoutStopSec is 30).",
    ),
    (
        "cluster.max_channel_age_secs",
        "Drop channels older than this many seconds; 0 = never.",
    ),
    (
        "cluster.reconcile_interval_secs",
        "Seconds between reconciles with ecallmgr; 0 = never.",
    ),
    (
        "cluster.reconcile_min_age_secs",
        "Only channels older than this are checked with ecallmgr (channel_status_req).",
    ),
    (
        "cluster.reconcile_batch",
        "At most this many channels are checked per reconcile.",
    ),
    (
        "cluster.max_warmup_reply_bytes",
        "A reply read while warming up (a snapshot part, an ecallmgr channel list) longer than this is refused.",
    ),
    (
        "health.file",
        "A liveness file rewritten every 5 s while connected and warm (kazoo-channels health); empty = none.",
    ),
];

const HEADER: &str = "\
# kazoo-channels configuration.
#
# Every setting is shown commented out at its built-in default, under what it
# means: uncomment a line and edit it to change it. Environment variables win
# over this file: KAZOO_CHANNELS__<SECTION>__<KEY>, e.g. KAZOO_CHANNELS__AMQP__URL
# (the service reads them from /etc/default/kazoo-channels or
# /etc/sysconfig/kazoo-channels). `kazoo-channels check-config` validates the
# result; the service runs it before every start.
#
# Generated by `kazoo-channels default-config`.
";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error(
        "configuration key {0} has no one-line meaning: add it to MEANINGS in src/default_config.rs"
    )]
    Unexplained(String),
    #[error("MEANINGS in src/default_config.rs explains {0}, which the built-in defaults lack")]
    Unknown(String),
    #[error("the built-in defaults are not TOML: {0}")]
    Defaults(String),
}

/// The file the packages ship, from the built-in defaults.
pub fn render() -> Result<String, TemplateError> {
    render_from(crate::config::DEFAULTS, MEANINGS)
}

/// The file for `defaults` (a TOML text) explained by `meanings`.
pub fn render_from(defaults: &str, meanings: &[(&str, &str)]) -> Result<String, TemplateError> {
    let table: toml::Table = defaults
        .parse()
        .map_err(|e: toml::de::Error| TemplateError::Defaults(e.to_string()))?;
    let mut keys = Vec::new();
    leaf_keys(&table, "", &mut keys);
    if let Some(key) = keys.iter().find(|k| !meanings.iter().any(|(m, _)| m == k)) {
        return Err(TemplateError::Unexplained(key.clone()));
    }
    let mut out = String::from(HEADER);
    let mut section = None;
    for (key, meaning) in meanings {
        let value = lookup(&table, key).ok_or_else(|| TemplateError::Unknown((*key).into()))?;
        let (table_name, leaf) = key.rsplit_once('.').unwrap_or(("", key));
        if section != Some(table_name) {
            out.push_str(&format!("\n[{table_name}]\n"));
            section = Some(table_name);
        }
        out.push_str(&format!("# {meaning}\n# {leaf} = {value}\n"));
    }
    Ok(out)
}

/// The dotted name of every value that is not a table, e.g. `amqp.tls.ca_file`.
fn leaf_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => leaf_keys(inner, &key, out),
            _ => out.push(key),
        }
    }
}

fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let (first, rest) = key.split_once('.').unwrap_or((key, ""));
    match (table.get(first)?, rest) {
        (value, "") if !value.is_table() => Some(value),
        (toml::Value::Table(inner), rest) if !rest.is_empty() => lookup(inner, rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// The file with every `# key = value` line uncommented.
    fn uncommented(file: &str) -> String {
        file.lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if is_setting(rest) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_setting(line: &str) -> bool {
        line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
    }

    fn loaded(text: &str) -> serde_json::Value {
        let dir = std::env::temp_dir().join(format!("kc-default-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        // The environment is left out: only the file is compared.
        let s = Settings::load_with(Some(&path), Some(::config::Map::new())).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        serde_json::to_value(s).unwrap()
    }

    #[test]
    fn every_default_key_is_explained_and_nothing_else() {
        let file = render().unwrap();
        let mut keys = Vec::new();
        leaf_keys(&crate::config::DEFAULTS.parse().unwrap(), "", &mut keys);
        for key in &keys {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(file.contains(&format!("\n# {leaf} = ")), "{key} missing");
        }
        assert_eq!(keys.len(), MEANINGS.len(), "one meaning per key");
    }

    #[test]
    fn the_shipped_file_as_installed_gives_exactly_the_defaults() {
        let file = render().unwrap();
        assert_eq!(
            loaded(&file),
            serde_json::to_value(Settings::defaults()).unwrap()
        );
    }

    #[test]
    fn uncommenting_every_line_gives_the_defaults_key_for_key() {
        let file = uncommented(&render().unwrap());
        let shipped: toml::Table = file.parse().unwrap();
        let builtin: toml::Table = crate::config::DEFAULTS.parse().unwrap();
        assert_eq!(shipped, builtin, "{file}");
        assert_eq!(
            loaded(&file),
            serde_json::to_value(Settings::defaults()).unwrap()
        );
    }

    #[test]
    fn each_key_has_one_line_of_meaning() {
        for (key, meaning) in MEANINGS {
            assert!(!meaning.is_empty() && !meaning.contains('\n'), "{key}");
        }
    }

    #[test]
    fn a_new_key_without_a_meaning_is_named() {
        let defaults = "[amqp]\nurl = \"amqp://x\"\nqueue_type = \"classic\"\n";
        let meanings = [("amqp.url", "The broker.")];
        assert_eq!(
            render_from(defaults, &meanings),
            Err(TemplateError::Unexplained("amqp.queue_type".into()))
        );
        let meanings = [("amqp.url", "The broker."), ("amqp.gone", "Stale.")];
        assert_eq!(
            render_from("[amqp]\nurl = \"amqp://x\"\n", &meanings),
            Err(TemplateError::Unknown("amqp.gone".into()))
        );
    }

    #[test]
    fn nested_tables_get_their_own_header() {
        let defaults = "[amqp]\nurl = \"u\"\n[amqp.zones.east]\nurl = \"e\"\n";
        let meanings = [
            ("amqp.url", "The broker."),
            ("amqp.zones.east.url", "East's broker."),
        ];
        let file = render_from(defaults, &meanings).unwrap();
        assert!(
            file.ends_with("[amqp]\n# The broker.\n# url = \"u\"\n\n[amqp.zones.east]\n# East's broker.\n# url = \"e\"\n"),
            "{file}"
        );
    }
}
