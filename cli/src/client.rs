//! Connecting to the manager.

use std::io;
use std::path::PathBuf;

use anyhow::Context;
use herd_proto::endpoint::Endpoint;
use herd_proto::tls::TlsFiles;
use herd_proto::v1::process_management_service_client::ProcessManagementServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The manager endpoint used when neither --addr nor HERD_ADDR is set.
pub const DEFAULT_ADDR: &str = "unix:///run/herd/managerd.sock";

pub type Client = ProcessManagementServiceClient<Channel>;

/// The manager's endpoint, and the TLS files for an `https://` one.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub tls: Option<TlsFiles>,
}

impl Target {
    /// Groups the endpoint and the three TLS flags, which go together.
    pub fn new(
        addr: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> anyhow::Result<Target> {
        let tls = TlsFiles::from_settings(
            "--ca-cert, --client-cert and --client-key (HERD_CACERT, HERD_CLIENT_CERT, \
             HERD_CLIENT_KEY)",
            ca,
            cert,
            key,
        )?;
        Ok(Target { addr, tls })
    }
}

/// Connects to the manager at `target`.
pub async fn connect(target: &Target) -> anyhow::Result<Client> {
    let endpoint: Endpoint = target.addr.parse().context("invalid --addr")?;
    let tls = match (&endpoint, &target.tls) {
        (Endpoint::Https(_), Some(files)) => Some(files.client_config()?),
        (Endpoint::Https(_), None) => anyhow::bail!(
            "--addr {endpoint} uses mutual TLS: give --ca-cert, --client-cert and --client-key \
             (or HERD_CACERT, HERD_CLIENT_CERT, HERD_CLIENT_KEY)"
        ),
        _ => None,
    };
    let channel = match endpoint.connect(tls.as_ref()).await {
        Ok(channel) => channel,
        Err(error) => {
            let hint = hint_for(&endpoint, &error);
            return Err(anyhow::Error::new(error).context(hint));
        }
    };
    if matches!(endpoint, Endpoint::Https(_)) {
        check_handshake(&endpoint, channel.clone()).await?;
    }
    Ok(ProcessManagementServiceClient::new(channel))
}

/// Makes one health check over a new TLS connection. With TLS 1.3 the
/// server judges the client's certificate after the client considers the
/// handshake done, so a rejection shows only on the first call. This call
/// turns it into an error that names the cause.
async fn check_handshake(endpoint: &Endpoint, channel: Channel) -> anyhow::Result<()> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(_) => Ok(()),
        // A status with a source was made on this side, from a failed
        // connection; one without came from the manager.
        Err(status) if std::error::Error::source(&status).is_some() => {
            let causes = crate::commands::causes_of(&status);
            anyhow::bail!(
                "the manager at {endpoint} rejected the TLS connection ({causes}): use a \
                 client certificate signed by the manager's CA and valid now"
            )
        }
        Err(status) => Err(crate::commands::status_error(status)),
    }
}

/// Says what to do about a failed connection.
fn hint_for(endpoint: &Endpoint, error: &(dyn std::error::Error + 'static)) -> String {
    if error_kinds(error).any(|kind| kind == io::ErrorKind::PermissionDenied) {
        return format!(
            "no permission to open {endpoint}: ask an admin to add your user to the socket's \
             group (herd by default), then log in again"
        );
    }
    let unreachable = error_kinds(error).any(|kind| {
        matches!(
            kind,
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        )
    });
    if matches!(endpoint, Endpoint::Https(_)) && !unreachable {
        return format!(
            "the TLS connection to {endpoint} failed: check that herd-managerd runs there and \
             that --ca-cert, --client-cert and --client-key come from its CA and are valid now"
        );
    }
    "is herd-managerd running? Start it, or point --addr or HERD_ADDR at it".to_owned()
}

/// Returns the kinds of the I/O errors in `error`'s chain of causes.
fn error_kinds<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = io::ErrorKind> + 'a {
    std::iter::successors(Some(error), |cause| cause.source())
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}
