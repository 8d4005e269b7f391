//! The manager's shared state and the transitions of a process record.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use herd_proto::v1::{ExitStatus, ProcessState, ProcessStatus, Reason};

use crate::registry::Registry;
use crate::store::ProcessStore;

/// Everything the manager's tasks and services share.
#[derive(Debug)]
pub struct Manager {
    pub store: Arc<dyn ProcessStore>,
    pub registry: Registry,
    pub lease: Duration,
    pub queue_timeout: Duration,
    /// Processes whose worker event stream this manager follows now.
    pub followed: Mutex<HashSet<String>>,
}

impl Manager {
    /// Records the process as RUNNING on `host_pid`.
    pub fn mark_running(&self, id: &str, host_pid: u32) {
        let _ = self.store.update(id, &mut |status| {
            if status.state == ProcessState::Pending as i32 {
                status.state = ProcessState::Running as i32;
                status.host_pid = host_pid;
                status.started_at = Some(SystemTime::now().into());
            }
        });
    }

    /// Records how the process ended, unless it has ended already.
    pub fn mark_finished(&self, id: &str, exit: ExitStatus) {
        let state = state_for(&exit);
        let _ = self.store.update(id, &mut |status| {
            if ProcessState::try_from(status.state).is_ok_and(ProcessState::is_terminal) {
                return;
            }
            status.state = state as i32;
            status.reason = exit.reason;
            status.exit_code = exit.exit_code;
            status.signal = exit.signal;
            status.error = exit.error.clone();
            status.metrics = exit.metrics;
            status.finished_at = Some(SystemTime::now().into());
        });
    }

    /// Fails every live process placed on `worker_id` with WORKER_LOST,
    /// except those in `still_running`.
    pub fn fail_lost(&self, worker_id: &str, still_running: &[String], error: &str) {
        for status in self.store.list() {
            let live = !ProcessState::try_from(status.state).is_ok_and(ProcessState::is_terminal);
            if !live || status.worker_id != worker_id || still_running.contains(&status.id) {
                continue;
            }
            if status.state == ProcessState::Pending as i32 {
                // A request still being sent is settled by its dispatch task.
                continue;
            }
            tracing::warn!(process_id = %status.id, worker_id, "process lost with its worker");
            let exit = ExitStatus {
                reason: Reason::WorkerLost as i32,
                error: error.to_owned(),
                ..ExitStatus::default()
            };
            self.mark_finished(&status.id, exit);
        }
    }
}

impl Manager {
    /// Places again the requests a previous run of the manager accepted
    /// but had not placed, with the placement they asked for. Running
    /// records are resumed when their worker registers.
    pub fn recover(self: &Arc<Self>) {
        for status in self.store.list() {
            if status.state != ProcessState::Pending as i32 {
                continue;
            }
            tracing::info!(process_id = %status.id, "placing a request accepted before the restart");
            let placement = status.placement.clone().unwrap_or_default();
            tokio::spawn(crate::dispatch::run(self.clone(), status.id, placement));
        }
    }
}

/// Derives the terminal state from how a process ended: COMPLETED for exit
/// code 0, ABORTED after a terminate request, FAILED otherwise.
pub fn state_for(exit: &ExitStatus) -> ProcessState {
    match Reason::try_from(exit.reason).unwrap_or_default() {
        Reason::TerminatedByUser | Reason::WorkerShutdown => ProcessState::Aborted,
        Reason::Exited if exit.exit_code == Some(0) => ProcessState::Completed,
        _ => ProcessState::Failed,
    }
}

/// Reports whether a record is in a terminal state.
pub fn is_terminal(status: &ProcessStatus) -> bool {
    ProcessState::try_from(status.state).is_ok_and(ProcessState::is_terminal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_reasons() {
        let exit = |reason: Reason, code| ExitStatus {
            reason: reason as i32,
            exit_code: code,
            ..ExitStatus::default()
        };
        assert_eq!(
            state_for(&exit(Reason::Exited, Some(0))),
            ProcessState::Completed
        );
        assert_eq!(
            state_for(&exit(Reason::Exited, Some(1))),
            ProcessState::Failed
        );
        assert_eq!(
            state_for(&exit(Reason::TerminatedByUser, None)),
            ProcessState::Aborted
        );
        assert_eq!(
            state_for(&exit(Reason::OomKilled, None)),
            ProcessState::Failed
        );
        assert_eq!(
            state_for(&exit(Reason::WorkerLost, None)),
            ProcessState::Failed
        );
    }
}
