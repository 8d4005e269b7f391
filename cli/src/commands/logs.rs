//! `herd logs`: print a process's output.

use herd_proto::v1::StreamOutputRequest;

use super::{Connected, status_error};
use crate::output::{report_dropped, write_chunk};

/// Print a process's stored output; --follow keeps printing until it ends
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing new output until the process ends
    #[arg(short, long)]
    follow: bool,
    id: String,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    let request = StreamOutputRequest {
        id: args.id,
        offset: 0,
        follow: args.follow,
    };
    let mut chunks = client
        .stream_output(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let mut expected = 0;
    while let Some(chunk) = chunks.message().await.map_err(status_error)? {
        report_dropped(expected, chunk.offset);
        expected = chunk.offset + chunk.data.len() as u64;
        write_chunk(&chunk)?;
    }
    Ok(0)
}
