//! Followers: tasks that turn a process record and its output log into a
//! client's stream, waking on every change instead of polling.

use std::sync::Arc;

use herd_proto::v1::{OutputChunk, ProcessEvent, ProcessState, ProcessStatus, process_event};
use tokio::sync::mpsc;
use tonic::Status;

use crate::state::{Manager, is_terminal};

/// Output bytes read from the store per step of a follower.
const READ_BYTES: usize = 1 << 20;

/// Streams a process's events: accepted, started, every output chunk from
/// the start, then finished. A request that no worker took ends the stream
/// with UNAVAILABLE.
pub async fn events(
    manager: Arc<Manager>,
    id: String,
    sender: mpsc::Sender<Result<ProcessEvent, Status>>,
) {
    let Some(mut changes) = manager.store.watch(&id) else {
        return;
    };
    let mut offset = 0;
    let mut started = false;
    let mut first = true;
    loop {
        changes.borrow_and_update();
        let Some(status) = manager.store.get(&id) else {
            return;
        };
        if first {
            first = false;
            if !send(&sender, process_event::Event::Accepted(status.clone())).await {
                return;
            }
        }
        if !started && status.started_at.is_some() {
            started = true;
            if !send(&sender, process_event::Event::Started(status.clone())).await {
                return;
            }
        }
        let end = status.output_bytes;
        let Some(new_offset) = send_output(&manager, &id, offset, end, &sender).await else {
            return;
        };
        offset = new_offset;
        if is_terminal(&status) && offset >= status.output_bytes {
            if is_unplaced(&status) {
                let _ = sender.send(Err(Status::unavailable(status.error))).await;
            } else {
                send(&sender, process_event::Event::Finished(status)).await;
            }
            return;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Reports whether a failed record never reached a worker.
fn is_unplaced(status: &ProcessStatus) -> bool {
    status.state == ProcessState::Failed as i32 && status.worker_id.is_empty()
}

async fn send(
    sender: &mpsc::Sender<Result<ProcessEvent, Status>>,
    event: process_event::Event,
) -> bool {
    let event = ProcessEvent { event: Some(event) };
    sender.send(Ok(event)).await.is_ok()
}

/// Sends the stored output from `offset`; returns the new offset, or `None`
/// when the client is gone.
async fn send_output(
    manager: &Manager,
    id: &str,
    mut offset: u64,
    end: u64,
    sender: &mpsc::Sender<Result<ProcessEvent, Status>>,
) -> Option<u64> {
    loop {
        let chunks = next_chunks(manager, id, offset, end);
        if chunks.is_empty() {
            return Some(offset);
        }
        for chunk in chunks {
            offset = chunk.offset + chunk.data.len() as u64;
            if !send(sender, process_event::Event::Output(chunk)).await {
                return None;
            }
        }
    }
}

/// Returns the stored chunks from `offset`. `end` is the output length
/// seen in the record. When the output limits dropped everything from
/// `offset` to `end`, it returns one empty chunk at `end` instead. Readers
/// then learn of the gap and move past it, rather than wait for bytes that
/// are gone.
fn next_chunks(manager: &Manager, id: &str, offset: u64, end: u64) -> Vec<OutputChunk> {
    let chunks = manager.store.read_output(id, offset, READ_BYTES);
    if chunks.is_empty() && offset < end {
        return vec![OutputChunk {
            stream: 0,
            offset: end,
            data: Vec::new(),
        }];
    }
    chunks
}

/// Streams output from `offset`; with `follow`, keeps streaming live output
/// until the process ends.
pub async fn output(
    manager: Arc<Manager>,
    id: String,
    mut offset: u64,
    follow: bool,
    sender: mpsc::Sender<Result<OutputChunk, Status>>,
) {
    let Some(mut changes) = manager.store.watch(&id) else {
        return;
    };
    loop {
        changes.borrow_and_update();
        let Some(status) = manager.store.get(&id) else {
            return;
        };
        loop {
            let chunks = next_chunks(&manager, &id, offset, status.output_bytes);
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                offset = chunk.offset + chunk.data.len() as u64;
                if sender.send(Ok(chunk)).await.is_err() {
                    return;
                }
            }
        }
        let done = is_terminal(&status) && offset >= status.output_bytes;
        if done || !follow || changes.changed().await.is_err() {
            return;
        }
    }
}

/// Waits until the process is terminal and returns its record.
pub async fn terminal(manager: &Manager, id: &str) -> Option<ProcessStatus> {
    let mut changes = manager.store.watch(id)?;
    loop {
        changes.borrow_and_update();
        let status = manager.store.get(id)?;
        if is_terminal(&status) {
            return Some(status);
        }
        changes.changed().await.ok()?;
    }
}
