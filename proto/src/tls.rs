//! Mutual TLS for `https://` endpoints: rustls with the ring provider,
//! TLS 1.3 only, and certificates on both sides checked against one CA.
//!
//! The peer's identity is the common name (CN) of its certificate. Names
//! are limited to the id character set, so a certificate can never name
//! itself like a local user (`uid:0`).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How long a client may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes that may be under way at once before accepting pauses.
const PENDING_HANDSHAKES: usize = 64;

/// The HTTP/2 protocol id both sides offer in ALPN.
const ALPN_H2: &[u8] = b"h2";

/// The three files of a TLS setup: the CA that signs every peer, and this
/// side's certificate and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Errors from loading TLS files or from a peer's certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error(
        "invalid TLS certificate {cert} or key {key}; check that the key belongs to the certificate"
    )]
    Setup {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("invalid CA certificate in {path}")]
    Ca {
        path: PathBuf,
        #[source]
        source: Box<rustls::Error>,
    },
    #[error("invalid CA certificate in {path}: {message}")]
    Verifier { path: PathBuf, message: String },
    #[error("certificate {path} is not valid now: it is valid from {from} to {to}")]
    NotValidNow {
        path: PathBuf,
        from: String,
        to: String,
    },
    #[error("certificate {path} was not issued by the CA in {ca} (its issuer is {issuer})")]
    OtherIssuer {
        path: PathBuf,
        ca: PathBuf,
        issuer: String,
    },
    #[error("the peer presented no certificate")]
    NoPeerCertificate,
    #[error("the peer's certificate cannot be parsed")]
    BadPeerCertificate,
    #[error(
        "the peer's certificate names {0:?}: a common name must be 1-64 letters, digits, \
         '.', '_' or '-'"
    )]
    BadPeerName(String),
}

impl TlsFiles {
    /// Names of the daemons' three TLS settings, for errors.
    pub const SETTINGS: &str = "tls_ca, tls_cert and tls_key (--tls-ca, --tls-cert, --tls-key)";

    /// Groups three settings (CA, certificate, key), which are set all
    /// together or not at all. The error names them as `names` gives.
    pub fn from_settings(
        names: &str,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> anyhow::Result<Option<TlsFiles>> {
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsFiles { ca, cert, key })),
            (None, None, None) => Ok(None),
            _ => anyhow::bail!("{names} go together: set all three or none"),
        }
    }

    /// Builds the settings `https://` servers use: TLS 1.3 only, and a
    /// client certificate signed by the CA is required.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let ca = read_certificates(&self.ca)?;
        let roots = Arc::new(self.roots(&ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|error| TlsError::Verifier {
                path: self.ca.clone(),
                message: error.to_string(),
            })?;
        let (chain, key) = self.identity(&ca)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| self.setup_error(source))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|source| self.setup_error(source))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// Builds the settings clients use: TLS 1.3 only, the server checked
    /// against the CA, and this side's certificate offered.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        self.client_config_for(None)
    }

    /// Like [`TlsFiles::client_config`], and the server's certificate must
    /// also carry the common name `expected`, so that one peer of the CA
    /// cannot stand in for another (a worker for the manager, or for
    /// another worker).
    pub fn client_config_for(&self, expected: Option<&str>) -> Result<Arc<ClientConfig>, TlsError> {
        let ca = read_certificates(&self.ca)?;
        let roots = Arc::new(self.roots(&ca)?);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|error| TlsError::Verifier {
                path: self.ca.clone(),
                message: error.to_string(),
            })?;
        let verifier: Arc<dyn ServerCertVerifier> = match expected {
            Some(name) => Arc::new(NamedServer {
                inner: verifier,
                name: name.to_owned(),
            }),
            None => verifier,
        };
        let (chain, key) = self.identity(&ca)?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| self.setup_error(source))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain, key)
            .map_err(|source| self.setup_error(source))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    fn roots(&self, ca: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert.clone()).map_err(|source| TlsError::Ca {
                path: self.ca.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(roots)
    }

    fn identity(
        &self,
        ca: &[CertificateDer<'static>],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let chain = read_certificates(&self.cert)?;
        self.check_own(&chain[0], ca)?;
        let pem = read(&self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey {
            path: self.key.clone(),
        })?;
        Ok((chain, key))
    }

    /// Checks this side's certificate at start: it must be valid now and
    /// issued by the CA, because no peer could accept it otherwise.
    fn check_own(
        &self,
        cert: &CertificateDer<'_>,
        ca: &[CertificateDer<'_>],
    ) -> Result<(), TlsError> {
        let bad = || TlsError::NoCertificate {
            path: self.cert.clone(),
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad())?;
        let validity = parsed.validity();
        if !validity.is_valid() {
            return Err(TlsError::NotValidNow {
                path: self.cert.clone(),
                from: validity.not_before.to_string(),
                to: validity.not_after.to_string(),
            });
        }
        let issued_by_ca = ca.iter().any(|ca| {
            x509_parser::parse_x509_certificate(ca.as_ref())
                .is_ok_and(|(_, ca)| parsed.verify_signature(Some(ca.public_key())).is_ok())
        });
        if !issued_by_ca {
            return Err(TlsError::OtherIssuer {
                path: self.cert.clone(),
                ca: self.ca.clone(),
                issuer: parsed.issuer().to_string(),
            });
        }
        Ok(())
    }

    fn setup_error(&self, source: rustls::Error) -> TlsError {
        TlsError::Setup {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source: Box::new(source),
        }
    }
}

/// Verifies a server's certificate against the CA, as rustls does, and
/// then checks its common name.
#[derive(Debug)]
struct NamedServer {
    inner: Arc<WebPkiServerVerifier>,
    name: String,
}

impl ServerCertVerifier for NamedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let name = peer_name(std::slice::from_ref(end_entity))
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        if name != self.name {
            return Err(rustls::Error::General(format!(
                "the server's certificate names {name:?}, not the expected {:?}",
                self.name
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Returns the identity in a verified peer chain: the common name of its
/// first (end-entity) certificate.
pub fn peer_name(chain: &[CertificateDer<'_>]) -> Result<String, TlsError> {
    let first = chain.first().ok_or(TlsError::NoPeerCertificate)?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|_| TlsError::BadPeerCertificate)?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(TlsError::BadPeerCertificate)?;
    if !crate::names::is_valid_id(name) {
        return Err(TlsError::BadPeerName(name.to_owned()));
    }
    Ok(name.to_owned())
}

/// Accepts TCP connections on `listener` and yields those that complete the
/// TLS handshake. A failed handshake (no certificate, another CA, an
/// expired certificate, TLS 1.2) is logged and the connection dropped.
pub fn accept(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> mpsc::Receiver<io::Result<TlsStream<TcpStream>>> {
    let (sender, receiver) = mpsc::channel(PENDING_HANDSHAKES);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = sender.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "failed to accept a TCP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(handshake(acceptor.clone(), stream, peer, sender.clone()));
        }
    });
    receiver
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    sender: mpsc::Sender<io::Result<TlsStream<TcpStream>>>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let _ = sender.send(Ok(stream)).await;
        }
        Ok(Err(error)) => {
            tracing::warn!(%peer, error = %error, "TLS handshake rejected");
        }
        Err(_) => {
            tracing::warn!(%peer, "TLS handshake timed out");
        }
    }
}

/// Opens a TLS connection to `authority` (`host:port`), checking that the
/// server's certificate names `host`.
pub async fn connect(
    authority: &str,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let host = host_of(authority);
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    let stream = TcpStream::connect(authority).await?;
    TlsConnector::from(config).connect(name, stream).await
}

/// Returns the host of `host:port`, without the brackets of an IPv6 host.
fn host_of(authority: &str) -> &str {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_port_and_brackets() {
        assert_eq!(host_of("localhost:50051"), "localhost");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:50051"), "::1");
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let error = files.server_config().unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn file_without_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let files = TlsFiles {
            ca: ca.clone(),
            cert: ca.clone(),
            key: ca.clone(),
        };
        let error = files.client_config().unwrap_err();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains("ca.pem"), "{error}");
    }
}
