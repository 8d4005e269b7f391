//! `herd wait`: wait for a process to end.

use herd_proto::v1::{ProcessState, WaitProcessRequest};

use super::{Connected, exit_code_of, report_failure, status_error};

/// Wait for a process to end and exit with its exit code
#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    let status = client
        .wait_process(WaitProcessRequest { id: args.id })
        .await
        .map_err(status_error)?
        .into_inner();
    if status.state != ProcessState::Completed as i32 {
        report_failure(&status);
    }
    Ok(exit_code_of(&status))
}
