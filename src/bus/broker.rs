//! One broker to connect to: its URL with Kazoo's TLS query parameters read
//! and taken off, the TLS client configuration (rustls), and how it is shown
//! in logs. Kazoo's URIs go through RabbitMQ's Erlang client, which takes
//! `amqps://host:5671/vhost?cacertfile=…&certfile=…&keyfile=…&verify=verify_peer`,
//! so an operator can paste one here unchanged.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use rustls::ClientConfig;
use thiserror::Error;

use super::tls::{TlsChoice, client_config};
use crate::amqp_settings::{TlsSettings, redact_url};

/// How long the TCP connect and TLS handshake may take when the URL gives no
/// `connection_timeout`: a broker behind a dead link is left for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Query parameters lapin reads itself; passed through.
const LAPIN_PARAMS: [&str; 5] = [
    "heartbeat",
    "frame_max",
    "channel_max",
    "connection_timeout",
    "auth_mechanism",
];

/// A URL that cannot be used, or a TLS file that cannot be read. Every variant
/// names the broker by its redacted URL; none carries a file's content.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("{broker}: must start with amqp:// or amqps://")]
    Scheme { broker: String },
    #[error("{broker}: is not a valid AMQP URI: {reason}")]
    Uri { broker: String, reason: String },
    #[error("{broker}: unsupported URI parameter `{param}`")]
    Param { broker: String, param: String },
    #[error("{broker}: TLS parameter `{param}` on an amqp:// URL (use amqps://)")]
    TlsOnPlain { broker: String, param: String },
    #[error("{broker}: verify must be verify_peer or verify_none, not `{value}`")]
    Verify { broker: String, value: String },
    #[error("{broker}: a client certificate needs both a certificate file and a key file")]
    HalfIdentity { broker: String },
    #[error("{broker}: {what} {path}: {reason}")]
    File {
        broker: String,
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{broker}: TLS: {reason}")]
    Tls { broker: String, reason: String },
}

#[derive(Clone)]
pub struct Broker {
    /// The URL as configured, credentials included: Kazoo picks its primary
    /// as the alphabetically smallest of these, and so do we.
    configured: String,
    shown: String,
    uri: AMQPUri,
    tls: Option<Arc<ClientConfig>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Broker {
    /// Reads `url` (taking off Kazoo's TLS parameters), sets the heartbeat
    /// unless the URL has its own, and for `amqps://` loads the certificates.
    pub fn parse(url: &str, tls: &TlsSettings, heartbeat_secs: u16) -> Result<Self, BrokerError> {
        let broker = redact_url(url);
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(BrokerError::Scheme { broker });
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut choice = TlsChoice::from_settings(tls);
        let mut tls_params = Vec::new();
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "cacertfile" => choice.ca_file = Some(value.into()),
                "certfile" => choice.cert_file = Some(value.into()),
                "keyfile" => choice.key_file = Some(value.into()),
                "verify" => {
                    choice.verify_peer = match value.as_str() {
                        "verify_peer" => true,
                        "verify_none" => false,
                        _ => return Err(BrokerError::Verify { broker, value }),
                    }
                }
                k if LAPIN_PARAMS.contains(&k) => {
                    kept.push(pair);
                    continue;
                }
                _ => {
                    return Err(BrokerError::Param {
                        broker,
                        param: key.to_owned(),
                    });
                }
            }
            tls_params.push(key);
        }
        let lapin_url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut uri: AMQPUri = lapin_url.parse().map_err(|reason| BrokerError::Uri {
            broker: broker.clone(),
            reason,
        })?;
        uri.query.heartbeat.get_or_insert(heartbeat_secs);
        let connect_timeout = uri
            .query
            .connection_timeout
            .map_or(CONNECT_TIMEOUT, Duration::from_millis);
        let tls = match uri.scheme {
            AMQPScheme::AMQPS => Some(Arc::new(client_config(&broker, &choice)?)),
            AMQPScheme::AMQP => {
                if let Some(param) = tls_params.first() {
                    return Err(BrokerError::TlsOnPlain {
                        broker,
                        param: (*param).to_owned(),
                    });
                }
                None
            }
        };
        Ok(Self {
            configured: url.to_owned(),
            shown: broker,
            uri,
            tls,
            connect_timeout,
        })
    }

    /// A plain broker with default settings (tests and tools given one URL).
    pub fn plain(url: &str) -> Result<Self, BrokerError> {
        Self::parse(url, &TlsSettings::default(), DEFAULT_HEARTBEAT_SECS)
    }

    /// The URL with its password replaced, for logs and `check-config`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The URL as configured: the order brokers are preferred in.
    pub fn configured(&self) -> &str {
        &self.configured
    }

    pub fn heartbeat_secs(&self) -> u16 {
        self.uri.query.heartbeat.unwrap_or_default()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens one connection named `connection_name` (the `connection_name`
    /// client property `rabbitmqctl list_connections` shows). The TCP connect
    /// and the TLS handshake are bounded by the connect timeout; a certificate
    /// that does not verify fails here with rustls' reason.
    pub async fn connect(&self, connection_name: &str) -> Result<Connection, lapin::Error> {
        let props = ConnectionProperties::default().with_connection_name(connection_name.into());
        let runtime = lapin::runtime::default_runtime()?;
        let (tls, timeout) = (self.tls.clone(), self.connect_timeout);
        let connecting = Connection::connector(
            self.uri.clone(),
            runtime,
            async move |uri: AMQPUri, runtime| {
                let open = async {
                    let host = uri.authority.host.as_str();
                    let addrs: Vec<_> = tokio::net::lookup_host((host, uri.authority.port))
                        .await?
                        .collect();
                    let stream = AsyncTcpStream::connect(&runtime, addrs).await?;
                    match &tls {
                        None => Ok(stream),
                        Some(config) => stream
                            .into_rustls(&RustlsConnector::from(config.clone()), host)
                            .await
                            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}"))),
                    }
                };
                match tokio::time::timeout(timeout, open).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection within {} ms", timeout.as_millis()),
                    )),
                }
                .map_err(lapin::Error::from)
            },
            props,
        );
        // The AMQP handshake after the socket: a broker that accepts the
        // socket but never speaks is left too.
        match tokio::time::timeout(timeout * 2, connecting).await {
            Ok(r) => r,
            Err(_) => Err(lapin::Error::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "no AMQP handshake within the connect timeout",
            ))),
        }
    }
}

pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// `%2f` → `/` in a parameter's value (paths in a pasted URI may be encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> TlsSettings {
        TlsSettings::default()
    }

    #[test]
    fn kazoo_tls_parameters_are_taken_off_and_others_kept() {
        let b = Broker::parse(
            "amqp://u:p@rabbit:5672/%2f?heartbeat=5&connection_timeout=500",
            &tls(),
            10,
        )
        .unwrap();
        assert_eq!(b.heartbeat_secs(), 5);
        assert_eq!(b.connect_timeout, Duration::from_millis(500));
        assert_eq!(
            b.shown(),
            "amqp://u:***@rabbit:5672/%2f?heartbeat=5&connection_timeout=500"
        );
        let b = Broker::parse("amqp://rabbit/%2f", &tls(), 7).unwrap();
        assert_eq!(b.heartbeat_secs(), 7);
        assert!(!b.is_tls());
    }

    #[test]
    fn bad_urls_are_named_without_their_password() {
        let e = Broker::parse("http://u:secret@x", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://u:***@x") && !e.contains("secret"), "{e}");
        let e = Broker::parse("amqp://u:secret@x/?hearbeat=5", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hearbeat") && !e.contains("secret"), "{e}");
        let e = Broker::parse("amqp://x/?cacertfile=/ca.pem", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("amqps://"), "{e}");
        let e = Broker::parse("amqps://x/?verify=maybe", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("maybe"), "{e}");
        let e = Broker::parse("amqp://x:notaport/", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid AMQP URI"), "{e}");
    }

    #[test]
    fn tls_files_are_named_when_missing_or_wrong() {
        let e = Broker::parse("amqps://x/?cacertfile=/nonexistent/ca.pem", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CA file /nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("kc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = Broker::parse(
            &format!("amqps://x/?cacertfile={}", not_pem.display()),
            &tls(),
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = Broker::parse("amqps://x/?certfile=/c.pem&verify=verify_none", &tls(), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("both a certificate file and a key file"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn verify_none_needs_no_ca() {
        let b = Broker::parse("amqps://x/?verify=verify_none", &tls(), 10).unwrap();
        assert!(b.is_tls());
    }

    #[test]
    fn percent_decoding_of_paths() {
        assert_eq!(percent_decode("%2Fetc%2fca.pem"), "/etc/ca.pem");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4");
    }
}
