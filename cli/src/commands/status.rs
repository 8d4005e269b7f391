//! `herd status`: show one process.

use crate::output::outln;
use herd_proto::v1::GetProcessStatusRequest;

use super::{Connected, status_error};
use crate::output::{Format, print_process_detail, process_json};

/// Show a process's state, exit, limits and metrics
#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    let status = client
        .get_process_status(GetProcessStatusRequest { id: args.id })
        .await
        .map_err(status_error)?
        .into_inner();
    match args.output {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&process_json(&status))?),
        Format::Table => print_process_detail(&status),
    }
    Ok(0)
}
