//! `herd kill`: terminate a process.

use crate::output::outln;
use anyhow::Context;
use herd_proto::names::parse_signal;
use herd_proto::units::parse_duration;
use herd_proto::v1::TerminateProcessRequest;

use super::{Connected, status_error};

/// Terminate a process: SIGTERM, then after the grace period kill its tree
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send only this signal, such as HUP or 9, and do not escalate
    #[arg(short, long)]
    signal: Option<String>,
    /// Time between SIGTERM and killing the tree, such as 5s [default: 10s]
    #[arg(long, conflicts_with = "signal")]
    grace: Option<String>,
    id: String,
}

pub async fn run(mut client: Connected, args: Args) -> anyhow::Result<u8> {
    let signal = args
        .signal
        .as_deref()
        .map(parse_signal)
        .transpose()
        .context("invalid --signal")?;
    let grace_ms = args
        .grace
        .as_deref()
        .map(parse_duration)
        .transpose()
        .context("invalid --grace")?
        .map(|grace| u64::try_from(grace.as_millis().max(1)))
        .transpose()
        .context("invalid --grace: too long")?
        .unwrap_or(0);
    let request = TerminateProcessRequest {
        id: args.id.clone(),
        grace_ms,
        signal,
    };
    client
        .terminate_process(request)
        .await
        .map_err(status_error)?;
    outln!("{}", args.id);
    Ok(0)
}
