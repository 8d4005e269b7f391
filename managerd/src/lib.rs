//! herd-managerd's library: the worker registry, placement, the process
//! table and its SQLite store, and the gRPC services for clients and
//! workers.
//!
//! The binary in `main.rs` only parses flags and hands over to [`daemon`].

pub mod api;
pub mod auth;
pub mod certs;
pub mod config;
pub mod daemon;
pub mod dispatch;
pub mod follow;
pub mod metrics;
pub mod registration_api;
pub mod registry;
pub mod state;
pub mod store;
pub mod validate;
