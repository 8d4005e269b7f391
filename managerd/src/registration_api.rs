//! The worker-facing API, `herd.v1.WorkerRegistrationService`.

use std::sync::Arc;

use herd_proto::v1::worker_registration_service_server::WorkerRegistrationService;
use herd_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, RegisterWorkerRequest, RegisterWorkerResponse,
};
use tonic::{Request, Response, Status};

use crate::auth::caller_of;
use crate::dispatch;
use crate::metrics;
use crate::registry::RegistryError;
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
            RegistryError::Tls { .. } => Status::failed_precondition(error.to_string()),
            RegistryError::InvalidId(_) | RegistryError::InvalidAddress { .. } => {
                Status::invalid_argument(format!("{error:#}"))
            }
        }
    }
}

#[tonic::async_trait]
impl WorkerRegistrationService for RegistrationApi {
    async fn register_worker(
        &self,
        request: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let caller = caller_of(&request)?;
        caller.may_be_worker(&request.get_ref().id)?;
        caller.may_register_at(&request.get_ref().address)?;
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
        tokio::spawn(metrics::follow_worker(self.manager.clone(), worker));
        // Processes the worker still has and no task follows were started
        // before this manager restarted, so they are followed again.
        for process_id in &request.running_process_ids {
            if self.manager.store.get(process_id).is_some() {
                let manager = self.manager.clone();
                let worker_id = request.id.clone();
                tokio::spawn(dispatch::resume(manager, process_id.clone(), worker_id));
            }
        }
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
        caller_of(&request)?.may_be_worker(&request.get_ref().worker_id)?;
        let request = request.into_inner();
        self.manager
            .registry
            .heartbeat(&request.worker_id, request.metrics)?;
        Ok(Response::new(HeartbeatResponse {}))
    }
}
