//! Turning what the init reported and what the cgroup counted into an
//! [`ExitStatus`] with a reason and a one-line error.

use herd_proto::v1::{ExitStatus, Metrics, Reason};

use crate::cgroup::Stats;
use crate::sandbox::InitReport;

/// The cause of the process's end, when the worker ended it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The command ended on its own.
    Natural,
    /// A TerminateProcess request ended it.
    Terminated,
    /// The worker shut down and ended it with its grace period.
    WorkerShutdown,
    /// Its wall-clock limit ran out.
    TimedOut { limit_ms: u64 },
    /// It hit its memory limit on a v1 host, and the worker killed the
    /// sandbox in place of the kernel's OOM killer.
    OutOfMemory,
}

/// Builds the final status. `report` is what the init wrote; when it wrote
/// nothing (it was killed), `init_signal` is the signal that killed it.
pub fn build(
    report: Option<InitReport>,
    init_signal: Option<i32>,
    ending: Ending,
    stats: &Stats,
    last_stderr_line: Option<&str>,
) -> ExitStatus {
    let report = report.unwrap_or(InitReport::Signaled {
        signal: init_signal.unwrap_or(libc::SIGKILL),
    });
    let (exit_code, signal) = match &report {
        InitReport::Exited { code } | InitReport::SpawnFailed { code, .. } => (Some(*code), None),
        InitReport::Signaled { signal } => (None, Some(*signal)),
    };
    let oom_killed = signal == Some(libc::SIGKILL)
        && (stats.oom_kills.unwrap_or(0) > 0 || ending == Ending::OutOfMemory);
    let (reason, error) = match (&report, ending) {
        (_, Ending::TimedOut { limit_ms }) => (
            Reason::TimedOut,
            format!("timed out after {}", format_millis(limit_ms)),
        ),
        (_, Ending::Terminated) => (
            Reason::TerminatedByUser,
            describe_termination("terminated by request", &report),
        ),
        (_, Ending::WorkerShutdown) => (
            Reason::WorkerShutdown,
            describe_termination("terminated because the worker shut down", &report),
        ),
        (InitReport::SpawnFailed { message, .. }, _) => (Reason::SpawnFailed, message.clone()),
        _ if oom_killed => (
            Reason::OomKilled,
            "killed by the OOM killer: the command reached its memory limit".to_owned(),
        ),
        (InitReport::Signaled { signal }, _) => (
            Reason::Signaled,
            format!("killed by signal {}", signal_name(*signal)),
        ),
        (InitReport::Exited { code }, _) => {
            (Reason::Exited, describe_exit(*code, last_stderr_line))
        }
    };
    ExitStatus {
        reason: reason as i32,
        exit_code,
        signal,
        error,
        metrics: Some(to_metrics(stats)),
    }
}

fn describe_exit(code: i32, last_stderr_line: Option<&str>) -> String {
    match (code, last_stderr_line) {
        (0, _) => String::new(),
        (code, Some(line)) => format!("exited with code {code}: {line}"),
        (code, None) => format!("exited with code {code}"),
    }
}

fn describe_termination(cause: &str, report: &InitReport) -> String {
    match report {
        InitReport::Signaled { signal } => {
            format!("{cause}: killed by signal {}", signal_name(*signal))
        }
        InitReport::Exited { code } => format!("{cause}: exited with code {code}"),
        InitReport::SpawnFailed { message, .. } => format!("{cause}: {message}"),
    }
}

fn format_millis(millis: u64) -> String {
    herd_proto::units::format_duration(std::time::Duration::from_millis(millis))
}

/// Returns `9 (SIGKILL)` style text for a signal number.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(known) => format!("{signal} ({})", known.as_str()),
        Err(_) => signal.to_string(),
    }
}

/// Converts cgroup statistics to the API's metrics.
pub fn to_metrics(stats: &Stats) -> Metrics {
    Metrics {
        cpu_usage_usec: stats.cpu_usage_usec,
        cpu_user_usec: stats.cpu_user_usec,
        cpu_system_usec: stats.cpu_system_usec,
        memory_current_bytes: stats.memory_current_bytes,
        memory_peak_bytes: stats.memory_peak_bytes,
        pids_current: stats.pids_current,
        io_read_bytes: stats.io_read_bytes,
        io_write_bytes: stats.io_write_bytes,
        oom_kills: stats.oom_kills,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_with_oom(oom_kills: u64) -> Stats {
        Stats {
            oom_kills: Some(oom_kills),
            ..Stats::default()
        }
    }

    #[test]
    fn sigkill_with_oom_count_is_oom_killed() {
        let report = Some(InitReport::Signaled { signal: 9 });
        let status = build(report, None, Ending::Natural, &stats_with_oom(1), None);
        assert_eq!(status.reason, Reason::OomKilled as i32);
        assert_eq!(status.signal, Some(9));
        assert_eq!(status.exit_code, None);
    }

    #[test]
    fn sigkill_without_oom_is_signaled() {
        let report = Some(InitReport::Signaled { signal: 9 });
        let status = build(report, None, Ending::Natural, &stats_with_oom(0), None);
        assert_eq!(status.reason, Reason::Signaled as i32);
        assert_eq!(status.error, "killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn nonzero_exit_carries_last_stderr_line() {
        let report = Some(InitReport::Exited { code: 127 });
        let line = Some("bash: line 1: invalid_command: command not found");
        let status = build(report, None, Ending::Natural, &Stats::default(), line);
        assert_eq!(status.reason, Reason::Exited as i32);
        assert_eq!(status.exit_code, Some(127));
        assert!(
            status.error.contains("command not found"),
            "{}",
            status.error
        );
    }

    #[test]
    fn zero_exit_has_no_error() {
        let report = Some(InitReport::Exited { code: 0 });
        let status = build(
            report,
            None,
            Ending::Natural,
            &Stats::default(),
            Some("warn"),
        );
        assert_eq!(status.error, "");
    }

    #[test]
    fn killed_init_reports_its_signal() {
        let status = build(None, Some(9), Ending::Terminated, &Stats::default(), None);
        assert_eq!(status.reason, Reason::TerminatedByUser as i32);
        assert_eq!(status.signal, Some(9));
    }

    #[test]
    fn timeout_wins_over_signal() {
        let report = Some(InitReport::Signaled { signal: 9 });
        let ending = Ending::TimedOut { limit_ms: 2000 };
        let status = build(report, None, ending, &stats_with_oom(0), None);
        assert_eq!(status.reason, Reason::TimedOut as i32);
        assert_eq!(status.error, "timed out after 2s");
    }
}
