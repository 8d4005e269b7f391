//! `herd wait`: wait for a process to end.

use herd_proto::v1::{ProcessState, WaitProcessRequest};

use super::{Connected, exit_code_of, report_failure, status_error};

/// Wait for a process to end and exit with its exit code
#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    wait_for(&mut client, &args.id).await
}

/// Waits for process `id` to end, prints its error if it did not complete,
/// and returns the exit code `herd run` and `herd wait` end with.
pub async fn wait_for(client: &mut Connected, id: &str) -> anyhow::Result<u8> {
    let request = WaitProcessRequest { id: id.to_owned() };
    let status = client
        .wait_process(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if status.state != ProcessState::Completed as i32 {
        report_failure(&status);
    }
    Ok(exit_code_of(&status))
}
