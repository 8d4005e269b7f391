//! herd-workerd's library: the cgroup layer, the sandbox and its init, the
//! runner that follows each process, and the worker's gRPC service.
//!
//! The binary in `main.rs` only parses flags and hands over to [`daemon`].
//! Any binary that uses [`sandbox::spawn`] must dispatch the
//! [`sandbox::INIT_SUBCOMMAND`] to [`sandbox::init::main`] first thing,
//! because the sandbox re-executes `/proc/self/exe` as its init.

pub mod access;
pub mod cgroup;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod host;
pub mod journal;
pub mod output;
pub mod registration;
pub mod rlimits;
pub mod runner;
pub mod sandbox;
pub mod service;
