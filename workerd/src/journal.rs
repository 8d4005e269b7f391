//! Each process's events, spooled on the worker's disk until the manager
//! acknowledges them, so a manager restart loses no output.
//!
//! The runner's events go into a [`Journal`]; streams to the manager read
//! them back from any offset. The journal holds at most `limit` bytes the
//! manager has not acknowledged: past that, recording waits, the runner's
//! channel fills, and the sandbox's pipes stop being read, which blocks the
//! command instead of dropping its output.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use herd_proto::v1::{ExitStatus, OutputChunk, Started, WorkerEvent, worker_event};
use tokio::sync::{mpsc, watch};

/// Bytes of one process's output the worker spools beyond what the manager
/// acknowledged: 64 MiB.
pub const DEFAULT_SPOOL_LIMIT: u64 = 64 << 20;

/// The journal's position, as its followers see it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Output bytes recorded.
    pub end: u64,
    /// Output bytes the manager stored.
    pub acknowledged: u64,
    pub started: Option<Started>,
    pub finished: Option<ExitStatus>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    stream: i32,
    position: u64,
    length: u64,
}

/// One process's spooled events.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    entries: Mutex<Vec<Entry>>,
    progress: watch::Sender<Progress>,
    limit: u64,
}

impl Journal {
    /// Creates the spool file `dir/process_id`.
    pub fn create(dir: &Path, process_id: &str, limit: u64) -> io::Result<Journal> {
        let path = dir.join(process_id);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Journal {
            file,
            path,
            entries: Mutex::default(),
            progress: watch::channel(Progress::default()).0,
            limit,
        })
    }

    /// Returns a receiver of the journal's progress.
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Records one event of the runner, waiting while the manager lags more
    /// than the spool limit behind.
    pub async fn record(&self, event: WorkerEvent) -> io::Result<()> {
        match event.event {
            Some(worker_event::Event::Started(started)) => {
                self.progress
                    .send_modify(|progress| progress.started = Some(started));
            }
            Some(worker_event::Event::Output(chunk)) => self.append(chunk).await?,
            Some(worker_event::Event::Finished(status)) => {
                self.progress
                    .send_modify(|progress| progress.finished = Some(status));
            }
            None => {}
        }
        Ok(())
    }

    async fn append(&self, chunk: OutputChunk) -> io::Result<()> {
        let mut progress = self.watch();
        let _ = progress
            .wait_for(|now| now.end.saturating_sub(now.acknowledged) < self.limit)
            .await;
        let length = chunk.data.len() as u64;
        let position = {
            let entries = self.entries.lock().expect("journal lock poisoned");
            entries.last().map_or(0, |last| last.position + last.length)
        };
        self.file.write_all_at(&chunk.data, position)?;
        self.entries
            .lock()
            .expect("journal lock poisoned")
            .push(Entry {
                offset: chunk.offset,
                stream: chunk.stream,
                position,
                length,
            });
        self.progress
            .send_modify(|progress| progress.end = chunk.offset + length);
        Ok(())
    }

    /// Notes that the manager stored output up to `offset`.
    pub fn acknowledge(&self, offset: u64) {
        self.progress.send_modify(|progress| {
            progress.acknowledged = progress.acknowledged.max(offset);
        });
    }

    /// Reads spooled chunks from `offset` on, up to about `max_bytes`.
    pub fn read_from(&self, offset: u64, max_bytes: u64) -> io::Result<Vec<OutputChunk>> {
        let selected: Vec<Entry> = {
            let entries = self.entries.lock().expect("journal lock poisoned");
            let first = entries.partition_point(|entry| entry.offset + entry.length <= offset);
            let mut bytes = 0;
            entries[first..]
                .iter()
                .take_while(|entry| {
                    let take = bytes < max_bytes;
                    bytes += entry.length;
                    take
                })
                .copied()
                .collect()
        };
        let mut chunks = Vec::with_capacity(selected.len());
        for entry in selected {
            let skip = offset.saturating_sub(entry.offset);
            let mut data = vec![0; (entry.length - skip) as usize];
            self.file.read_exact_at(&mut data, entry.position + skip)?;
            chunks.push(OutputChunk {
                stream: entry.stream,
                offset: entry.offset + skip,
                data,
            });
        }
        Ok(chunks)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Streams a journal's events from `offset`: started, output, finished.
/// Ends when the finished event is sent or the receiver is gone.
pub async fn replay(journal: Arc<Journal>, mut offset: u64, sender: mpsc::Sender<WorkerEvent>) {
    let mut progress = journal.watch();
    let mut started_sent = false;
    loop {
        let now = progress.borrow_and_update().clone();
        if !started_sent && let Some(started) = now.started {
            started_sent = true;
            let event = worker_event::Event::Started(started);
            if sender
                .send(WorkerEvent { event: Some(event) })
                .await
                .is_err()
            {
                return;
            }
        }
        while offset < now.end {
            let chunks = match journal.read_from(offset, 1 << 20) {
                Ok(chunks) if !chunks.is_empty() => chunks,
                _ => return,
            };
            for chunk in chunks {
                offset = chunk.offset + chunk.data.len() as u64;
                let event = worker_event::Event::Output(chunk);
                if sender
                    .send(WorkerEvent { event: Some(event) })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if let Some(finished) = now.finished {
            let event = worker_event::Event::Finished(finished);
            let _ = sender.send(WorkerEvent { event: Some(event) }).await;
            return;
        }
        if progress.changed().await.is_err() {
            return;
        }
    }
}

/// The journals of every process the worker still has.
#[derive(Debug)]
pub struct Journals {
    dir: PathBuf,
    limit: u64,
    journals: Mutex<HashMap<String, Arc<Journal>>>,
}

impl Journals {
    /// Prepares the spool folder `dir`, removing spools an earlier run left.
    pub fn open(dir: PathBuf, limit: u64) -> io::Result<Journals> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(Journals {
            dir,
            limit,
            journals: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Journal>>> {
        self.journals.lock().expect("journals lock poisoned")
    }

    /// Creates the journal of a new process.
    pub fn create(&self, process_id: &str) -> io::Result<Arc<Journal>> {
        let journal = Arc::new(Journal::create(&self.dir, process_id, self.limit)?);
        self.lock().insert(process_id.to_owned(), journal.clone());
        Ok(journal)
    }

    /// Returns the journal of `process_id`.
    pub fn get(&self, process_id: &str) -> Option<Arc<Journal>> {
        self.lock().get(process_id).cloned()
    }

    /// Forgets a finished process whose events the manager stored.
    pub fn release(&self, process_id: &str) {
        let mut journals = self.lock();
        let finished = journals
            .get(process_id)
            .is_some_and(|journal| journal.watch().borrow().finished.is_some());
        if finished {
            journals.remove(process_id);
        }
    }

    /// Returns the ids of every process with a journal.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn output(offset: u64, data: &[u8]) -> WorkerEvent {
        WorkerEvent {
            event: Some(worker_event::Event::Output(OutputChunk {
                stream: 1,
                offset,
                data: data.to_vec(),
            })),
        }
    }

    fn finished() -> WorkerEvent {
        WorkerEvent {
            event: Some(worker_event::Event::Finished(ExitStatus::default())),
        }
    }

    #[tokio::test]
    async fn chunks_read_back_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), "p1", 1 << 20).unwrap();
        journal.record(output(0, b"hello ")).await.unwrap();
        journal.record(output(6, b"world")).await.unwrap();
        let chunks = journal.read_from(3, 1 << 20).unwrap();
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(bytes, b"lo world");
        assert_eq!(chunks[0].offset, 3);
    }

    #[tokio::test]
    async fn recording_waits_for_acknowledgement() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::create(dir.path(), "p1", 4).unwrap());
        journal.record(output(0, b"12345")).await.unwrap();
        let blocked = journal.record(output(5, b"6"));
        let waited = tokio::time::timeout(Duration::from_millis(100), blocked).await;
        assert!(waited.is_err(), "recording went past the spool limit");
        journal.acknowledge(5);
        journal.record(output(5, b"6")).await.unwrap();
        assert_eq!(journal.watch().borrow().end, 6);
    }

    #[tokio::test]
    async fn replay_ends_with_finished() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::create(dir.path(), "p1", 1 << 20).unwrap());
        journal.record(output(0, b"abc")).await.unwrap();
        journal.record(finished()).await.unwrap();
        let (sender, mut receiver) = mpsc::channel(8);
        replay(journal, 1, sender).await;
        let first = receiver.recv().await.unwrap().event;
        assert!(matches!(first, Some(worker_event::Event::Output(chunk)) if chunk.data == b"bc"));
        let last = receiver.recv().await.unwrap().event;
        assert!(matches!(last, Some(worker_event::Event::Finished(_))));
        assert!(receiver.recv().await.is_none());
    }

    #[tokio::test]
    async fn release_forgets_only_finished() {
        let dir = tempfile::tempdir().unwrap();
        let journals = Journals::open(dir.path().join("spool"), 1 << 20).unwrap();
        let journal = journals.create("p1").unwrap();
        journals.release("p1");
        assert_eq!(journals.ids(), ["p1"]);
        journal.record(finished()).await.unwrap();
        journals.release("p1");
        assert!(journals.ids().is_empty());
        drop(journal);
        assert!(!dir.path().join("spool/p1").exists());
    }
}
