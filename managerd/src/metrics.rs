//! Following each worker's ReportMetrics stream: worker load and memory for
//! `herd workers`, and the latest cgroup figures of its running processes.

use std::sync::Arc;
use std::time::Duration;

use herd_proto::v1::worker_process_service_client::WorkerProcessServiceClient;
use herd_proto::v1::{MetricsSample, ProcessState, ReportMetricsRequest};

use crate::registry::Worker;
use crate::state::Manager;

/// Interval between the samples the manager requests from workers.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Wait before opening the stream again after it broke.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Follows `worker`'s metrics until it registers again or is lost.
pub async fn follow_worker(manager: Arc<Manager>, worker: Worker) {
    let id = worker.info.id.clone();
    let mut client = WorkerProcessServiceClient::new(worker.channel.clone());
    loop {
        let request = ReportMetricsRequest {
            interval_ms: SAMPLE_INTERVAL.as_millis() as u64,
        };
        match client.report_metrics(request).await {
            Ok(response) => {
                let mut samples = response.into_inner();
                while let Ok(Some(sample)) = samples.message().await {
                    if !record(&manager, &worker, sample) {
                        return;
                    }
                }
            }
            Err(status) => {
                tracing::debug!(worker_id = %id, error = %status.message(), "metrics stream failed");
            }
        }
        tokio::time::sleep(RETRY_DELAY).await;
        if !manager.registry.is_current(&id, worker.generation) {
            return;
        }
    }
}

/// Stores one sample; returns false when the worker is no longer current.
fn record(manager: &Manager, worker: &Worker, sample: MetricsSample) -> bool {
    let id = &worker.info.id;
    if !manager
        .registry
        .store_metrics(id, worker.generation, sample.worker)
    {
        return false;
    }
    for (process_id, metrics) in sample.processes {
        // Only a running record takes samples, so final figures stay final.
        let _ = manager.store.update(&process_id, &mut |status| {
            if status.state == ProcessState::Running as i32 && status.worker_id == *id {
                status.metrics = Some(metrics);
            }
        });
    }
    true
}
