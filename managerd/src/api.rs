//! The client API, `herd.v1.ProcessManagementService`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use herd_proto::v1::process_management_service_server::ProcessManagementService;
use herd_proto::v1::worker_process_service_client::WorkerProcessServiceClient;
use herd_proto::v1::{
    ExecuteDistributedCommandRequest, GetProcessStatusRequest, ListProcessesRequest,
    ListProcessesResponse, ListWorkersRequest, ListWorkersResponse, OutputChunk, Placement,
    ProcessEvent, ProcessState, ProcessStatus, Reason, StreamOutputRequest,
    TerminateProcessRequest, WaitProcessRequest, WorkerTerminateRequest,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::{Caller, caller_of};
use crate::state::{Manager, is_terminal};
use crate::store::StoreError;
use crate::{dispatch, follow, validate};

/// Messages buffered per client stream; a slow client slows its follower,
/// never the manager.
const STREAM_BUFFER: usize = 16;

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Implements the client API over the shared manager state.
#[derive(Debug)]
pub struct ProcessApi {
    pub manager: Arc<Manager>,
}

impl From<StoreError> for Status {
    fn from(error: StoreError) -> Status {
        match error {
            StoreError::AlreadyExists(_) => Status::already_exists(error.to_string()),
            StoreError::NotFound(_) => Status::not_found(error.to_string()),
            StoreError::OutputGap { .. }
            | StoreError::Database { .. }
            | StoreError::Corrupt { .. } => {
                tracing::error!(error = %error, "state database failed");
                Status::internal(error.to_string())
            }
        }
    }
}

impl From<validate::InvalidField> for Status {
    fn from(error: validate::InvalidField) -> Status {
        Status::invalid_argument(error.to_string())
    }
}

fn new_id() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

impl ProcessApi {
    /// Returns process `id` if `caller` may read it.
    fn readable(&self, caller: &Caller, id: &str) -> Result<ProcessStatus, Status> {
        let status = self.status(id)?;
        caller.may_read(&status)?;
        Ok(status)
    }

    fn status(&self, id: &str) -> Result<ProcessStatus, Status> {
        validate::process_id(id)?;
        self.manager
            .store
            .get(id)
            .ok_or_else(|| Status::not_found(format!("process {id} not found")))
    }

    fn stream<T: Send + 'static>(receiver: mpsc::Receiver<Result<T, Status>>) -> Streamed<T> {
        Box::pin(ReceiverStream::new(receiver))
    }
}

#[tonic::async_trait]
impl ProcessManagementService for ProcessApi {
    type ExecuteDistributedCommandStream = Streamed<ProcessEvent>;
    type StreamOutputStream = Streamed<OutputChunk>;

    async fn execute_distributed_command(
        &self,
        request: Request<ExecuteDistributedCommandRequest>,
    ) -> Result<Response<Self::ExecuteDistributedCommandStream>, Status> {
        let caller = caller_of(&request)?;
        let owner = caller.identity.clone();
        let request = request.into_inner();
        validate::execute_request(&request)?;
        let id = if request.id.is_empty() {
            new_id()
        } else {
            request.id.clone()
        };
        let request_command = request.command.clone();
        let request_limits = request.limits;
        let placement = Placement {
            worker_id: request.worker_id.clone(),
            labels: request.labels.clone(),
            queue_timeout_ms: request.queue_timeout_ms,
        };
        let status = ProcessStatus {
            id: id.clone(),
            state: ProcessState::Pending as i32,
            owner,
            command: request.command,
            limits: request.limits,
            placement: Some(placement.clone()),
            created_at: Some(SystemTime::now().into()),
            ..ProcessStatus::default()
        };
        match self.manager.store.insert(status) {
            Ok(()) => {
                tracing::info!(process_id = %id, "process accepted");
                tokio::spawn(dispatch::run(self.manager.clone(), id.clone(), placement));
            }
            // A repeated id attaches to the process it already names, if the
            // request is the same one; a different request is a conflict.
            Err(StoreError::AlreadyExists(_)) => {
                let existing = self.manager.store.get(&id).unwrap_or_default();
                if !caller.sees(&existing) {
                    return Err(Status::already_exists(format!(
                        "process id {id} is taken; choose another --id"
                    )));
                }
                if existing.command != request_command || existing.limits != request_limits {
                    return Err(Status::already_exists(format!(
                        "process {id} already exists with a different command or limits; \
                         choose another --id"
                    )));
                }
            }
            Err(error) => return Err(error.into()),
        }
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(follow::events(self.manager.clone(), id, sender));
        Ok(Response::new(Self::stream(receiver)))
    }

    async fn terminate_process(
        &self,
        request: Request<TerminateProcessRequest>,
    ) -> Result<Response<ProcessStatus>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let status = self.status(&request.id)?;
        caller.may_terminate(&status)?;
        if is_terminal(&status) {
            let state = ProcessState::try_from(status.state).unwrap_or_default();
            return Err(Status::failed_precondition(format!(
                "process {} already ended ({})",
                request.id,
                state.short_name()
            )));
        }
        if status.state == ProcessState::Pending as i32 && request.signal.is_none() {
            self.manager
                .mark_finished(&request.id, aborted_while_pending());
            return Ok(Response::new(self.status(&request.id)?));
        }
        let channel = self
            .manager
            .registry
            .channel(&status.worker_id)
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "worker {} of process {} is not reachable",
                    status.worker_id, request.id
                ))
            })?;
        let worker_request = WorkerTerminateRequest {
            process_id: request.id.clone(),
            grace_ms: request.grace_ms,
            signal: request.signal,
        };
        WorkerProcessServiceClient::new(channel)
            .terminate_process(worker_request)
            .await?;
        tracing::info!(process_id = %request.id, signal = request.signal, "terminate sent");
        Ok(Response::new(self.status(&request.id)?))
    }

    async fn get_process_status(
        &self,
        request: Request<GetProcessStatusRequest>,
    ) -> Result<Response<ProcessStatus>, Status> {
        let caller = caller_of(&request)?;
        Ok(Response::new(
            self.readable(&caller, &request.into_inner().id)?,
        ))
    }

    async fn list_processes(
        &self,
        request: Request<ListProcessesRequest>,
    ) -> Result<Response<ListProcessesResponse>, Status> {
        let caller = caller_of(&request)?;
        let all = request.into_inner().all;
        let processes = self
            .manager
            .store
            .list()
            .into_iter()
            .filter(|status| caller.sees(status))
            .filter(|status| all || !is_terminal(status))
            .collect();
        Ok(Response::new(ListProcessesResponse { processes }))
    }

    async fn stream_output(
        &self,
        request: Request<StreamOutputRequest>,
    ) -> Result<Response<Self::StreamOutputStream>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        self.readable(&caller, &request.id)?;
        let (sender, receiver) = mpsc::channel(STREAM_BUFFER);
        let manager = self.manager.clone();
        tokio::spawn(follow::output(
            manager,
            request.id,
            request.offset,
            request.follow,
            sender,
        ));
        Ok(Response::new(Self::stream(receiver)))
    }

    async fn wait_process(
        &self,
        request: Request<WaitProcessRequest>,
    ) -> Result<Response<ProcessStatus>, Status> {
        let caller = caller_of(&request)?;
        let id = request.into_inner().id;
        self.readable(&caller, &id)?;
        let status = follow::terminal(&self.manager, &id)
            .await
            .ok_or_else(|| Status::not_found(format!("process {id} not found")))?;
        Ok(Response::new(status))
    }

    async fn list_workers(
        &self,
        _request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        Ok(Response::new(ListWorkersResponse {
            workers: self.manager.registry.list(),
        }))
    }
}

fn aborted_while_pending() -> herd_proto::v1::ExitStatus {
    herd_proto::v1::ExitStatus {
        reason: Reason::TerminatedByUser as i32,
        error: "terminated by request before it started".to_owned(),
        ..Default::default()
    }
}
