//! Connecting to the manager.

use anyhow::Context;
use herd_proto::endpoint::Endpoint;
use herd_proto::v1::process_management_service_client::ProcessManagementServiceClient;
use tonic::transport::Channel;

/// The manager endpoint used when neither --addr nor HERD_ADDR is set.
pub const DEFAULT_ADDR: &str = "unix:///run/herd/managerd.sock";

pub type Client = ProcessManagementServiceClient<Channel>;

/// Connects to the manager at `addr`.
pub async fn connect(addr: &str) -> anyhow::Result<Client> {
    let endpoint: Endpoint = addr.parse().context("invalid --addr")?;
    let channel = endpoint
        .connect()
        .await
        .context("is herd-managerd running? Start it, or point --addr or HERD_ADDR at it")?;
    Ok(ProcessManagementServiceClient::new(channel))
}
