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

use std::path::PathBuf;

use crate::client::{self, Client, DEFAULT_ADDR, Target};

/// Exit code when herd itself failed, as docker uses 125.
pub const HERD_FAILED: u8 = 125;

/// herd: run commands on a fleet of hosts, each in its own sandbox.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Manager endpoint: unix:///path, http://host:port or https://host:port
    #[arg(long, env = "HERD_ADDR", default_value = DEFAULT_ADDR, global = true)]
    addr: String,
    /// CA certificate that signed the manager's certificate, for https://
    #[arg(long, env = "HERD_CACERT", value_name = "FILE", global = true)]
    ca_cert: Option<PathBuf>,
    /// Your client certificate, for https://
    #[arg(long, env = "HERD_CLIENT_CERT", value_name = "FILE", global = true)]
    client_cert: Option<PathBuf>,
    /// The private key of --client-cert
    #[arg(long, env = "HERD_CLIENT_KEY", value_name = "FILE", global = true)]
    client_key: Option<PathBuf>,
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
    /// Runs the chosen verb and returns the process's exit code.
    pub async fn run(self) -> anyhow::Result<u8> {
        let target = Target::new(self.addr, self.ca_cert, self.client_cert, self.client_key)?;
        let connect = || client::connect(&target);
        match self.command {
            Verb::Run(args) => {
                // Bad flags fail before herd connects.
                let prepared = run::prepare(&args)?;
                run::run(connect().await?, &target, prepared).await
            }
            Verb::Ps(args) => ps::run(connect().await?, args).await,
            Verb::Status(args) => status::run(connect().await?, args).await,
            Verb::Logs(args) => logs::run(connect().await?, &target, args).await,
            Verb::Wait(args) => wait::run(connect().await?, args).await,
            Verb::Kill(args) => kill::run(connect().await?, args).await,
            Verb::Workers(args) => workers::run(connect().await?, args).await,
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
    let causes = causes_of(&status);
    if causes.contains("h2 protocol error") {
        return anyhow::anyhow!(
            "{}: {causes}; if the manager serves https://, use https:// in --addr",
            status.message()
        );
    }
    if causes.is_empty() {
        anyhow::anyhow!("{}", status.message())
    } else {
        anyhow::anyhow!("{}: {causes}", status.message())
    }
}

/// Returns the causes under a status that wraps a transport error, such as
/// the TLS alert that ended the connection, joined with `: `.
pub fn causes_of(status: &tonic::Status) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.iter().any(|known| known.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    causes.join(": ")
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
