//! One broker to connect to: its URL with Kazoo's TLS query parameters read
//! and taken off, the TLS client configuration (rustls), and how it is shown
//! in logs. Kazoo's URIs go through RabbitMQ's Erlang client, which takes
//! `amqps://host:5671/vhost?cacertfile=…&certfile=…&keyfile=…&verify=verify_peer`,
//! so an operator can paste one here unchanged.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;

use crate::config::{TlsSettings, redact_url};

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

/// TLS settings for one broker: the configuration's, with the URL's own
/// parameters winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TlsChoice {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    verify_peer: bool,
}

impl TlsChoice {
    fn from_settings(s: &TlsSettings) -> Self {
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        Self {
            ca_file: path(&s.ca_file),
            cert_file: path(&s.cert_file),
            key_file: path(&s.key_file),
            verify_peer: s.verify_peer,
        }
    }
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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(broker: &str, what: &'static str, path: &Path) -> Result<Vec<u8>, BrokerError> {
    std::fs::read(path).map_err(|e| BrokerError::File {
        broker: broker.to_owned(),
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn certificates(
    broker: &str,
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, BrokerError> {
    let pem = read_file(broker, what, path)?;
    let bad = |reason: String| BrokerError::File {
        broker: broker.to_owned(),
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

fn client_config(broker: &str, choice: &TlsChoice) -> Result<ClientConfig, BrokerError> {
    let tls_error = |reason: String| BrokerError::Tls {
        broker: broker.to_owned(),
        reason,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = if !choice.verify_peer {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &choice.ca_file {
            Some(path) => {
                for cert in certificates(broker, "CA file", path)? {
                    roots.add(cert).map_err(|e| BrokerError::File {
                        broker: broker.to_owned(),
                        what: "CA file",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
            }
            // No CA given: the system's trust store, as Kazoo's Erlang client
            // with verify_peer and no cacertfile would not manage at all.
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(tls_error(
                        "no CA: set amqp.tls.ca_file or ?cacertfile= (the system has no trusted certificates)".into(),
                    ));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&choice.cert_file, &choice.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = certificates(broker, "certificate file", cert)?;
            let pem = read_file(broker, "key file", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| BrokerError::File {
                broker: broker.to_owned(),
                what: "key file",
                path: key.clone(),
                reason: "holds no PEM private key".into(),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| tls_error(format!("client certificate: {e}")))
        }
        _ => Err(BrokerError::HalfIdentity {
            broker: broker.to_owned(),
        }),
    }
}

/// `verify=verify_none`: the server's certificate is not checked (its
/// handshake signatures still are, so the session is encrypted to whoever
/// holds the key it presented).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
