//! The worker's gRPC API, called by the manager.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use herd_proto::v1::worker_process_service_server::WorkerProcessService;
use herd_proto::v1::{
    ExecuteCommandRequest, HealthCheckRequest, HealthCheckResponse, Metrics, MetricsSample,
    ReportMetricsRequest, WorkerEvent, WorkerListProcessesRequest, WorkerListProcessesResponse,
    WorkerTerminateRequest, WorkerTerminateResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

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
    type ReportMetricsStream = Pin<Box<dyn Stream<Item = Result<MetricsSample, Status>> + Send>>;

    async fn execute_command(
        &self,
        request: Request<ExecuteCommandRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let request = request.into_inner();
        let command = request
            .command
            .ok_or_else(|| Status::invalid_argument("command is missing"))?;
        let spec = self.runner.prepare(&request.process_id, &command)?;
        let limits = request.limits.unwrap_or_default();
        let (sender, receiver) = mpsc::channel(EVENT_BUFFER);
        // The process runs on its own task, so it outlives the manager's
        // stream if the manager goes away.
        let runner = self.runner.clone();
        tokio::spawn(runner.run(request.process_id, spec, limits, sender));
        let stream = ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(
            stream, Ok,
        ))))
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
            process_ids: self.runner.running_ids(),
        }))
    }
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
