//! The roles a caller can hold.

use std::fmt;

use serde::Deserialize;

/// A caller's role, from the manager's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, on every process.
    Admin,
    /// Runs commands, and reads, follows and terminates its own.
    Operator,
    /// Reads its own processes, or all when `viewers_see_all` is set.
    Viewer,
    /// Registers and heartbeats as a worker; nothing else.
    Worker,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Worker => "worker",
        })
    }
}
