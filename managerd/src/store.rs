//! The process table: every process record and its output log.
//!
//! [`ProcessStore`] is the interface the manager uses; [`MemoryStore`]
//! keeps everything in memory. Each record has a change counter that
//! followers watch, so live output and state changes reach clients without
//! polling.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use herd_proto::v1::{OutputChunk, ProcessStatus};
use tokio::sync::watch;

/// Errors of the process table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("process {0} already exists")]
    AlreadyExists(String),
    #[error("process {0} not found")]
    NotFound(String),
    #[error(
        "output chunk at offset {offset} for process {id} does not follow the stored end at {end}"
    )]
    OutputGap { id: String, offset: u64, end: u64 },
}

/// Storage for process records and their output.
pub trait ProcessStore: Send + Sync + std::fmt::Debug {
    /// Adds a new record; its id must be unused.
    fn insert(&self, status: ProcessStatus) -> Result<(), StoreError>;
    /// Returns a copy of a record.
    fn get(&self, id: &str) -> Option<ProcessStatus>;
    /// Changes a record in place and returns the result.
    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut ProcessStatus),
    ) -> Result<ProcessStatus, StoreError>;
    /// Appends a chunk to the output log. A chunk whose bytes are all stored
    /// already is ignored, so a resent chunk is never stored twice.
    fn append_output(&self, id: &str, chunk: OutputChunk) -> Result<(), StoreError>;
    /// Returns the stored chunks from `offset` on, the first one cut to
    /// start exactly at `offset`, up to about `max_bytes`. When output
    /// before `offset` was dropped for the output limit, the first chunk
    /// starts later than `offset`, so the reader sees what is missing.
    fn read_output(&self, id: &str, offset: u64, max_bytes: usize) -> Vec<OutputChunk>;
    /// Returns all records, oldest first.
    fn list(&self) -> Vec<ProcessStatus>;
    /// Returns a receiver that changes whenever the record or its output
    /// does.
    fn watch(&self, id: &str) -> Option<watch::Receiver<u64>>;
}

#[derive(Debug)]
struct Entry {
    status: ProcessStatus,
    output: VecDeque<OutputChunk>,
    /// Bytes held in `output`.
    retained: u64,
    changes: watch::Sender<u64>,
}

impl Entry {
    fn touch(&self) {
        self.changes.send_modify(|count| *count += 1);
    }
}

/// Default maximum of output kept per process: 256 MiB.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 256 << 20;

/// A [`ProcessStore`] in memory. Each process keeps at most `output_limit`
/// bytes of output; older chunks are dropped first.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    output_limit: u64,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new(DEFAULT_OUTPUT_LIMIT)
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    order: Vec<String>,
}

impl MemoryStore {
    /// Creates an empty store that keeps `output_limit` bytes per process.
    pub fn new(output_limit: u64) -> MemoryStore {
        MemoryStore {
            inner: Mutex::default(),
            output_limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("store lock poisoned")
    }
}

impl ProcessStore for MemoryStore {
    fn insert(&self, status: ProcessStatus) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.entries.contains_key(&status.id) {
            return Err(StoreError::AlreadyExists(status.id));
        }
        let id = status.id.clone();
        let entry = Entry {
            status,
            output: VecDeque::new(),
            retained: 0,
            changes: watch::channel(0).0,
        };
        inner.entries.insert(id.clone(), entry);
        inner.order.push(id);
        Ok(())
    }

    fn get(&self, id: &str) -> Option<ProcessStatus> {
        self.lock()
            .entries
            .get(id)
            .map(|entry| entry.status.clone())
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut ProcessStatus),
    ) -> Result<ProcessStatus, StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .entries
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        change(&mut entry.status);
        entry.touch();
        Ok(entry.status.clone())
    }

    fn append_output(&self, id: &str, mut chunk: OutputChunk) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .entries
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        let end = entry.status.output_bytes;
        let chunk_end = chunk.offset + chunk.data.len() as u64;
        if chunk_end <= end {
            return Ok(());
        }
        if chunk.offset > end {
            return Err(StoreError::OutputGap {
                id: id.to_owned(),
                offset: chunk.offset,
                end,
            });
        }
        chunk.data.drain(..(end - chunk.offset) as usize);
        chunk.offset = end;
        entry.status.output_bytes = chunk_end;
        entry.retained += chunk.data.len() as u64;
        entry.output.push_back(chunk);
        // NOTE: only a per-process limit so far; a total budget across
        // processes comes with the durable store.
        while entry.retained > self.output_limit && entry.output.len() > 1 {
            if let Some(oldest) = entry.output.pop_front() {
                entry.retained -= oldest.data.len() as u64;
            }
        }
        entry.touch();
        Ok(())
    }

    fn read_output(&self, id: &str, offset: u64, max_bytes: usize) -> Vec<OutputChunk> {
        let inner = self.lock();
        let Some(entry) = inner.entries.get(id) else {
            return Vec::new();
        };
        let first = entry
            .output
            .partition_point(|chunk| chunk.offset + chunk.data.len() as u64 <= offset);
        let mut chunks = Vec::new();
        let mut bytes = 0;
        for chunk in entry.output.range(first..) {
            if bytes >= max_bytes {
                break;
            }
            let skip = offset.saturating_sub(chunk.offset) as usize;
            bytes += chunk.data.len() - skip;
            chunks.push(OutputChunk {
                stream: chunk.stream,
                offset: chunk.offset + skip as u64,
                data: chunk.data[skip..].to_vec(),
            });
        }
        chunks
    }

    fn list(&self) -> Vec<ProcessStatus> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .filter_map(|id| inner.entries.get(id))
            .map(|entry| entry.status.clone())
            .collect()
    }

    fn watch(&self, id: &str) -> Option<watch::Receiver<u64>> {
        self.lock()
            .entries
            .get(id)
            .map(|entry| entry.changes.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, data: &[u8]) -> OutputChunk {
        OutputChunk {
            stream: 1,
            offset,
            data: data.to_vec(),
        }
    }

    fn store_with(id: &str) -> MemoryStore {
        let store = MemoryStore::default();
        let status = ProcessStatus {
            id: id.into(),
            ..ProcessStatus::default()
        };
        store.insert(status).unwrap();
        store
    }

    #[test]
    fn duplicate_id_is_rejected() {
        let store = store_with("a");
        let again = ProcessStatus {
            id: "a".into(),
            ..ProcessStatus::default()
        };
        assert_eq!(
            store.insert(again),
            Err(StoreError::AlreadyExists("a".into()))
        );
    }

    #[test]
    fn output_reads_from_any_offset() {
        let store = store_with("a");
        store.append_output("a", chunk(0, b"hello ")).unwrap();
        store.append_output("a", chunk(6, b"world")).unwrap();
        let read = store.read_output("a", 3, 1 << 20);
        let bytes: Vec<u8> = read.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(bytes, b"lo world");
        assert_eq!(read[0].offset, 3);
        assert!(store.read_output("a", 11, 1 << 20).is_empty());
    }

    #[test]
    fn resent_output_is_stored_once() {
        let store = store_with("a");
        store.append_output("a", chunk(0, b"abc")).unwrap();
        store.append_output("a", chunk(0, b"abc")).unwrap();
        store.append_output("a", chunk(1, b"bcde")).unwrap();
        let bytes: Vec<u8> = store
            .read_output("a", 0, 1 << 20)
            .iter()
            .flat_map(|c| c.data.clone())
            .collect();
        assert_eq!(bytes, b"abcde");
        assert_eq!(store.get("a").unwrap().output_bytes, 5);
    }

    #[test]
    fn oldest_output_is_dropped_at_the_limit() {
        let store = MemoryStore::new(8);
        store
            .insert(ProcessStatus {
                id: "a".into(),
                ..ProcessStatus::default()
            })
            .unwrap();
        store.append_output("a", chunk(0, b"12345")).unwrap();
        store.append_output("a", chunk(5, b"67890")).unwrap();
        let read = store.read_output("a", 0, 1 << 20);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].offset, 5);
        assert_eq!(read[0].data, b"67890");
        assert_eq!(store.get("a").unwrap().output_bytes, 10);
    }

    #[test]
    fn output_gap_is_rejected() {
        let store = store_with("a");
        let error = store.append_output("a", chunk(4, b"x")).unwrap_err();
        assert_eq!(
            error,
            StoreError::OutputGap {
                id: "a".into(),
                offset: 4,
                end: 0
            }
        );
    }

    #[test]
    fn watchers_see_changes() {
        let store = store_with("a");
        let mut watcher = store.watch("a").unwrap();
        store
            .update("a", &mut |status| status.worker_id = "w1".into())
            .unwrap();
        assert!(watcher.has_changed().unwrap());
        watcher.borrow_and_update();
        store.append_output("a", chunk(0, b"x")).unwrap();
        assert!(watcher.has_changed().unwrap());
    }
}
