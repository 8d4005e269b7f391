//! `herd ps`: list processes.

use crate::output::outln;
use herd_proto::v1::ListProcessesRequest;

use super::{Connected, status_error};
use crate::output::{Format, print_process_table, process_json};

/// List processes (running ones unless --all)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Include finished processes
    #[arg(short, long)]
    all: bool,
    /// Print only the ids
    #[arg(short, long)]
    quiet: bool,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    let request = ListProcessesRequest { all: args.all };
    let processes = client
        .list_processes(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .processes;
    if args.quiet {
        for status in &processes {
            outln!("{}", status.id);
        }
    } else if args.output == Format::Json {
        let list: Vec<_> = processes.iter().map(process_json).collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print_process_table(&processes);
    }
    Ok(0)
}
