//! Sending a stored request to a worker and recording what comes back.

use std::sync::Arc;
use std::time::SystemTime;

use herd_proto::v1::worker_process_service_client::WorkerProcessServiceClient;
use herd_proto::v1::{
    ExecuteCommandRequest, ExitStatus, ProcessState, Reason, WorkerEvent, worker_event,
};
use tokio::time::Instant;
use tonic::{Code, Streaming};

use crate::registry::{Constraints, Worker};
use crate::state::{Manager, is_terminal};

/// Places the process on a worker and follows it to its end. Retries on
/// another worker when the chosen one cannot be reached, until the queue
/// timeout.
pub async fn run(manager: Arc<Manager>, id: String, mut constraints: Constraints) {
    let deadline = Instant::now() + manager.queue_timeout;
    loop {
        let Some(worker) = wait_for_worker(&manager, &constraints, deadline).await else {
            fail_unplaced(&manager, &id, &constraints);
            return;
        };
        let worker_id = worker.info.id.clone();
        let outcome = send(&manager, &id, worker).await;
        manager.registry.release(&worker_id);
        match outcome {
            Sent::Done => return,
            Sent::Unreachable(error) => {
                tracing::warn!(process_id = %id, worker_id, error, "worker unreachable; placing elsewhere");
                constraints.excluded.push(worker_id);
            }
        }
    }
}

enum Sent {
    Done,
    Unreachable(String),
}

async fn wait_for_worker(
    manager: &Manager,
    constraints: &Constraints,
    deadline: Instant,
) -> Option<Worker> {
    loop {
        let registered = manager.registry.changed.notified();
        if let Some(worker) = manager.registry.place(constraints) {
            return Some(worker);
        }
        if tokio::time::timeout_at(deadline, registered).await.is_err() {
            return None;
        }
    }
}

fn fail_unplaced(manager: &Manager, id: &str, constraints: &Constraints) {
    let mut wanted = Vec::new();
    if !constraints.worker_id.is_empty() {
        wanted.push(format!("id {}", constraints.worker_id));
    }
    let mut labels: Vec<String> = constraints
        .labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    labels.sort();
    if !labels.is_empty() {
        wanted.push(format!("labels {}", labels.join(",")));
    }
    let wanted = match wanted.is_empty() {
        true => "no ready worker could take the request".to_owned(),
        false => format!("no ready worker matched {}", wanted.join(" and ")),
    };
    let error = format!(
        "unavailable: {wanted} within the queue timeout of {}",
        herd_proto::units::format_duration(manager.queue_timeout)
    );
    tracing::warn!(process_id = id, error, "request not placed");
    let _ = manager.store.update(id, &mut |status| {
        if status.state == ProcessState::Pending as i32 {
            status.state = ProcessState::Failed as i32;
            status.error = error.clone();
            status.finished_at = Some(SystemTime::now().into());
        }
    });
}

async fn send(manager: &Manager, id: &str, worker: Worker) -> Sent {
    let Some(status) = manager.store.get(id) else {
        return Sent::Done;
    };
    if is_terminal(&status) {
        // Terminated while it waited for a worker.
        return Sent::Done;
    }
    let worker_id = worker.info.id.clone();
    let _following = Following::start(manager, id);
    let _ = manager
        .store
        .update(id, &mut |status| status.worker_id = worker_id.clone());
    let request = ExecuteCommandRequest {
        process_id: id.to_owned(),
        command: status.command,
        limits: status.limits,
    };
    let mut client = WorkerProcessServiceClient::new(worker.channel);
    let stream = match client.execute_command(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if matches!(status.code(), Code::Unavailable | Code::Unknown) => {
            let _ = manager
                .store
                .update(id, &mut |record| record.worker_id.clear());
            return Sent::Unreachable(status.message().to_owned());
        }
        Err(status) => {
            let exit = ExitStatus {
                reason: Reason::SpawnFailed as i32,
                error: format!(
                    "worker {worker_id} rejected the command: {}",
                    status.message()
                ),
                ..ExitStatus::default()
            };
            manager.mark_finished(id, exit);
            return Sent::Done;
        }
    };
    follow(manager, id, &worker_id, stream).await;
    Sent::Done
}

/// Records the worker's events until the finished event or a broken stream.
/// A broken stream leaves the process RUNNING: the lease, or the worker's
/// next registration, settles it as WORKER_LOST.
// NOTE: if the stream breaks while the worker stays registered, the record
// stays RUNNING until the worker restarts; resuming the stream is not built.
async fn follow(manager: &Manager, id: &str, worker_id: &str, mut stream: Streaming<WorkerEvent>) {
    loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event.event,
            Ok(None) => None,
            Err(status) => {
                tracing::warn!(process_id = id, worker_id, error = %status.message(), "lost the worker's event stream");
                return;
            }
        };
        match event {
            Some(worker_event::Event::Started(started)) => {
                manager.mark_running(id, started.host_pid);
            }
            Some(worker_event::Event::Output(chunk)) => {
                if let Err(error) = manager.store.append_output(id, chunk) {
                    tracing::error!(process_id = id, error = %error, "failed to store output");
                }
            }
            Some(worker_event::Event::Finished(exit)) => {
                manager.mark_finished(id, exit);
                return;
            }
            None => {
                tracing::warn!(
                    process_id = id,
                    worker_id,
                    "worker's event stream ended early"
                );
                return;
            }
        }
    }
}

/// Marks a process as followed by this manager for as long as it lives, so
/// a worker's registration does not take it for one started before a
/// restart.
struct Following<'a> {
    manager: &'a Manager,
    id: String,
}

impl<'a> Following<'a> {
    fn start(manager: &'a Manager, id: &str) -> Following<'a> {
        let mut followed = manager.followed.lock().expect("followed lock poisoned");
        followed.insert(id.to_owned());
        Following {
            manager,
            id: id.to_owned(),
        }
    }
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        let mut followed = self
            .manager
            .followed
            .lock()
            .expect("followed lock poisoned");
        followed.remove(&self.id);
    }
}
