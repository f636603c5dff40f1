//! The rustls client configuration of one `amqps://` broker: its CA (or the
//! system's trust store), an optional client certificate, or no verification
//! at all (`verify_none`). Errors name the broker and the file, never what a
//! file holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::BrokerError;
use crate::amqp_settings::TlsSettings;

/// TLS settings for one broker: the configuration's, with the URL's own
/// parameters winning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TlsChoice {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) verify_peer: bool,
}

impl TlsChoice {
    pub(super) fn from_settings(s: &TlsSettings) -> Self {
        let path = |p: &str| (!p.is_empty()).then(|| PathBuf::from(p));
        Self {
            ca_file: path(&s.ca_file),
            cert_file: path(&s.cert_file),
            key_file: path(&s.key_file),
            verify_peer: s.verify_peer,
        }
    }
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

pub(super) fn client_config(broker: &str, choice: &TlsChoice) -> Result<ClientConfig, BrokerError> {
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
