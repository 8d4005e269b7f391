//! `herd logs`: print a process's output.

use std::io::Write;

use herd_proto::v1::StreamOutputRequest;

use super::Connected;

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
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    while let Some(chunk) = chunks
        .message()
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
    {
        let sink: &mut dyn Write = if chunk.stream == 2 {
            &mut stderr
        } else {
            &mut stdout
        };
        sink.write_all(&chunk.data)?;
        sink.flush()?;
    }
    Ok(0)
}
