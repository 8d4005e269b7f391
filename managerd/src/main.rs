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
    let result = config::Config::load(flags).and_then(|config| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(daemon::run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herd-managerd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
