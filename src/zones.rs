//! Kazoo's zones (NODES.md §2): the local zone (`amqp.zone`, its brokers
//! `amqp.url`) and the remote ones (`[amqp.zones.NAME]`, each with `url`), as
//! `config.ini`'s `[zone]` sections name them. The local zone's brokers come
//! first in the worker's broker list, so the primary (where our own messages
//! go) is always one of them; a remote zone's brokers are consumed each on its
//! own, as Kazoo's federated listeners consume them.

use crate::amqp_settings::AmqpSettings;
use crate::bus::{Broker, BrokerError};

/// A zone setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("zone name `{0}` must be lower-case letters, digits, `_` or `-`")]
    Name(String),
    #[error("remote zone `{0}` has the local zone's name (amqp.zone)")]
    SameAsLocal(String),
    #[error("remote zone `{0}` names no broker")]
    NoBroker(String),
    #[error("{url} is listed in zone `{first}` and in zone `{second}`: a broker is in one zone")]
    Twice {
        url: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl ZoneError {
    /// The configuration key to fix.
    pub fn key(&self) -> &'static str {
        match self {
            ZoneError::SameAsLocal(_) | ZoneError::Name(_) => "amqp.zone",
            _ => "amqp.zones",
        }
    }
}

/// Every broker the worker consumes, local zone first (most preferred first),
/// then each remote zone's in zone-name order, with the zone each is in.
#[derive(Debug, Clone)]
pub struct Layout {
    pub brokers: Vec<Broker>,
    zones: Vec<String>,
    local: usize,
}

impl Layout {
    /// Reads the zones of `amqp`; `local` are the local zone's brokers as
    /// [`crate::config::Settings::brokers`] ordered them.
    pub fn new(amqp: &AmqpSettings, local: Vec<Broker>) -> Result<Self, ZoneError> {
        let here = amqp.local_zone();
        check_name(here)?;
        let local_count = local.len();
        let mut zones = vec![here.to_owned(); local_count];
        let mut brokers = local;
        for (name, zone) in &amqp.zones {
            check_name(name)?;
            if name == here {
                return Err(ZoneError::SameAsLocal(name.clone()));
            }
            if zone.url.as_slice().is_empty() {
                return Err(ZoneError::NoBroker(name.clone()));
            }
            let mut theirs = zone
                .url
                .as_slice()
                .iter()
                .map(|u| Broker::parse(u, &amqp.tls, amqp.heartbeat_secs))
                .collect::<Result<Vec<_>, _>>()?;
            theirs.sort_by(|x, y| x.configured().cmp(y.configured()));
            theirs.dedup_by(|x, y| x.configured() == y.configured());
            for b in theirs {
                if let Some(i) = brokers
                    .iter()
                    .position(|o| o.configured() == b.configured())
                {
                    return Err(ZoneError::Twice {
                        url: b.shown().to_owned(),
                        first: zones[i].clone(),
                        second: name.clone(),
                    });
                }
                zones.push(name.clone());
                brokers.push(b);
            }
        }
        Ok(Self {
            brokers,
            zones,
            local: local_count,
        })
    }

    /// The zone broker `i` is in.
    pub fn zone(&self, i: usize) -> &str {
        &self.zones[i]
    }

    /// Whether broker `i` is in the local zone.
    pub fn is_local(&self, i: usize) -> bool {
        i < self.local
    }

    /// The local zone's brokers' indexes, most preferred first.
    pub fn local(&self) -> std::ops::Range<usize> {
        0..self.local
    }

    /// The remote zones' brokers' indexes.
    pub fn remote(&self) -> std::ops::Range<usize> {
        self.local..self.brokers.len()
    }
}

impl Layout {
    /// `check-config`'s list of brokers and their zones, as TOML comments.
    pub fn summary(&self) -> String {
        let mut out = String::from(
            "# brokers by zone (the local zone's first; our own messages go to its primary):\n",
        );
        for (i, b) in self.brokers.iter().enumerate() {
            let role = if self.is_local(i) { "local" } else { "remote" };
            out.push_str(&format!("#   {} ({role})  {}\n", self.zone(i), b.shown()));
        }
        out
    }
}

fn check_name(name: &str) -> Result<(), ZoneError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ZoneError::Name(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp_settings::{DEFAULT_ZONE, RemoteZone};
    use crate::config::Settings;

    fn with_zones(local: &str, zones: &[(&str, &[&str])]) -> Settings {
        let mut s = Settings::defaults();
        s.amqp.url = local.into();
        s.amqp.zone = Some("z100".into());
        s.amqp.zones = zones
            .iter()
            .map(|(n, urls)| {
                let url: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
                ((*n).to_owned(), RemoteZone { url: url.into() })
            })
            .collect();
        s
    }

    fn layout(s: &Settings) -> Result<Layout, ZoneError> {
        Layout::new(&s.amqp, s.brokers().unwrap())
    }

    #[test]
    fn local_brokers_come_first_then_each_zone_in_name_order() {
        let s = with_zones(
            "amqp://a:1@l2/kz,amqp://a:1@l1/kz",
            &[
                ("z300", &["amqp://a:1@c/kz"]),
                ("z200", &["amqp://a:1@b2/kz", "amqp://a:1@b1/kz"]),
            ],
        );
        let l = layout(&s).unwrap();
        let shown: Vec<(&str, &str)> = (0..l.brokers.len())
            .map(|i| (l.zone(i), l.brokers[i].shown()))
            .collect();
        assert_eq!(
            shown,
            [
                ("z100", "amqp://a:***@l1/kz"),
                ("z100", "amqp://a:***@l2/kz"),
                ("z200", "amqp://a:***@b1/kz"),
                ("z200", "amqp://a:***@b2/kz"),
                ("z300", "amqp://a:***@c/kz"),
            ]
        );
        assert_eq!(l.local(), 0..2);
        assert_eq!(l.remote(), 2..5);
        assert!(l.is_local(1) && !l.is_local(2));
        let summary = l.summary();
        assert!(
            summary.contains("#   z100 (local)  amqp://a:***@l1/kz\n")
                && summary.contains("#   z300 (remote)  amqp://a:***@c/kz\n"),
            "{summary}"
        );
    }

    #[test]
    fn no_zones_is_one_local_zone() {
        let mut s = Settings::defaults();
        s.amqp.url = "amqp://h1/kz,amqp://h2/kz".into();
        let l = layout(&s).unwrap();
        assert_eq!(l.brokers.len(), 2);
        assert_eq!(l.zone(1), DEFAULT_ZONE);
        assert!(l.remote().is_empty());
    }

    #[test]
    fn unusable_zones_are_refused_with_their_key() {
        let e = layout(&with_zones("amqp://l/kz", &[("z100", &["amqp://b/kz"])])).unwrap_err();
        assert!(matches!(e, ZoneError::SameAsLocal(_)), "{e}");
        assert_eq!(e.key(), "amqp.zone");
        let e = layout(&with_zones("amqp://l/kz", &[("Z2", &["amqp://b/kz"])])).unwrap_err();
        assert!(matches!(e, ZoneError::Name(_)), "{e}");
        let e = layout(&with_zones("amqp://l/kz", &[("z2", &[])])).unwrap_err();
        assert!(matches!(e, ZoneError::NoBroker(_)), "{e}");
        let e = layout(&with_zones(
            "amqp://u:pw@l/kz",
            &[("z2", &["amqp://u:pw@l/kz"])],
        ))
        .unwrap_err();
        assert_eq!(e.key(), "amqp.zones");
        let text = e.to_string();
        assert!(
            text.contains("`z100`") && text.contains("`z2`") && !text.contains("pw"),
            "{text}"
        );
        let e = layout(&with_zones("amqp://l/kz", &[("z2", &["http://b"])])).unwrap_err();
        assert!(matches!(e, ZoneError::Broker(_)), "{e}");
    }
}
