//! Sending a stored request to a worker and recording what comes back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use herd_proto::v1::worker_process_service_client::WorkerProcessServiceClient;
use herd_proto::v1::{
    AcknowledgeOutputRequest, AttachProcessRequest, ExecuteCommandRequest, ExitStatus, Placement,
    ProcessState, Reason, WorkerEvent, worker_event,
};
use tokio::time::Instant;
use tonic::{Code, Streaming};

use crate::registry::{Constraints, Worker};
use crate::state::{Manager, is_terminal};

/// Places the process on a worker and follows it to its end. Retries on
/// another worker when the chosen one cannot be reached, until the queue
/// timeout.
pub async fn run(manager: Arc<Manager>, id: String, placement: Placement) {
    let queue_timeout = match placement.queue_timeout_ms {
        0 => manager.queue_timeout,
        millis => Duration::from_millis(millis),
    };
    // The queue time counts from the request, also across a restart.
    let waited = manager
        .store
        .get(&id)
        .and_then(|status| status.created_at)
        .and_then(|created| SystemTime::try_from(created).ok())
        .and_then(|created| created.elapsed().ok())
        .unwrap_or_default();
    let deadline = Instant::now() + queue_timeout.saturating_sub(waited);
    let mut constraints = Constraints {
        worker_id: placement.worker_id,
        labels: placement.labels,
        excluded: Vec::new(),
    };
    loop {
        let Some(worker) = wait_for_worker(&manager, &constraints, deadline).await else {
            fail_unplaced(&manager, &id, &constraints, queue_timeout);
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

fn fail_unplaced(manager: &Manager, id: &str, constraints: &Constraints, waited: Duration) {
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
        herd_proto::units::format_duration(waited)
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
    let Some(_following) = Following::try_start(manager, id) else {
        // Another task follows it already, as after a restart.
        return Sent::Done;
    };
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
        // The worker has it already: the previous manager sent it before
        // it stopped. Follow it from what is stored.
        Err(status) if status.code() == Code::AlreadyExists => {
            if let Some(stream) = attach(manager, id, &worker_id).await {
                follow_to_end(manager, id, &worker_id, stream).await;
            }
            return Sent::Done;
        }
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
    follow_to_end(manager, id, &worker_id, stream).await;
    Sent::Done
}

/// Output bytes stored between two acknowledgements to the worker, which
/// frees that much of its spool.
const ACK_EVERY: u64 = 1 << 20;

/// Wait between attempts to attach again to a worker's process.
const REATTACH_DELAY: Duration = Duration::from_millis(200);

/// Follows a process that a worker still runs after this manager restarted.
pub async fn resume(manager: Arc<Manager>, id: String, worker_id: String) {
    let Some(_following) = Following::try_start(&manager, &id) else {
        return;
    };
    tracing::info!(process_id = %id, worker_id, "following the process again");
    if let Some(stream) = attach(&manager, &id, &worker_id).await {
        follow_to_end(&manager, &id, &worker_id, stream).await;
    }
}

/// Follows the worker's events until the process ends. When the stream
/// breaks while the worker is not lost, it attaches again from the output
/// offset already stored, so nothing is missed and nothing stored twice.
async fn follow_to_end(
    manager: &Manager,
    id: &str,
    worker_id: &str,
    mut stream: Streaming<WorkerEvent>,
) {
    loop {
        if follow(manager, id, worker_id, stream).await {
            return;
        }
        match attach(manager, id, worker_id).await {
            Some(next) => stream = next,
            None => return,
        }
    }
}

/// Attaches to the process's events from the stored offset, retrying while
/// the worker is not lost. Returns `None` when the worker is lost or no
/// longer has the process; the lease or its registration settles it then.
async fn attach(manager: &Manager, id: &str, worker_id: &str) -> Option<Streaming<WorkerEvent>> {
    loop {
        let status = manager.store.get(id)?;
        if is_terminal(&status) {
            return None;
        }
        let channel = manager.registry.channel(worker_id)?;
        let request = AttachProcessRequest {
            process_id: id.to_owned(),
            offset: status.output_bytes,
        };
        match WorkerProcessServiceClient::new(channel)
            .attach_process(request)
            .await
        {
            Ok(response) => return Some(response.into_inner()),
            Err(status) if status.code() == Code::NotFound => return None,
            Err(_) => tokio::time::sleep(REATTACH_DELAY).await,
        }
    }
}

/// Tells the worker what is stored; `release` once the end is stored.
async fn acknowledge(manager: &Manager, id: &str, worker_id: &str, offset: u64, release: bool) {
    let Some(channel) = manager.registry.channel(worker_id) else {
        return;
    };
    let request = AcknowledgeOutputRequest {
        process_id: id.to_owned(),
        offset,
        release,
    };
    let result = WorkerProcessServiceClient::new(channel)
        .acknowledge_output(request)
        .await;
    if let Err(status) = result {
        tracing::warn!(process_id = id, worker_id, error = %status.message(), "failed to acknowledge output");
    }
}

/// Records the worker's events until the finished event, which returns
/// true, or a broken stream, which returns false.
async fn follow(
    manager: &Manager,
    id: &str,
    worker_id: &str,
    mut stream: Streaming<WorkerEvent>,
) -> bool {
    let mut acknowledged = manager
        .store
        .get(id)
        .map_or(0, |status| status.output_bytes);
    loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event.event,
            Ok(None) => None,
            Err(status) => {
                tracing::warn!(process_id = id, worker_id, error = %status.message(), "lost the worker's event stream");
                return false;
            }
        };
        match event {
            Some(worker_event::Event::Started(started)) => {
                manager.mark_running(id, started.host_pid);
            }
            Some(worker_event::Event::Output(chunk)) => {
                let end = chunk.offset + chunk.data.len() as u64;
                if let Err(error) = manager.store.append_output(id, chunk) {
                    tracing::error!(process_id = id, error = %error, "failed to store output");
                    return false;
                }
                if end >= acknowledged + ACK_EVERY {
                    acknowledge(manager, id, worker_id, end, false).await;
                    acknowledged = end;
                }
            }
            Some(worker_event::Event::Finished(exit)) => {
                manager.mark_finished(id, exit);
                let end = manager
                    .store
                    .get(id)
                    .map_or(0, |status| status.output_bytes);
                acknowledge(manager, id, worker_id, end, true).await;
                return true;
            }
            None => {
                tracing::warn!(
                    process_id = id,
                    worker_id,
                    "worker's event stream ended early"
                );
                return false;
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
    /// Starts following unless another task follows the process already.
    fn try_start(manager: &'a Manager, id: &str) -> Option<Following<'a>> {
        let mut followed = manager.followed.lock().expect("followed lock poisoned");
        followed.insert(id.to_owned()).then(|| Following {
            manager,
            id: id.to_owned(),
        })
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
