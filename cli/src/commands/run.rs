//! `herd run`: start a command and stream its output.

use crate::output::outln;
use std::collections::HashMap;

use anyhow::Context;
use herd_proto::units::{parse_duration, parse_size};
use herd_proto::v1::{
    Command, ExecuteDistributedCommandRequest, Limits, NetworkMode, ProcessState,
    TerminateProcessRequest, process_event,
};

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Connected, exit_code_of, report_failure, status_error};
use crate::client::Target;
use crate::output::{report_dropped, write_chunk};

/// Start a command on a worker and stream its output
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run on this worker only
    #[arg(long)]
    worker: Option<String>,
    /// Run only on a worker with this label; repeatable
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Set an environment variable; repeatable
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Absolute working directory inside the sandbox [default: /]
    #[arg(short, long)]
    workdir: Option<String>,
    /// Memory limit, such as 64m or 1Gi (k, m, g are powers of 1024)
    #[arg(short, long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// CPU quota in cores, such as 0.5 or 2
    #[arg(long, allow_negative_numbers = true)]
    cpus: Option<f64>,
    /// Maximum number of processes and threads
    #[arg(long, alias = "pids", allow_negative_numbers = true)]
    pids_limit: Option<u64>,
    /// Read bandwidth per disk, in bytes per second, such as 10m
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    io_read_bps: Option<String>,
    /// Write bandwidth per disk, in bytes per second, such as 10m
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    io_write_bps: Option<String>,
    /// Wall-clock limit, such as 30s or 5m
    #[arg(long, allow_hyphen_values = true)]
    timeout: Option<String>,
    /// none: a private network with loopback only; host: the host's network
    #[arg(long, value_parser = ["none", "host"], default_value = "none")]
    network: String,
    /// User name or uid to run as [default: the worker's default user]
    #[arg(short, long)]
    user: Option<String>,
    /// Process id to use; repeating a request with the same id attaches to
    /// the existing process
    #[arg(long)]
    id: Option<String>,
    /// Print the process id and return at once
    #[arg(short, long)]
    detach: bool,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Parses repeated KEY=VALUE flags.
fn key_values(flag: &str, items: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for item in items {
        let (key, value) = herd_proto::names::parse_key_value(flag, item)?;
        map.insert(key.to_owned(), value.to_owned());
    }
    Ok(map)
}

fn parse_optional_size(flag: &str, text: Option<&str>) -> anyhow::Result<Option<u64>> {
    text.map(parse_size)
        .transpose()
        .with_context(|| format!("invalid {flag}"))
}

/// A checked `herd run` request, built before herd connects so bad flags
/// fail without a manager.
#[derive(Debug)]
pub struct Prepared {
    request: ExecuteDistributedCommandRequest,
    detach: bool,
}

/// Checks the flags and builds the request.
pub fn prepare(args: &Args) -> anyhow::Result<Prepared> {
    let memory_bytes = parse_optional_size("--memory", args.memory.as_deref())?;
    let io_read_bps = parse_optional_size("--io-read-bps", args.io_read_bps.as_deref())?;
    let io_write_bps = parse_optional_size("--io-write-bps", args.io_write_bps.as_deref())?;
    if let Some(cpus) = args.cpus
        && !(cpus.is_finite() && cpus > 0.0)
    {
        anyhow::bail!("invalid --cpus {cpus}: use a positive number of cores, such as 0.5");
    }
    let timeout_ms = args
        .timeout
        .as_deref()
        .map(parse_duration)
        .transpose()
        .context("invalid --timeout")?
        .map(|timeout| u64::try_from(timeout.as_millis()))
        .transpose()
        .context("invalid --timeout: too long")?;
    let network = match args.network.as_str() {
        "host" => NetworkMode::Host,
        _ => NetworkMode::None,
    };
    let request = ExecuteDistributedCommandRequest {
        id: args.id.clone().unwrap_or_default(),
        command: Some(Command {
            args: args.command.clone(),
            env: key_values("--env", &args.env)?,
            workdir: args.workdir.clone().unwrap_or_default(),
            user: args.user.clone().unwrap_or_default(),
            network: network as i32,
        }),
        limits: Some(Limits {
            memory_bytes,
            cpus: args.cpus,
            pids: args.pids_limit,
            timeout_ms,
            io_read_bps,
            io_write_bps,
        }),
        worker_id: args.worker.clone().unwrap_or_default(),
        labels: key_values("--label", &args.labels)?,
        queue_timeout_ms: 0,
    };
    Ok(Prepared {
        request,
        detach: args.detach,
    })
}

pub async fn run(mut client: Connected, target: &Target, prepared: Prepared) -> anyhow::Result<u8> {
    let Prepared { request, detach } = prepared;
    let mut events = client
        .execute_distributed_command(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let mut process_id = String::new();
    let mut stop = StopSignals::new()?;
    let mut stops = 0;
    let mut expected = 0;
    loop {
        let message = tokio::select! {
            message = events.message() => message,
            signal = stop.recv(), if !process_id.is_empty() => {
                stops += 1;
                stop_remote(&mut client, &process_id, signal, stops).await;
                continue;
            }
        };
        let event = match message {
            Ok(event) => event.and_then(|event| event.event),
            // The manager went away after it stored the request, as in a
            // restart: go on from the last byte printed.
            Err(status) if !process_id.is_empty() && is_transient(&status) => {
                eprintln!(
                    "herd: lost the manager ({}); reconnecting",
                    status.message()
                );
                return resume(target, &process_id, expected).await;
            }
            Err(status) => return Err(status_error(status)),
        };
        match event {
            Some(process_event::Event::Accepted(status)) => {
                process_id = status.id;
                if detach {
                    outln!("{process_id}");
                    return Ok(0);
                }
            }
            Some(process_event::Event::Started(_)) => {}
            Some(process_event::Event::Output(chunk)) => {
                report_dropped(expected, chunk.offset);
                expected = chunk.offset + chunk.data.len() as u64;
                if let Err(error) = write_chunk(&chunk) {
                    // The reader of our output is gone, as with `| head`:
                    // end the command too, then fail like a shell would.
                    stop_remote(&mut client, &process_id, "SIGPIPE", 1).await;
                    return Err(error.into());
                }
            }
            Some(process_event::Event::Finished(status)) => {
                if status.state != ProcessState::Completed as i32 {
                    report_failure(&status);
                }
                return Ok(exit_code_of(&status));
            }
            None => {
                anyhow::bail!("the manager closed the stream before process {process_id} ended")
            }
        }
    }
}

/// Reports whether a stream error may pass when the manager is back.
fn is_transient(status: &tonic::Status) -> bool {
    !matches!(
        status.code(),
        tonic::Code::NotFound | tonic::Code::InvalidArgument | tonic::Code::PermissionDenied
    )
}

/// Prints the rest of the output from `offset` through a new connection,
/// then waits for the process to end and returns its exit code.
async fn resume(target: &Target, process_id: &str, mut offset: u64) -> anyhow::Result<u8> {
    super::logs::print_output(None, target, process_id, true, &mut offset).await?;
    let mut client = crate::client::connect(target).await?;
    super::wait::wait_for(&mut client, process_id).await
}

/// SIGINT, SIGTERM and SIGHUP, which all end the remote command too.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next of the three and returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// Terminates the remote command: with its grace period the first time,
/// and with SIGKILL when the user asks again.
async fn stop_remote(client: &mut Connected, process_id: &str, cause: &str, count: u32) {
    let kill = count > 1;
    if kill {
        eprintln!("herd: {cause} again; killing process {process_id}");
    } else {
        eprintln!("herd: {cause}; terminating process {process_id} (repeat to kill it)");
    }
    let request = TerminateProcessRequest {
        id: process_id.to_owned(),
        grace_ms: 0,
        signal: kill.then_some(libc::SIGKILL),
    };
    if let Err(status) = client.terminate_process(request).await {
        eprintln!(
            "herd: failed to terminate process {process_id}: {}",
            status.message()
        );
    }
}
