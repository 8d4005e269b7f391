//! herd-xtask: build tasks for herd's packages, run by `packaging/build.sh`.

mod assets;
mod config_check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build tasks for herd's .deb and .rpm packages.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write the man pages and the bash, zsh and fish completions of herd,
    /// herd-managerd and herd-workerd into DIR/man and DIR/completions
    Assets {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Check that DIR/managerd.toml and DIR/workerd.toml load with the
    /// daemons' config types and show every setting those types accept
    CheckConfig {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Args::parse().task {
        Task::Assets { dir } => assets::write_all(&dir),
        Task::CheckConfig { dir } => config_check::check_dir(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herd-xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
