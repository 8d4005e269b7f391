//! Registering with the manager, retrying with exponential backoff, and
//! keeping the lease alive with heartbeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herd_proto::endpoint::Endpoint;
use herd_proto::peer::{AttachToken, TokenChannel};
use herd_proto::v1::worker_registration_service_client::WorkerRegistrationServiceClient;
use herd_proto::v1::{HeartbeatRequest, RegisterWorkerRequest};
use tokio_rustls::rustls::ClientConfig;
use tonic::Code;

use crate::access::TokenSource;
use crate::host;
use crate::journal::Journals;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Failed heartbeats in a row after which the worker registers afresh.
const MAX_HEARTBEAT_FAILURES: u32 = 3;

/// The worker's identity as it registers with the manager.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub address: String,
    pub labels: HashMap<String, String>,
}

/// The worker's link to the manager: TLS settings for `https://`, and
/// the join token for the other transports.
#[derive(Debug, Clone)]
pub struct ManagerLink {
    pub endpoint: Endpoint,
    pub tls: Option<Arc<ClientConfig>>,
    pub token: Arc<TokenSource>,
}

impl ManagerLink {
    /// Connects, with the join token on every call unless TLS proves the
    /// worker.
    async fn connect(&self) -> anyhow::Result<Client> {
        let channel = self.endpoint.connect(self.tls.as_ref()).await?;
        let token = match self.endpoint {
            Endpoint::Https(_) => None,
            _ => Some(self.token.get()?),
        };
        Ok(WorkerRegistrationServiceClient::with_interceptor(
            channel,
            AttachToken::new(token.as_ref()),
        ))
    }
}

type Client = WorkerRegistrationServiceClient<TokenChannel>;

/// Registers, heartbeats, and registers again whenever the manager no
/// longer has the worker or cannot be reached. Runs until the task is
/// dropped.
pub async fn run(
    manager: ManagerLink,
    identity: Identity,
    heartbeat_override: Option<Duration>,
    journals: Arc<Journals>,
) {
    loop {
        let (client, interval) = register(&manager, &identity, &journals).await;
        let interval = heartbeat_override.unwrap_or(interval);
        heartbeat(client, &identity, interval, &journals).await;
    }
}

/// Registers, retrying with exponential backoff and jitter until it works.
async fn register(
    manager: &ManagerLink,
    identity: &Identity,
    journals: &Journals,
) -> (Client, Duration) {
    let mut delay = FIRST_RETRY;
    let mut attempt = 1u32;
    loop {
        match try_register(manager, identity, journals).await {
            Ok(registered) => {
                tracing::info!(worker_id = %identity.id, manager = %manager.endpoint, "registered with manager");
                herd_proto::systemd::status(&format!("registered with {}", manager.endpoint));
                return registered;
            }
            Err(error) => {
                tracing::warn!(
                    worker_id = %identity.id,
                    manager = %manager.endpoint,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    error = format!("{error:#}"),
                    "failed to register; retrying"
                );
            }
        }
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(MAX_RETRY);
        attempt += 1;
    }
}

async fn try_register(
    manager: &ManagerLink,
    identity: &Identity,
    journals: &Journals,
) -> anyhow::Result<(Client, Duration)> {
    let mut client = manager.connect().await?;
    let request = RegisterWorkerRequest {
        id: identity.id.clone(),
        name: identity.name.clone(),
        address: identity.address.clone(),
        labels: identity.labels.clone(),
        capacity: 0,
        running_process_ids: journals.ids(),
    };
    let response = client.register_worker(request).await?.into_inner();
    let interval = Duration::from_millis(response.heartbeat_interval_ms.max(100));
    Ok((client, interval))
}

/// Sends heartbeats until the manager no longer has the worker or stops
/// responding.
async fn heartbeat(
    mut client: Client,
    identity: &Identity,
    interval: Duration,
    journals: &Journals,
) {
    let mut failures = 0;
    loop {
        tokio::time::sleep(interval).await;
        let running = journals.ids();
        let request = HeartbeatRequest {
            worker_id: identity.id.clone(),
            metrics: Some(host::metrics(running.len())),
            running_process_ids: running,
        };
        match client.heartbeat(request).await {
            Ok(_) => failures = 0,
            Err(status) if status.code() == Code::NotFound => {
                tracing::info!(worker_id = %identity.id, "manager does not know this worker; registering again");
                return;
            }
            Err(status) => {
                failures += 1;
                tracing::warn!(worker_id = %identity.id, failures, error = %status.message(), "heartbeat failed");
                if failures >= MAX_HEARTBEAT_FAILURES {
                    return;
                }
            }
        }
    }
}

/// Spreads retries of many workers by up to a fifth of the delay either way.
fn jitter(delay: Duration) -> Duration {
    let factor = rand::random_range(0.8..1.2);
    delay.mul_f64(factor)
}
