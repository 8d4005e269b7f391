//! The verbs of the CLI, one module each.

mod kill;
mod logs;
mod ps;
mod run;
mod status;
mod wait;
mod workers;

use clap::{Parser, Subcommand};
use herd_proto::v1::ProcessStatus;

use crate::client::{self, Client, DEFAULT_ADDR};

/// Exit code when herd itself failed, as docker uses 125.
pub const HERD_FAILED: u8 = 125;

/// herd: run commands on a fleet of hosts, each in its own sandbox.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Manager endpoint: unix:///path, http://host:port or https://host:port
    #[arg(long, env = "HERD_ADDR", default_value = DEFAULT_ADDR, global = true)]
    addr: String,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    Run(Box<run::Args>),
    Ps(ps::Args),
    Status(status::Args),
    Logs(logs::Args),
    Wait(wait::Args),
    Kill(kill::Args),
    Workers(workers::Args),
}

impl Cli {
    /// Reports whether the verb streams a remote command's output, and so
    /// must handle a closed stdout itself.
    pub fn streams_to_remote(&self) -> bool {
        matches!(self.command, Verb::Run(_))
    }

    /// Runs the chosen verb and returns the process's exit code.
    pub async fn run(self) -> anyhow::Result<u8> {
        let client = client::connect(&self.addr).await?;
        match self.command {
            Verb::Run(args) => run::run(client, &self.addr, *args).await,
            Verb::Ps(args) => ps::run(client, args).await,
            Verb::Status(args) => status::run(client, args).await,
            Verb::Logs(args) => logs::run(client, &self.addr, args).await,
            Verb::Wait(args) => wait::run(client, args).await,
            Verb::Kill(args) => kill::run(client, args).await,
            Verb::Workers(args) => workers::run(client, args).await,
        }
    }
}

/// Returns the exit code `herd run` and `herd wait` end with: the command's
/// code, 128 + N for signal N, or 125 when it has neither.
pub fn exit_code_of(status: &ProcessStatus) -> u8 {
    match (status.exit_code, status.signal) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        (None, None) => HERD_FAILED,
    }
}

/// Turns an error status from the manager into an error for the user. An
/// empty message means the endpoint is not a herd manager at all.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    if status.message().is_empty() {
        return anyhow::anyhow!(
            "the server returned {:?} with no message; is --addr a herd-managerd endpoint?",
            status.code()
        );
    }
    anyhow::anyhow!("{}", status.message())
}

/// Prints the error of a process that did not complete, for `run` and
/// `wait`.
pub fn report_failure(status: &ProcessStatus) {
    if !status.error.is_empty() {
        eprintln!("herd: process {}: {}", status.id, status.error);
    }
}

/// A connected client, which each verb takes by value.
pub type Connected = Client;
