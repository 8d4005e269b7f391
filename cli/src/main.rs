//! herd: the command-line client.

use std::process::ExitCode;

use clap::Parser;
use herd_cli::{Cli, HERD_FAILED};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Usage errors exit 125 like every other failure of herd itself,
            // so scripts can tell them from the command's own exit codes.
            let code = if error.use_stderr() { HERD_FAILED } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herd: failed to start the async runtime: {error}");
            return ExitCode::from(HERD_FAILED);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let broken_pipe = error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                // 128 + SIGPIPE, as a shell reports a writer whose reader left.
                return ExitCode::from(141);
            }
            eprintln!("herd: {error:#}");
            ExitCode::from(HERD_FAILED)
        }
    }
}
