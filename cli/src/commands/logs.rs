//! `herd logs`: print a process's output.

use std::time::{Duration, Instant};

use herd_proto::v1::StreamOutputRequest;
use tonic::Code;

use super::{Connected, status_error};
use crate::client::{self, Target};
use crate::output::{report_dropped, write_chunk};

/// How long `--follow` keeps trying to reach a manager that went away, as
/// during a restart.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Wait between reconnection attempts.
const RECONNECT_DELAY: Duration = Duration::from_millis(250);

/// Print a process's stored output; --follow keeps printing until it ends
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing new output until the process ends, reconnecting from
    /// the last byte printed if the manager restarts
    #[arg(short, long)]
    follow: bool,
    id: String,
}

pub async fn run(client: Connected, target: &Target, args: Args) -> anyhow::Result<u8> {
    let mut offset = 0;
    print_output(Some(client), target, &args.id, args.follow, &mut offset).await?;
    Ok(0)
}

/// Prints a process's output from `offset`, advancing it past every byte
/// printed. With `follow`, it keeps printing until the process ends and
/// reconnects when the manager goes away, for up to a minute.
pub async fn print_output(
    mut client: Option<Connected>,
    target: &Target,
    id: &str,
    follow: bool,
    offset: &mut u64,
) -> anyhow::Result<()> {
    let mut lost_since: Option<Instant> = None;
    loop {
        let connected = match client.take() {
            Some(connected) => Ok(connected),
            None => client::connect(target).await,
        };
        let result = match connected {
            Ok(mut connected) => print_from(&mut connected, id, follow, offset).await,
            Err(error) => Err(Interrupted::Connect(error)),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(Interrupted::Fatal(error)) => return Err(error),
            Err(Interrupted::Connect(error)) | Err(Interrupted::Stream(error)) if follow => {
                let since = *lost_since.get_or_insert_with(Instant::now);
                if since.elapsed() > RECONNECT_FOR {
                    return Err(error.context("the manager did not come back within 60 s"));
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
            }
            Err(Interrupted::Connect(error)) | Err(Interrupted::Stream(error)) => {
                return Err(error);
            }
        }
    }
}

/// The cause of printing stopping early.
enum Interrupted {
    /// The manager could not be reached.
    Connect(anyhow::Error),
    /// The stream broke, as when the manager restarts.
    Stream(anyhow::Error),
    /// An error that a retry cannot fix, such as an unknown id.
    Fatal(anyhow::Error),
}

/// Prints output from `offset` until the stream ends, advancing `offset`
/// past every byte printed.
async fn print_from(
    client: &mut Connected,
    id: &str,
    follow: bool,
    offset: &mut u64,
) -> Result<(), Interrupted> {
    let request = StreamOutputRequest {
        id: id.to_owned(),
        offset: *offset,
        follow,
    };
    let mut chunks = client
        .stream_output(request)
        .await
        .map_err(classify)?
        .into_inner();
    while let Some(chunk) = chunks.message().await.map_err(classify)? {
        report_dropped(*offset, chunk.offset);
        *offset = chunk.offset + chunk.data.len() as u64;
        write_chunk(&chunk).map_err(|error| Interrupted::Fatal(error.into()))?;
    }
    Ok(())
}

fn classify(status: tonic::Status) -> Interrupted {
    match status.code() {
        Code::NotFound | Code::InvalidArgument | Code::PermissionDenied => {
            Interrupted::Fatal(status_error(status))
        }
        _ => Interrupted::Stream(status_error(status)),
    }
}
