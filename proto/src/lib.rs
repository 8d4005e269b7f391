//! herd's gRPC API and the parsing shared by the daemons and the CLI.
//!
//! The generated types and services of package `herd.v1` live in [`v1`].
//! [`endpoint`] parses `unix://`, `http://` and `https://` endpoints and opens
//! client channels to them; [`units`] parses the durations and sizes that
//! flags and config files take.

pub mod daemon;
pub mod endpoint;
pub mod names;
pub mod peer;
pub mod systemd;
pub mod tls;
pub mod units;

/// Largest message a herd service accepts: 4 MiB, room for a command at
/// its size limits.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Generated code for package `herd.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("herd.v1");
}

/// Encoded `FileDescriptorSet` of every herd proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/herd_descriptor.bin"));
