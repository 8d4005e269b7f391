//! The worker's gRPC API, called by the manager.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use herd_proto::v1::worker_process_service_server::WorkerProcessService;
use herd_proto::v1::{
    AcknowledgeOutputRequest, AcknowledgeOutputResponse, AttachProcessRequest,
    ExecuteCommandRequest, HealthCheckRequest, HealthCheckResponse, Metrics, MetricsSample,
    ReportMetricsRequest, WorkerEvent, WorkerListProcessesRequest, WorkerListProcessesResponse,
    WorkerTerminateRequest, WorkerTerminateResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::journal::{self, Journal, Journals};
use crate::runner::{RunError, Runner};
use crate::{exit, host};

/// Events buffered per process between the sandbox's pipes and the manager.
/// When the manager reads slower, the pump stops reading the pipes.
const EVENT_BUFFER: usize = 16;

/// Time between metrics samples when the request gives none.
const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest time between samples, so a caller cannot make the worker spin.
const MIN_METRICS_INTERVAL: Duration = Duration::from_millis(100);

/// Grace period when a terminate request gives none.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

type EventStream = Pin<Box<dyn Stream<Item = Result<WorkerEvent, Status>> + Send>>;

/// Implements `herd.v1.WorkerProcessService`.
#[derive(Debug)]
pub struct WorkerService {
    pub worker_id: String,
    pub runner: Arc<Runner>,
    pub journals: Arc<Journals>,
    /// Turns true at shutdown, which ends the metrics streams.
    pub stopping: watch::Receiver<bool>,
}

impl From<RunError> for Status {
    fn from(error: RunError) -> Status {
        match error {
            RunError::Duplicate(_) => Status::already_exists(error.to_string()),
            RunError::NotFound(_) => Status::not_found(error.to_string()),
            RunError::Invalid(_) => Status::invalid_argument(error.to_string()),
        }
    }
}

#[tonic::async_trait]
impl WorkerProcessService for WorkerService {
    type ExecuteCommandStream = EventStream;
    type AttachProcessStream = EventStream;
    type ReportMetricsStream = Pin<Box<dyn Stream<Item = Result<MetricsSample, Status>> + Send>>;

    async fn execute_command(
        &self,
        request: Request<ExecuteCommandRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.into_inner();
        let command = request
            .command
            .ok_or_else(|| Status::invalid_argument("command is missing"))?;
        if self.journals.get(&request.process_id).is_some() {
            return Err(RunError::Duplicate(request.process_id).into());
        }
        let spec = self.runner.prepare(&request.process_id, &command)?;
        let limits = request.limits.unwrap_or_default();
        let journal = self.journals.create(&request.process_id).map_err(|error| {
            tracing::error!(process_id = %request.process_id, error = %error, "failed to create spool");
            Status::internal(format!("failed to create the output spool: {error}"))
        })?;
        let (sender, mut receiver) = mpsc::channel(EVENT_BUFFER);
        // The process runs on its own task and its events go to the spool,
        // so both outlive the manager's stream if the manager goes away.
        let runner = self.runner.clone();
        tokio::spawn(runner.run(request.process_id.clone(), spec, limits, sender));
        let recorder = journal.clone();
        let process_id = request.process_id.clone();
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                if let Err(error) = recorder.record(event).await {
                    tracing::error!(process_id, error = %error, "failed to spool output");
                }
            }
        });
        Ok(Response::new(stream_journal(journal, 0)))
    }

    async fn attach_process(
        &self,
        request: Request<AttachProcessRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.into_inner();
        let journal = self.journals.get(&request.process_id).ok_or_else(|| {
            Status::not_found(format!(
                "process {} is not on this worker",
                request.process_id
            ))
        })?;
        Ok(Response::new(stream_journal(journal, request.offset)))
    }

    async fn acknowledge_output(
        &self,
        request: Request<AcknowledgeOutputRequest>,
    ) -> Result<Response<AcknowledgeOutputResponse>, Status> {
        let request = request.into_inner();
        if let Some(journal) = self.journals.get(&request.process_id) {
            journal.acknowledge(request.offset);
        }
        if request.release {
            self.journals.release(&request.process_id);
        }
        Ok(Response::new(AcknowledgeOutputResponse {}))
    }

    async fn terminate_process(
        &self,
        request: Request<WorkerTerminateRequest>,
    ) -> Result<Response<WorkerTerminateResponse>, Status> {
        let request = request.into_inner();
        let grace = match request.grace_ms {
            0 => DEFAULT_GRACE,
            millis => Duration::from_millis(millis),
        };
        self.runner
            .terminate(&request.process_id, grace, request.signal)?;
        Ok(Response::new(WorkerTerminateResponse {}))
    }

    async fn health_check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            worker_id: self.worker_id.clone(),
            metrics: Some(host::metrics(self.runner.running_ids().len())),
        }))
    }

    async fn report_metrics(
        &self,
        request: Request<ReportMetricsRequest>,
    ) -> Result<Response<Self::ReportMetricsStream>, Status> {
        let interval = match request.into_inner().interval_ms {
            0 => DEFAULT_METRICS_INTERVAL,
            millis => Duration::from_millis(millis).max(MIN_METRICS_INTERVAL),
        };
        let (sender, receiver) = mpsc::channel(1);
        let stopping = self.stopping.clone();
        tokio::spawn(send_samples(
            self.runner.clone(),
            interval,
            stopping,
            sender,
        ));
        let stream = ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            stream, Ok,
        ))))
    }

    async fn list_processes(
        &self,
        _request: Request<WorkerListProcessesRequest>,
    ) -> Result<Response<WorkerListProcessesResponse>, Status> {
        Ok(Response::new(WorkerListProcessesResponse {
            process_ids: self.journals.ids(),
        }))
    }
}

/// Streams a journal's events from `offset` to the manager.
fn stream_journal(journal: Arc<Journal>, offset: u64) -> EventStream {
    let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
    tokio::spawn(journal::replay(journal, offset, sender));
    Box::pin(tokio_stream::StreamExt::map(
        ReceiverStream::new(receiver),
        Ok,
    ))
}

/// Sends a sample of the worker and of every running process each
/// `interval`, until the receiver is gone or the worker stops.
async fn send_samples(
    runner: Arc<Runner>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
    sender: mpsc::Sender<MetricsSample>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        let processes: HashMap<String, Metrics> = runner
            .sample()
            .await
            .iter()
            .map(|(id, stats)| (id.clone(), exit::to_metrics(stats)))
            .collect();
        let sample = MetricsSample {
            worker: Some(host::metrics(processes.len())),
            processes,
        };
        if sender.send(sample).await.is_err() {
            return;
        }
    }
}
