//! herd-workerd: the worker daemon, and the sandbox init when re-executed
//! with the hidden `sandbox-init` subcommand.

use std::ffi::OsStr;
use std::process::ExitCode;

use clap::Parser;
use herd_workerd::{config, daemon, sandbox};

fn main() -> ExitCode {
    // The sandbox init must start no threads, so it is dispatched before
    // anything else runs.
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new(sandbox::INIT_SUBCOMMAND)) {
        sandbox::init::main();
    }
    let flags = config::Flags::parse();
    herd_proto::daemon::init_logging();
    let config = match config::Config::load(flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("herd-workerd: {error:#}");
            return ExitCode::from(herd_proto::daemon::EXIT_CONFIG);
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking threads serve bursts of cgroup work; let them go soon
        // after, so an idle worker holds few threads.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(daemon::run(config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herd-workerd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
