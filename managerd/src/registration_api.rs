//! The worker-facing API, `herd.v1.WorkerRegistrationService`.

use std::sync::Arc;

use herd_proto::v1::worker_registration_service_server::WorkerRegistrationService;
use herd_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, RegisterWorkerRequest, RegisterWorkerResponse,
};
use tonic::{Request, Response, Status};

use crate::metrics;
use herd_proto::v1::worker_process_service_client::WorkerProcessServiceClient;
use herd_proto::v1::{ExitStatus, Reason, WorkerTerminateRequest};

use crate::registry::{RegistryError, Worker};
use crate::state::Manager;

/// Implements worker registration and heartbeats.
#[derive(Debug)]
pub struct RegistrationApi {
    pub manager: Arc<Manager>,
}

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Status {
        match error {
            RegistryError::Unknown(_) => Status::not_found(error.to_string()),
            RegistryError::Duplicate { .. } => Status::already_exists(error.to_string()),
            RegistryError::InvalidId(_) | RegistryError::InvalidAddress { .. } => {
                Status::invalid_argument(format!("{error:#}"))
            }
        }
    }
}

impl RegistrationApi {
    /// Terminates the processes a worker still runs that this manager does
    /// not follow: they were started before the manager restarted.
    // NOTE: re-attaching to their output from the worker's last offset is
    // not built yet, so they end instead of running on unseen.
    async fn stop_unfollowed(&self, worker: &Worker, running: &[String]) {
        let unfollowed: Vec<String> = {
            let followed = self
                .manager
                .followed
                .lock()
                .expect("followed lock poisoned");
            running
                .iter()
                .filter(|id| !followed.contains(*id))
                .cloned()
                .collect()
        };
        let mut client = WorkerProcessServiceClient::new(worker.channel.clone());
        for process_id in unfollowed {
            tracing::warn!(process_id, worker_id = %worker.info.id, "terminating a process the manager cannot follow");
            let request = WorkerTerminateRequest {
                process_id: process_id.clone(),
                grace_ms: 0,
                signal: None,
            };
            if let Err(status) = client.terminate_process(request).await {
                tracing::error!(process_id, error = %status.message(), "failed to terminate");
            }
            let exit = ExitStatus {
                reason: Reason::WorkerLost as i32,
                error: "the manager restarted while the process ran and cannot follow it; \
                        the process was terminated"
                    .to_owned(),
                ..ExitStatus::default()
            };
            self.manager.mark_finished(&process_id, exit);
        }
    }
}

#[tonic::async_trait]
impl WorkerRegistrationService for RegistrationApi {
    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let request = request.into_inner();
        let registered = self.manager.registry.register(
            &request.id,
            &request.name,
            &request.address,
            request.labels,
        );
        let worker = match registered {
            Ok(worker) => worker,
            Err(error) => {
                tracing::warn!(worker_id = %request.id, address = %request.address, error = %error, "registration rejected");
                return Err(error.into());
            }
        };
        if let Err(error) = self.manager.store.save_worker(&worker.info) {
            tracing::error!(worker_id = %request.id, error = %error, "failed to save worker");
        }
        tokio::spawn(metrics::follow_worker(self.manager.clone(), worker.clone()));
        self.stop_unfollowed(&worker, &request.running_process_ids)
            .await;
        tracing::info!(worker_id = %request.id, address = %request.address, "worker registered");
        // Whatever the worker no longer runs was lost when it went away.
        self.manager.fail_lost(
            &request.id,
            &request.running_process_ids,
            &format!(
                "worker {} restarted and no longer runs the process",
                request.id
            ),
        );
        let lease = self.manager.lease;
        Ok(Response::new(RegisterWorkerResponse {
            heartbeat_interval_ms: (lease / 3).as_millis() as u64,
            lease_ms: lease.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let request = request.into_inner();
        self.manager
            .registry
            .heartbeat(&request.worker_id, request.metrics)?;
        Ok(Response::new(HeartbeatResponse {}))
    }
}
