//! Printing records as tables and JSON.

use std::io::Write;

use herd_proto::v1::{
    Limits, Metrics, OutputChunk, OutputStream, ProcessState, ProcessStatus, Reason, WorkerInfo,
    WorkerState,
};
use prost_types::Timestamp;
use serde_json::{Value, json};

/// Prints a line to stdout like `println!`, but a reader that went away
/// (EPIPE, as when piped into `head`) ends herd quietly with 141, the
/// status SIGPIPE would give. SIGPIPE itself stays ignored, so a manager
/// that closes the connection is an error, not a silent death.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes `line` and a newline to stdout; see [`outln`].
pub fn print_line(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"));
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("herd: failed to write to stdout: {error}");
        std::process::exit(125);
    }
}

/// Writes a chunk of a process's output to our stdout or stderr, as the
/// process wrote it, and flushes so interleaving stays close to the
/// original.
pub fn write_chunk(chunk: &OutputChunk) -> std::io::Result<()> {
    if chunk.stream == OutputStream::Stderr as i32 {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(&chunk.data)?;
        stderr.flush()
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&chunk.data)?;
        stdout.flush()
    }
}

/// Tells the user on stderr when output between `expected` and `offset`
/// was dropped by the manager's output limit.
pub fn report_dropped(expected: u64, offset: u64) {
    if offset > expected {
        eprintln!(
            "herd: {} bytes of output before offset {offset} were dropped by the manager's \
             output limit",
            offset - expected
        );
    }
}

/// Output format of `ps`, `status` and `workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Formats a timestamp as RFC 3339 in UTC, such as 2026-12-04T16:18:10.123Z.
pub fn rfc3339(timestamp: &Option<Timestamp>) -> Value {
    let Some(timestamp) = timestamp else {
        return Value::Null;
    };
    let seconds = timestamp.seconds;
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let millis = timestamp.nanos / 1_000_000;
    Value::String(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    ))
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard
/// Hinnant's `civil_from_days` algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn state_name(state: i32) -> &'static str {
    ProcessState::try_from(state)
        .unwrap_or_default()
        .short_name()
}

fn reason_name(reason: i32) -> &'static str {
    Reason::try_from(reason).unwrap_or_default().short_name()
}

fn limits_json(limits: Option<Limits>) -> Value {
    let limits = limits.unwrap_or_default();
    json!({
        "memory_bytes": limits.memory_bytes,
        "cpus": limits.cpus,
        "pids": limits.pids,
        "timeout_ms": limits.timeout_ms,
        "io_read_bps": limits.io_read_bps,
        "io_write_bps": limits.io_write_bps,
    })
}

fn metrics_json(metrics: Option<Metrics>) -> Value {
    let metrics = metrics.unwrap_or_default();
    json!({
        "cpu_usage_usec": metrics.cpu_usage_usec,
        "cpu_user_usec": metrics.cpu_user_usec,
        "cpu_system_usec": metrics.cpu_system_usec,
        "memory_current_bytes": metrics.memory_current_bytes,
        "memory_peak_bytes": metrics.memory_peak_bytes,
        "pids_current": metrics.pids_current,
        "io_read_bytes": metrics.io_read_bytes,
        "io_write_bytes": metrics.io_write_bytes,
        "oom_kills": metrics.oom_kills,
    })
}

/// Returns a process record as the JSON object `status -o json` prints.
pub fn process_json(status: &ProcessStatus) -> Value {
    let command = status.command.clone().unwrap_or_default();
    json!({
        "id": status.id,
        "state": state_name(status.state),
        "reason": reason_name(status.reason),
        "exit_code": status.exit_code,
        "signal": status.signal,
        "error": status.error,
        "worker_id": status.worker_id,
        "owner": status.owner,
        "command": command.args,
        "created_at": rfc3339(&status.created_at),
        "started_at": rfc3339(&status.started_at),
        "finished_at": rfc3339(&status.finished_at),
        "host_pid": status.host_pid,
        "output_bytes": status.output_bytes,
        "limits": limits_json(status.limits),
        "metrics": metrics_json(status.metrics),
    })
}

/// Returns a worker as the JSON object `workers -o json` prints.
pub fn worker_json(worker: &WorkerInfo) -> Value {
    let metrics = worker.metrics.unwrap_or_default();
    json!({
        "id": worker.id,
        "name": worker.name,
        "address": worker.address,
        "labels": worker.labels,
        "state": WorkerState::try_from(worker.state).unwrap_or_default().short_name(),
        "running": worker.running,
        "last_heartbeat": rfc3339(&worker.last_heartbeat),
        "metrics": {
            "load_1m": metrics.load_1m,
            "memory_total_bytes": metrics.memory_total_bytes,
            "memory_available_bytes": metrics.memory_available_bytes,
            "running": metrics.running,
        },
    })
}

/// Returns the text for a process's exit: `0`, `signal 9`, or empty.
fn exit_text(status: &ProcessStatus) -> String {
    match (status.exit_code, status.signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => String::new(),
    }
}

/// Prints processes as a table with a header.
pub fn print_process_table(processes: &[ProcessStatus]) {
    outln!(
        "{:<14} {:<10} {:<19} {:<9} {:<10} COMMAND",
        "ID",
        "STATE",
        "REASON",
        "EXIT",
        "WORKER"
    );
    for status in processes {
        let command = status.command.clone().unwrap_or_default().args.join(" ");
        let command: String = command.chars().take(60).collect();
        outln!(
            "{:<14} {:<10} {:<19} {:<9} {:<10} {}",
            status.id,
            state_name(status.state),
            reason_name(status.reason),
            exit_text(status),
            status.worker_id,
            command
        );
    }
}

/// Prints one process as `field: value` lines.
pub fn print_process_detail(status: &ProcessStatus) {
    let value = process_json(status);
    let Value::Object(fields) = value else { return };
    for (name, value) in fields {
        match value {
            Value::Object(inner) => {
                outln!("{name}:");
                for (inner_name, inner_value) in inner {
                    if !inner_value.is_null() {
                        outln!("  {inner_name}: {}", plain(&inner_value));
                    }
                }
            }
            Value::Null => {}
            Value::String(text) if text.is_empty() => {}
            other => outln!("{name}: {}", plain(&other)),
        }
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Prints workers as a table with a header.
pub fn print_worker_table(workers: &[WorkerInfo]) {
    outln!(
        "{:<16} {:<8} {:<8} {:<8} {:<12} {:<32} LABELS",
        "ID",
        "STATE",
        "RUNNING",
        "LOAD",
        "MEM FREE",
        "ADDRESS"
    );
    for worker in workers {
        let mut labels: Vec<String> = worker
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        labels.sort();
        let metrics = worker.metrics.unwrap_or_default();
        let free = format!("{} MiB", metrics.memory_available_bytes >> 20);
        outln!(
            "{:<16} {:<8} {:<8} {:<8.2} {:<12} {:<32} {}",
            worker.id,
            WorkerState::try_from(worker.state)
                .unwrap_or_default()
                .short_name(),
            worker.running,
            metrics.load_1m,
            free,
            worker.address,
            labels.join(",")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        let at = |seconds| {
            Some(Timestamp {
                seconds,
                nanos: 5_000_000,
            })
        };
        assert_eq!(rfc3339(&at(0)), json!("1970-01-01T00:00:00.005Z"));
        assert_eq!(rfc3339(&at(951_782_400)), json!("2000-02-29T00:00:00.005Z"));
        assert_eq!(
            rfc3339(&at(1_796_400_000)),
            json!("2026-12-04T16:00:00.005Z")
        );
        assert_eq!(rfc3339(&None), Value::Null);
    }
}
