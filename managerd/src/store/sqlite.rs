//! A [`ProcessStore`] in an SQLite database, so a restart of the manager,
//! even by SIGKILL, loses no record and no output it acknowledged.
//!
//! The database runs in WAL mode with `synchronous=NORMAL`. A commit is in
//! the write-ahead log before the call returns, so it survives a crash of
//! the manager. Only a crash of the whole host may lose the last commits.
//! Records are stored as encoded `ProcessStatus` messages next to the few
//! columns queries need, so new fields need no migration.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use herd_proto::v1::{OutputChunk, ProcessStatus, WorkerInfo};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use super::{ProcessStore, StoreError};

/// Schema migrations, applied in order; `PRAGMA user_version` counts the
/// ones applied. Append new steps, never edit old ones.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE processes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status BLOB NOT NULL,
        retained INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE output (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        process_id TEXT NOT NULL REFERENCES processes(id),
        offset INTEGER NOT NULL,
        stream INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    CREATE UNIQUE INDEX output_by_process ON output(process_id, offset);
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        info BLOB NOT NULL
    );
"];

/// The process table in SQLite.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Mutex<Connection>,
    watchers: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Output bytes kept per process; older chunks are dropped first.
    output_limit: u64,
    /// Output bytes kept over all processes; the oldest chunks anywhere are
    /// dropped first.
    output_budget: u64,
    /// Output bytes stored now, over all processes.
    stored: Mutex<u64>,
}

fn database(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Database { operation, source }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up
    /// to date.
    pub fn open(
        path: &Path,
        output_limit: u64,
        output_budget: u64,
    ) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(database("open the database"))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(database("configure the database"))?;
        migrate(&connection)?;
        let stored: i64 = connection
            .query_row(
                "SELECT COALESCE(SUM(length(data)), 0) FROM output",
                [],
                |row| row.get(0),
            )
            .map_err(database("sum the stored output"))?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
            watchers: Mutex::default(),
            output_limit,
            output_budget,
            stored: Mutex::new(stored as u64),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().expect("database lock poisoned")
    }

    /// Wakes the followers of `id`.
    fn touch(&self, id: &str) {
        let mut watchers = self.watchers.lock().expect("watchers lock poisoned");
        watchers
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .send_modify(|count| *count += 1);
    }

    /// Drops the oldest chunks of `id` over the per-process limit, then the
    /// oldest chunks of any process over the total budget.
    fn trim(&self, connection: &Connection, id: &str) -> Result<Vec<String>, StoreError> {
        let mut touched = Vec::new();
        loop {
            let retained: i64 = connection
                .query_row(
                    "SELECT retained FROM processes WHERE id = ?1",
                    [id],
                    |row| row.get(0),
                )
                .map_err(database("read retained output"))?;
            if (retained as u64) <= self.output_limit {
                break;
            }
            if !drop_oldest(connection, id, true, &self.stored)? {
                break;
            }
        }
        while *self.stored.lock().expect("stored lock poisoned") > self.output_budget {
            match oldest_owner(connection)? {
                Some(owner) => {
                    drop_oldest(connection, &owner, false, &self.stored)?;
                    touched.push(owner);
                }
                None => break,
            }
        }
        Ok(touched)
    }
}

fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let applied: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(database("read the schema version"))?;
    let applied = applied.max(0) as usize;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index + 1;
        let batch = format!("BEGIN; {step}; PRAGMA user_version = {version}; COMMIT;");
        connection
            .execute_batch(&batch)
            .map_err(database("migrate the schema"))?;
    }
    Ok(())
}

/// Returns the process whose chunk is the oldest stored.
fn oldest_owner(connection: &Connection) -> Result<Option<String>, StoreError> {
    connection
        .query_row(
            "SELECT process_id FROM output ORDER BY seq LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(database("find the oldest output"))
}

/// Drops the oldest chunk of process `id`; returns false when there is
/// none to drop. With `keep_last`, the newest chunk always stays.
fn drop_oldest(
    connection: &Connection,
    id: &str,
    keep_last: bool,
    stored: &Mutex<u64>,
) -> Result<bool, StoreError> {
    if keep_last {
        let count: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM output WHERE process_id = ?1",
                [id],
                |row| row.get(0),
            )
            .map_err(database("count output"))?;
        if count <= 1 {
            return Ok(false);
        }
    }
    let oldest: Option<(i64, i64)> = connection
        .query_row(
            "SELECT seq, length(data) FROM output WHERE process_id = ?1 ORDER BY offset LIMIT 1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(database("find output to drop"))?;
    let Some((seq, length)) = oldest else {
        return Ok(false);
    };
    connection
        .execute("DELETE FROM output WHERE seq = ?1", [seq])
        .map_err(database("drop output"))?;
    connection
        .execute(
            "UPDATE processes SET retained = retained - ?1 WHERE id = ?2",
            params![length, id],
        )
        .map_err(database("count dropped output"))?;
    *stored.lock().expect("stored lock poisoned") -= length as u64;
    Ok(true)
}

fn decode(id: &str, blob: &[u8]) -> Result<ProcessStatus, StoreError> {
    ProcessStatus::decode(blob).map_err(|source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

fn load(connection: &Connection, id: &str) -> Result<Option<ProcessStatus>, StoreError> {
    let blob: Option<Vec<u8>> = connection
        .query_row("SELECT status FROM processes WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(database("read a process"))?;
    blob.map(|blob| decode(id, &blob)).transpose()
}

fn save(connection: &Connection, status: &ProcessStatus) -> Result<(), StoreError> {
    connection
        .execute(
            "UPDATE processes SET status = ?1 WHERE id = ?2",
            params![status.encode_to_vec(), status.id],
        )
        .map_err(database("write a process"))?;
    Ok(())
}

impl ProcessStore for SqliteStore {
    fn insert(&self, status: ProcessStatus) -> Result<(), StoreError> {
        let connection = self.lock();
        let inserted = connection.execute(
            "INSERT INTO processes (id, status) VALUES (?1, ?2) ON CONFLICT(id) DO NOTHING",
            params![status.id, status.encode_to_vec()],
        );
        match inserted.map_err(database("insert a process"))? {
            0 => Err(StoreError::AlreadyExists(status.id)),
            _ => Ok(()),
        }
    }

    fn get(&self, id: &str) -> Option<ProcessStatus> {
        match load(&self.lock(), id) {
            Ok(status) => status,
            Err(error) => {
                tracing::error!(process_id = id, error = %error, "failed to read a process");
                None
            }
        }
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut ProcessStatus),
    ) -> Result<ProcessStatus, StoreError> {
        let status = {
            let connection = self.lock();
            let mut status =
                load(&connection, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            change(&mut status);
            save(&connection, &status)?;
            status
        };
        self.touch(id);
        Ok(status)
    }

    fn append_output(&self, id: &str, mut chunk: OutputChunk) -> Result<(), StoreError> {
        let touched = {
            let mut connection = self.lock();
            let transaction = connection
                .transaction()
                .map_err(database("begin a transaction"))?;
            let mut status =
                load(&transaction, id)?.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
            let end = status.output_bytes;
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
            let length = chunk.data.len() as i64;
            transaction
                .execute(
                    "INSERT INTO output (process_id, offset, stream, data) VALUES (?1, ?2, ?3, ?4)",
                    params![id, chunk.offset as i64, chunk.stream, chunk.data],
                )
                .map_err(database("store output"))?;
            transaction
                .execute(
                    "UPDATE processes SET retained = retained + ?1 WHERE id = ?2",
                    params![length, id],
                )
                .map_err(database("count stored output"))?;
            *self.stored.lock().expect("stored lock poisoned") += length as u64;
            status.output_bytes = chunk_end;
            save(&transaction, &status)?;
            let touched = self.trim(&transaction, id)?;
            transaction.commit().map_err(database("commit output"))?;
            touched
        };
        self.touch(id);
        for other in touched {
            self.touch(&other);
        }
        Ok(())
    }

    fn read_output(&self, id: &str, offset: u64, max_bytes: usize) -> Vec<OutputChunk> {
        let connection = self.lock();
        let mut statement = match connection.prepare_cached(
            "SELECT offset, stream, data FROM output
             WHERE process_id = ?1 AND offset + length(data) > ?2
             ORDER BY offset LIMIT 64",
        ) {
            Ok(statement) => statement,
            Err(error) => {
                tracing::error!(process_id = id, error = %error, "failed to read output");
                return Vec::new();
            }
        };
        let rows = statement.query_map(params![id, offset as i64], |row| {
            Ok(OutputChunk {
                offset: row.get::<_, i64>(0)? as u64,
                stream: row.get(1)?,
                data: row.get(2)?,
            })
        });
        let mut chunks = Vec::new();
        let mut bytes = 0;
        for mut chunk in rows.into_iter().flatten().flatten() {
            if bytes >= max_bytes {
                break;
            }
            let skip = offset.saturating_sub(chunk.offset) as usize;
            chunk.data.drain(..skip);
            chunk.offset += skip as u64;
            bytes += chunk.data.len();
            chunks.push(chunk);
        }
        chunks
    }

    fn list(&self) -> Vec<ProcessStatus> {
        let connection = self.lock();
        let result = connection
            .prepare_cached("SELECT id, status FROM processes ORDER BY seq")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            });
        match result {
            Ok(rows) => rows
                .iter()
                .filter_map(|(id, blob)| decode(id, blob).ok())
                .collect(),
            Err(error) => {
                tracing::error!(error = %error, "failed to list processes");
                Vec::new()
            }
        }
    }

    fn watch(&self, id: &str) -> Option<watch::Receiver<u64>> {
        let exists = self
            .lock()
            .query_row("SELECT 1 FROM processes WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .ok()
            .flatten()
            .is_some();
        if !exists {
            return None;
        }
        let mut watchers = self.watchers.lock().expect("watchers lock poisoned");
        let sender = watchers
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(0).0);
        Some(sender.subscribe())
    }

    fn save_worker(&self, worker: &WorkerInfo) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT INTO workers (id, info) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET info = excluded.info",
                params![worker.id, worker.encode_to_vec()],
            )
            .map_err(database("save a worker"))?;
        Ok(())
    }

    fn load_workers(&self) -> Vec<WorkerInfo> {
        let connection = self.lock();
        let result = connection
            .prepare("SELECT info FROM workers ORDER BY id")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get::<_, Vec<u8>>(0))?
                    .collect::<Result<Vec<_>, _>>()
            });
        result
            .unwrap_or_default()
            .iter()
            .filter_map(|blob| WorkerInfo::decode(blob.as_slice()).ok())
            .collect()
    }
}
