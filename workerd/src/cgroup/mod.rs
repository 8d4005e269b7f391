//! The cgroup layer: one cgroup per command, on cgroup v2, v1, or a hybrid
//! of both, behind one small interface (create, limit, attach, kill, stats,
//! remove).
//!
//! This module reads and writes cgroupfs directly with `std::fs` instead of
//! using cgroups-rs, because cgroups-rs 0.5 breaks promises herd makes. It
//! fixes the v2 hierarchy at `/sys/fs/cgroup`, so it misses the
//! `/sys/fs/cgroup/unified` mount of a hybrid host. Its `kill()` works only
//! on v2. Deleting a cgroup with live tasks moves them to the root instead
//! of failing. Some v2 statistics (OOM kill count, peak memory) come back
//! as zero. The files herd needs are few and documented in the kernel's
//! `Documentation/admin-guide/cgroup-v1/` and `cgroup-v2.rst`. Reading them
//! directly also lets unit tests run on tempdir fixtures, because every path
//! starts at a root the caller passes in.
//!
//! On a hybrid host the two versions split the work. A v2 cgroup, when a
//! cgroup2 mount exists, carries the command's lifetime: the child is cloned
//! straight into it (`CLONE_INTO_CGROUP`), `cgroup.kill` ends every process
//! in it, and its `cgroup.procs` lists what is left. Each resource controller
//! is used where the host has it: in its v1 hierarchy when mounted there,
//! otherwise in v2 when the v2 root offers it.

mod group;
mod layout;
mod stats;

pub use group::{CommandCgroup, list_children, prepare_parents};
pub use layout::Layout;
pub use stats::Stats;

use std::io;
use std::path::PathBuf;

/// Resource limits for one command's cgroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    /// Bytes per second read from each disk.
    pub io_read_bps: Option<u64>,
    /// Bytes per second written to each disk.
    pub io_write_bps: Option<u64>,
}

/// Errors of the cgroup layer; each names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to remove cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {path} still has processes after they were killed")]
    NotEmpty { path: PathBuf },
    #[error(
        "the {controller} controller is not available on this host, so the {limit} limit cannot be applied"
    )]
    MissingController {
        controller: &'static str,
        limit: &'static str,
    },
    #[error("no cgroup hierarchy is mounted: found neither cgroup2 nor cgroup v1 in {path}")]
    NoHierarchy { path: PathBuf },
    #[error("invalid cgroup parent {0:?}: expected a relative path of plain names, such as herd")]
    InvalidParent(String),
}

fn read_file(path: PathBuf) -> Result<String, CgroupError> {
    std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

fn write_file(path: PathBuf, value: &str) -> Result<(), CgroupError> {
    std::fs::write(&path, value).map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}
