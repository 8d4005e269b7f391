//! `herd-managerd certs`: a CA and the certificates of a first mutual TLS
//! setup, made with rcgen.
//!
//! Every certificate carries its identity in the common name: the manager
//! is `herd-managerd` (what workers expect by default), a worker is its id,
//! a client is the name its role is configured under. A later run in the
//! same folder reuses the CA, so certificates can be added one at a time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The common name of the manager's certificate, which workers check.
pub const MANAGER_NAME: &str = "herd-managerd";

/// Names every certificate in a first setup is valid for, so a local manager
/// and local workers can reach each other.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Years the CA is valid.
const CA_YEARS: i64 = 10;

/// The manager's subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a CA and certificates for mutual TLS, then exit
    Certs(Certs),
}

/// Creates a CA, if the folder has none, and the named certificates.
#[derive(Debug, clap::Args)]
pub struct Certs {
    /// Folder of the files; the CA in it is reused if present
    #[arg(long, value_name = "DIR", default_value = "/etc/herd/tls")]
    pub out: PathBuf,
    /// Make the manager's certificate, manager.pem
    #[arg(long)]
    pub manager: bool,
    /// Make a worker certificate, worker-ID.pem, for worker ID; repeatable
    #[arg(long = "worker", value_name = "ID")]
    pub workers: Vec<String>,
    /// Make a client certificate, client-NAME.pem, for NAME; repeatable
    #[arg(long = "client", value_name = "NAME")]
    pub clients: Vec<String>,
    /// Extra DNS name or IP address of the manager and workers; repeatable
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Days the new certificates are valid
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

/// The purpose of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Serves TLS and calls workers.
    Manager,
    /// Serves TLS and calls the manager.
    Worker,
    /// Calls the manager.
    Client,
}

impl Certs {
    /// Creates the files and prints what was made.
    pub fn run(&self) -> anyhow::Result<()> {
        self.check_names()?;
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("failed to create {}", self.out.display()))?;
        let issuer = self.load_or_create_ca()?;
        let mut wanted = Vec::new();
        if self.manager {
            wanted.push((Kind::Manager, MANAGER_NAME.to_owned(), "manager".to_owned()));
        }
        for id in &self.workers {
            wanted.push((Kind::Worker, id.clone(), format!("worker-{id}")));
        }
        for name in &self.clients {
            wanted.push((Kind::Client, name.clone(), format!("client-{name}")));
        }
        for (kind, name, file) in wanted {
            self.issue(&issuer, kind, &name, &file)?;
        }
        Ok(())
    }

    fn check_names(&self) -> anyhow::Result<()> {
        for host in &self.hosts {
            let name = host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
            if host.is_empty() || !(name || host.parse::<std::net::IpAddr>().is_ok()) {
                anyhow::bail!(
                    "invalid --host {host:?}: give a DNS name (letters, digits, '-', '.') or an \
                     IP address"
                );
            }
        }
        for name in self.workers.iter().chain(&self.clients) {
            if !herd_proto::names::is_valid_id(name) {
                anyhow::bail!(
                    "invalid certificate name {name:?}: use 1-64 letters, digits, '.', '_' or '-'"
                );
            }
            if name == MANAGER_NAME {
                anyhow::bail!(
                    "{MANAGER_NAME:?} is the manager's name; give workers and clients another"
                );
            }
        }
        Ok(())
    }

    fn load_or_create_ca(&self) -> anyhow::Result<Issuer<'static, KeyPair>> {
        let cert_path = self.out.join("ca.pem");
        let key_path = self.out.join("ca-key.pem");
        if cert_path.exists() {
            let key_pem = read(&key_path)?;
            let key = KeyPair::from_pem(&key_pem)
                .with_context(|| format!("invalid CA key in {}", key_path.display()))?;
            let issuer = Issuer::from_ca_cert_pem(&read(&cert_path)?, key)
                .with_context(|| format!("invalid CA certificate in {}", cert_path.display()))?;
            println!("reusing the CA in {}", cert_path.display());
            return Ok(issuer);
        }
        let key = KeyPair::generate().context("failed to generate the CA key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "herd CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(365 * CA_YEARS);
        let cert = params
            .self_signed(&key)
            .context("failed to sign the CA certificate")?;
        write_new(&key_path, &key.serialize_pem(), 0o600)?;
        write_new(&cert_path, &cert.pem(), 0o644)?;
        println!("created the CA: {}", cert_path.display());
        Ok(Issuer::new(params, key))
    }

    fn issue(
        &self,
        issuer: &Issuer<'_, KeyPair>,
        kind: Kind,
        name: &str,
        file: &str,
    ) -> anyhow::Result<()> {
        let cert_path = self.out.join(format!("{file}.pem"));
        let key_path = self.out.join(format!("{file}-key.pem"));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                anyhow::bail!(
                    "{} exists; remove it first to make a new one",
                    path.display()
                );
            }
        }
        let params = self.leaf_params(kind, name)?;
        let key = KeyPair::generate().context("failed to generate a key")?;
        let cert = params
            .signed_by(&key, issuer)
            .with_context(|| format!("failed to sign the certificate of {name}"))?;
        write_new(&key_path, &key.serialize_pem(), 0o600)?;
        write_new(&cert_path, &cert.pem(), 0o644)?;
        println!("created {} for {name}", cert_path.display());
        Ok(())
    }

    fn leaf_params(&self, kind: Kind, name: &str) -> anyhow::Result<CertificateParams> {
        let mut names = Vec::new();
        if kind != Kind::Client {
            names.extend(LOCAL_NAMES.iter().map(|name| (*name).to_owned()));
            names.extend(self.hosts.iter().cloned());
        }
        if kind == Kind::Worker {
            names.push(name.to_owned());
        }
        let mut params = CertificateParams::new(names)
            .with_context(|| format!("invalid --host among {:?}", self.hosts))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match kind {
            Kind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Kind::Manager | Kind::Worker => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(i64::from(self.days));
        Ok(params)
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
}

/// Writes a file that must not exist yet, with `mode` from the start so a
/// key is never readable by others.
fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_proto::tls::{TlsFiles, peer_name};
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;

    fn certs(out: &Path) -> Certs {
        Certs {
            out: out.to_owned(),
            manager: true,
            workers: vec!["w1".into()],
            clients: vec!["alice".into()],
            hosts: vec!["herd.example".into()],
            days: 30,
        }
    }

    #[test]
    fn makes_a_working_set() {
        let dir = tempfile::tempdir().unwrap();
        certs(dir.path()).run().unwrap();
        let files = |name: &str| TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join(format!("{name}.pem")),
            key: dir.path().join(format!("{name}-key.pem")),
        };
        files("manager").server_config().unwrap();
        files("worker-w1").server_config().unwrap();
        files("client-alice").client_config().unwrap();
        let pem = std::fs::read(dir.path().join("client-alice.pem")).unwrap();
        let cert = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(peer_name(&[cert]).unwrap(), "alice");
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(dir.path().join("ca-key.pem")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn certificates_of_another_ca_fail_at_setup() {
        let one = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        certs(one.path()).run().unwrap();
        certs(other.path()).run().unwrap();
        let mixed = TlsFiles {
            ca: one.path().join("ca.pem"),
            cert: other.path().join("manager.pem"),
            key: other.path().join("manager-key.pem"),
        };
        let error = mixed.server_config().unwrap_err().to_string();
        assert!(error.contains("was not issued by the CA"), "{error}");
    }

    #[test]
    fn reuses_ca_keeps_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        certs(dir.path()).run().unwrap();
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let mut more = certs(dir.path());
        more.manager = false;
        more.workers.clear();
        more.clients = vec!["bob".into()];
        more.run().unwrap();
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
        let error = certs(dir.path()).run().unwrap_err().to_string();
        assert!(error.contains("manager.pem exists"), "{error}");
    }

    #[test]
    fn rejects_bad_and_reserved_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = certs(dir.path());
        bad.clients = vec!["uid:0".into()];
        assert!(bad.run().unwrap_err().to_string().contains("uid:0"));
        bad.clients = vec!["alice".into()];
        bad.hosts = vec!["bad host!".into()];
        assert!(bad.run().unwrap_err().to_string().contains("bad host!"));
        bad.hosts.clear();
        bad.clients = vec![MANAGER_NAME.into()];
        assert!(bad.run().unwrap_err().to_string().contains(MANAGER_NAME));
        assert!(!dir.path().join("ca.pem").exists(), "nothing is written");
    }
}
