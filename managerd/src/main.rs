//! herd-managerd: the manager daemon.

mod api;
mod config;
mod daemon;
mod dispatch;
mod follow;
mod metrics;
mod registration_api;
mod registry;
mod state;
mod store;
mod validate;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let flags = config::Flags::parse();
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
