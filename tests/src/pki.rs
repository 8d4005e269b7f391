//! Certificates for the mutual TLS tests, made by the real
//! `herd-managerd certs`, plus an expired one, which it cannot make.
//!
//! Test support: a failed unwrap here is a failed test, as in the tests.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use time::{Duration, OffsetDateTime};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore};

use crate::binary;

/// A folder of certificates under one CA.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// Runs `herd-managerd certs` in `dir` with `args` after `--out DIR`.
    pub fn create(dir: &Path, args: &[&str]) -> Pki {
        let output = Command::new(binary("herd-managerd"))
            .arg("certs")
            .arg("--out")
            .arg(dir)
            .args(args)
            .output()
            .expect("run herd-managerd certs");
        assert!(
            output.status.success(),
            "herd-managerd certs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Pki {
            dir: dir.to_owned(),
        }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Returns the CLI environment for client `name` of this CA at `addr`.
    pub fn client_env(&self, name: &str, addr: &str) -> Vec<(String, String)> {
        vec![
            ("HERD_ADDR".into(), addr.into()),
            ("HERD_CACERT".into(), self.path("ca.pem")),
            (
                "HERD_CLIENT_CERT".into(),
                self.path(&format!("client-{name}.pem")),
            ),
            (
                "HERD_CLIENT_KEY".into(),
                self.path(&format!("client-{name}-key.pem")),
            ),
        ]
    }

    /// Returns the TLS files of client `name`.
    pub fn client_files(&self, name: &str) -> herd_proto::tls::TlsFiles {
        herd_proto::tls::TlsFiles {
            ca: self.dir.join("ca.pem"),
            cert: self.dir.join(format!("client-{name}.pem")),
            key: self.dir.join(format!("client-{name}-key.pem")),
        }
    }

    /// Daemon flags for the manager's (`manager`) or a worker's
    /// (`worker-ID`) certificate.
    pub fn flags(&self, file: &str) -> Vec<String> {
        vec![
            "--tls-ca".into(),
            self.path("ca.pem"),
            "--tls-cert".into(),
            self.path(&format!("{file}.pem")),
            "--tls-key".into(),
            self.path(&format!("{file}-key.pem")),
        ]
    }

    /// Signs a client certificate for `name` that expired yesterday, as
    /// `client-NAME.pem`; `herd-managerd certs` cannot make one.
    pub fn expired_client(&self, name: &str) {
        let ca_key = KeyPair::from_pem(&read(&self.dir.join("ca-key.pem"))).expect("CA key");
        let issuer = Issuer::from_ca_cert_pem(&read(&self.dir.join("ca.pem")), ca_key).expect("CA");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        params.not_after = OffsetDateTime::now_utc() - Duration::days(1);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(self.dir.join(format!("client-{name}.pem")), cert.pem()).unwrap();
        std::fs::write(
            self.dir.join(format!("client-{name}-key.pem")),
            key.serialize_pem(),
        )
        .unwrap();
    }

    /// Returns TLS 1.3 client settings trusting this CA, offering client
    /// `name`'s certificate of `from` (another or the same CA), or none.
    pub fn client_config(&self, from: Option<(&Pki, &str)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca = std::fs::read(self.dir.join("ca.pem")).unwrap();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match from {
            None => builder.with_no_client_auth(),
            Some((pki, name)) => {
                let cert = std::fs::read(pki.dir.join(format!("client-{name}.pem"))).unwrap();
                let key = std::fs::read(pki.dir.join(format!("client-{name}-key.pem"))).unwrap();
                let chain = CertificateDer::pem_slice_iter(&cert)
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Opens TLS to `port` on loopback with `config`, sends the HTTP/2
/// preface and reads the server's reply. Returns the error that ended the
/// connection, or `Ok` when the server replied, which it does only after
/// it accepted the client's certificate.
pub fn probe(port: u16, config: Arc<ClientConfig>) -> Result<(), String> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut connection = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut socket = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = [0u8; 9];
    match stream.read(&mut answer) {
        Ok(0) => Err("the server closed the connection".into()),
        Ok(_) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Returns a TCP port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
