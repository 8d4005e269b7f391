//! herd-managerd: the manager daemon.

use std::process::ExitCode;

use clap::Parser;
use herd_managerd::{certs, config, daemon};

fn main() -> ExitCode {
    let mut flags = config::Flags::parse();
    if let Some(certs::Command::Certs(certs)) = flags.command.take() {
        return match certs.run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("herd-managerd certs: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    herd_proto::daemon::init_logging();
    let config = match config::Config::load(flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("herd-managerd: {error:#}");
            return ExitCode::from(herd_proto::daemon::EXIT_CONFIG);
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(daemon::run(config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herd-managerd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
