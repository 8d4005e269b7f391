//! herd's command-line client as a library: `main.rs` parses and runs a
//! [`Cli`], and the packaging task reads its clap definition for the man
//! pages and shell completions.

mod client;
mod commands;
mod output;

pub use commands::{Cli, HERD_FAILED};
