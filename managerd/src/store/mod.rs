//! The process table: every process record and its output log.
//!
//! [`ProcessStore`] is the interface the manager uses; [`SqliteStore`]
//! keeps everything in an SQLite database so a restart loses nothing. Each
//! record has a change counter that followers watch, so live output and
//! state changes reach clients without polling.

mod sqlite;

pub use sqlite::SqliteStore;

use herd_proto::v1::{OutputChunk, ProcessStatus, WorkerInfo};
use tokio::sync::watch;

/// Default maximum of output kept per process: 256 MiB.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 256 << 20;

/// Errors of the process table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("process {0} already exists")]
    AlreadyExists(String),
    #[error("process {0} not found")]
    NotFound(String),
    #[error(
        "output chunk at offset {offset} for process {id} does not follow the stored end at {end}"
    )]
    OutputGap { id: String, offset: u64, end: u64 },
    #[error("failed to {operation}")]
    Database {
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("invalid record of process {id} in the state database")]
    Corrupt {
        id: String,
        #[source]
        source: prost::DecodeError,
    },
}

/// Storage for process records, their output, and the known workers.
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
    /// Records a worker's registration, so a restarted manager can restore it.
    fn save_worker(&self, worker: &WorkerInfo) -> Result<(), StoreError>;
    /// Returns the workers saved before.
    fn load_workers(&self) -> Vec<WorkerInfo>;
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

    fn record(id: &str) -> ProcessStatus {
        ProcessStatus {
            id: id.into(),
            ..ProcessStatus::default()
        }
    }

    fn output_of(store: &dyn ProcessStore, id: &str, offset: u64) -> Vec<u8> {
        store
            .read_output(id, offset, 1 << 20)
            .iter()
            .flat_map(|chunk| chunk.data.clone())
            .collect()
    }

    /// Runs `check` against a new store with `limit` bytes of output per
    /// process.
    fn each_store(limit: u64, check: impl Fn(&dyn ProcessStore)) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("state.db"), limit, u64::MAX).unwrap();
        check(&sqlite);
    }

    #[test]
    fn duplicate_id_is_rejected() {
        each_store(1 << 20, |store| {
            store.insert(record("a")).unwrap();
            let again = store.insert(record("a"));
            assert!(matches!(again, Err(StoreError::AlreadyExists(id)) if id == "a"));
        });
    }

    #[test]
    fn output_reads_from_any_offset() {
        each_store(1 << 20, |store| {
            store.insert(record("a")).unwrap();
            store.append_output("a", chunk(0, b"hello ")).unwrap();
            store.append_output("a", chunk(6, b"world")).unwrap();
            assert_eq!(output_of(store, "a", 3), b"lo world");
            assert_eq!(store.read_output("a", 3, 1 << 20)[0].offset, 3);
            assert!(store.read_output("a", 11, 1 << 20).is_empty());
        });
    }

    #[test]
    fn resent_output_is_stored_once() {
        each_store(1 << 20, |store| {
            store.insert(record("a")).unwrap();
            store.append_output("a", chunk(0, b"abc")).unwrap();
            store.append_output("a", chunk(0, b"abc")).unwrap();
            store.append_output("a", chunk(1, b"bcde")).unwrap();
            assert_eq!(output_of(store, "a", 0), b"abcde");
            assert_eq!(store.get("a").unwrap().output_bytes, 5);
        });
    }

    #[test]
    fn output_gap_is_rejected() {
        each_store(1 << 20, |store| {
            store.insert(record("a")).unwrap();
            let error = store.append_output("a", chunk(4, b"x")).unwrap_err();
            assert!(matches!(
                error,
                StoreError::OutputGap {
                    offset: 4,
                    end: 0,
                    ..
                }
            ));
        });
    }

    #[test]
    fn oldest_output_is_dropped_at_the_limit() {
        each_store(8, |store| {
            store.insert(record("a")).unwrap();
            store.append_output("a", chunk(0, b"12345")).unwrap();
            store.append_output("a", chunk(5, b"67890")).unwrap();
            let read = store.read_output("a", 0, 1 << 20);
            assert_eq!(read.len(), 1);
            assert_eq!(read[0].offset, 5);
            assert_eq!(read[0].data, b"67890");
            assert_eq!(store.get("a").unwrap().output_bytes, 10);
        });
    }

    #[test]
    fn watchers_see_changes() {
        each_store(1 << 20, |store| {
            store.insert(record("a")).unwrap();
            let mut watcher = store.watch("a").unwrap();
            store
                .update("a", &mut |status| status.worker_id = "w1".into())
                .unwrap();
            assert!(watcher.has_changed().unwrap());
            watcher.borrow_and_update();
            store.append_output("a", chunk(0, b"x")).unwrap();
            assert!(watcher.has_changed().unwrap());
            assert!(store.watch("missing").is_none());
        });
    }

    #[test]
    fn sqlite_keeps_everything_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = SqliteStore::open(&path, 1 << 20, u64::MAX).unwrap();
            for id in ["a", "b"] {
                store.insert(record(id)).unwrap();
            }
            store
                .update("b", &mut |status| status.exit_code = Some(3))
                .unwrap();
            store.append_output("b", chunk(0, b"kept")).unwrap();
            let worker = WorkerInfo {
                id: "w1".into(),
                ..WorkerInfo::default()
            };
            store.save_worker(&worker).unwrap();
        }
        let store = SqliteStore::open(&path, 1 << 20, u64::MAX).unwrap();
        let ids: Vec<String> = store.list().into_iter().map(|status| status.id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(store.get("b").unwrap().exit_code, Some(3));
        assert_eq!(output_of(&store, "b", 0), b"kept");
        assert_eq!(store.load_workers()[0].id, "w1");
    }

    #[test]
    fn sqlite_budget_drops_oldest_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("state.db"), 1 << 20, 6).unwrap();
        store.insert(record("old")).unwrap();
        store.insert(record("new")).unwrap();
        store.append_output("old", chunk(0, b"1234")).unwrap();
        store.append_output("new", chunk(0, b"5678")).unwrap();
        assert_eq!(output_of(&store, "old", 0), b"");
        assert_eq!(output_of(&store, "new", 0), b"5678");
    }
}
