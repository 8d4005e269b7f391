//! Sandboxes: the worker binary re-executed as PID 1 in new namespaces
//! inside the command's cgroup, which then runs the command as PID 2.
//!
//! [`spawn`] runs in the multi-threaded worker and does only async-signal-safe
//! work between clone and exec. [`init`] runs in the re-executed binary,
//! single-threaded, and does everything else before the command starts.

mod clone;
mod harden;
pub mod identity;
pub mod init;
mod report;
mod setup;

pub use clone::{Sandbox, spawn};
pub use harden::Rlimit;
pub use identity::Identity;
pub use report::InitReport;

use serde::{Deserialize, Serialize};

/// The hidden subcommand that makes the worker binary act as a sandbox init.
pub const INIT_SUBCOMMAND: &str = "sandbox-init";

/// Everything the init needs to set up the sandbox and start the command,
/// sent to it as JSON over a pipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxSpec {
    pub args: Vec<String>,
    /// The command's whole environment, already merged with the defaults.
    pub env: Vec<(String, String)>,
    /// The user and groups the command runs as.
    pub identity: Identity,
    /// Resource limits set on the command's process.
    pub rlimits: Vec<Rlimit>,
    pub workdir: String,
    pub hostname: String,
    /// Keep the host's network namespace instead of a private one.
    pub host_network: bool,
}

/// File descriptor numbers inside the init.
pub mod fds {
    /// The spec pipe's read end, closed by the init once read.
    pub const SPEC: i32 = 3;
    /// The report pipe's write end, where the init writes how the command
    /// ended.
    pub const REPORT: i32 = 4;
}
