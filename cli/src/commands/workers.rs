//! `herd workers`: list workers.

use crate::output::outln;
use herd_proto::v1::ListWorkersRequest;

use super::{Connected, status_error};
use crate::output::{Format, print_worker_table, worker_json};

/// List the registered workers
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    let workers = client
        .list_workers(ListWorkersRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .workers;
    match args.output {
        Format::Json => {
            let list: Vec<_> = workers.iter().map(worker_json).collect();
            outln!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Table => print_worker_table(&workers),
    }
    Ok(0)
}
