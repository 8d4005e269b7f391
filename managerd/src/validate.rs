//! Checks on client requests, made before anything is stored. Each error
//! names the field, the value and the fix.

use herd_proto::names::is_valid_id;
use herd_proto::v1::{Command, ExecuteDistributedCommandRequest, Limits};

/// Largest total size of a command's arguments and environment, in bytes;
/// the same as Linux's default ARG_MAX of 2 MiB less room for the defaults.
const MAX_COMMAND_BYTES: usize = 1 << 20;
/// Largest memory or bandwidth limit accepted, 1 PiB, far below what the
/// kernel's 64-bit counters take.
const MAX_BYTES: u64 = 1 << 50;
/// Smallest memory limit accepted: below this even a shell cannot start.
const MIN_MEMORY_BYTES: u64 = 4 << 20;
/// Minimum pids limit: the sandbox init and the command.
const MIN_PIDS: u64 = 2;
/// Most processes a pids limit may allow: the kernel's PID_MAX_LIMIT.
const MAX_PIDS: u64 = 4 << 20;
/// Maximum timeout accepted, one year in milliseconds.
const MAX_TIMEOUT_MS: u64 = 365 * 24 * 3600 * 1000;
/// Smallest I/O bandwidth accepted, in bytes per second: one page.
const MIN_IO_BPS: u64 = 4096;
/// Largest CPU quota accepted, in cores.
const MAX_CPUS: f64 = 1024.0;

/// A request field that failed its check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: String) -> InvalidField {
    InvalidField { field, message }
}

/// Checks a request to start a command.
pub fn execute_request(request: &ExecuteDistributedCommandRequest) -> Result<(), InvalidField> {
    if !request.id.is_empty() {
        process_id(&request.id)?;
    }
    let command = request.command.as_ref().ok_or_else(|| {
        invalid(
            "command",
            "missing; give the program and its arguments".into(),
        )
    })?;
    self::command(command)?;
    if let Some(limits) = &request.limits {
        self::limits(limits)?;
    }
    if !request.worker_id.is_empty() && !is_valid_id(&request.worker_id) {
        return Err(invalid(
            "worker_id",
            format!("{:?} is not a valid worker id", request.worker_id),
        ));
    }
    for key in request.labels.keys() {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(invalid(
                "labels",
                format!("label key {key:?} must be non-empty, without '=' or NUL"),
            ));
        }
    }
    Ok(())
}

/// Checks a process id given by a client.
pub fn process_id(id: &str) -> Result<(), InvalidField> {
    if is_valid_id(id) {
        return Ok(());
    }
    let shown: String = id.chars().take(80).collect();
    Err(invalid(
        "id",
        format!(
            "{shown:?} must be 1-{} letters, digits, '.', '_' or '-', not starting with '.' or '-'",
            herd_proto::names::MAX_ID_LENGTH
        ),
    ))
}

fn command(command: &Command) -> Result<(), InvalidField> {
    let Some(program) = command.args.first() else {
        return Err(invalid(
            "command.args",
            "empty; give the program to run".into(),
        ));
    };
    if program.is_empty() {
        return Err(invalid("command.args", "the program name is empty".into()));
    }
    if let Some(index) = command.args.iter().position(|arg| arg.contains('\0')) {
        return Err(invalid(
            "command.args",
            format!("argument {index} contains a NUL byte"),
        ));
    }
    for (name, value) in &command.env {
        env_var(name, value)?;
    }
    let size: usize = command.args.iter().map(|arg| arg.len() + 1).sum::<usize>()
        + command
            .env
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
    if size > MAX_COMMAND_BYTES {
        return Err(invalid(
            "command",
            format!(
                "arguments and environment take {size} bytes; the maximum is {MAX_COMMAND_BYTES}"
            ),
        ));
    }
    if !command.workdir.is_empty() && !command.workdir.starts_with('/') {
        return Err(invalid(
            "command.workdir",
            format!("{:?} must be an absolute path", command.workdir),
        ));
    }
    let user_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    if command.user.len() > 64 || !command.user.chars().all(user_chars) {
        let shown: String = command.user.chars().take(80).collect();
        return Err(invalid(
            "command.user",
            format!("{shown:?} must be a user name, UID or UID:GID of at most 64 characters"),
        ));
    }
    if command.workdir.contains('\0') {
        return Err(invalid("command.workdir", "contains a NUL byte".into()));
    }
    Ok(())
}

fn env_var(name: &str, value: &str) -> Result<(), InvalidField> {
    let mut chars = name.chars();
    let valid_name = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(invalid(
            "command.env",
            format!(
                "{name:?} is not a valid variable name: use letters, digits and '_', not starting with a digit"
            ),
        ));
    }
    if value.contains('\0') {
        return Err(invalid(
            "command.env",
            format!("the value of {name} contains a NUL byte"),
        ));
    }
    Ok(())
}

fn limits(limits: &Limits) -> Result<(), InvalidField> {
    let memory = limits.memory_bytes;
    in_range(
        "limits.memory_bytes",
        memory,
        MIN_MEMORY_BYTES,
        MAX_BYTES,
        "bytes",
    )?;
    let bandwidth = "bytes per second";
    in_range(
        "limits.io_read_bps",
        limits.io_read_bps,
        MIN_IO_BPS,
        MAX_BYTES,
        bandwidth,
    )?;
    in_range(
        "limits.io_write_bps",
        limits.io_write_bps,
        MIN_IO_BPS,
        MAX_BYTES,
        bandwidth,
    )?;
    // The minimum leaves room for the sandbox init besides the command.
    in_range("limits.pids", limits.pids, MIN_PIDS, MAX_PIDS, "processes")?;
    in_range(
        "limits.timeout_ms",
        limits.timeout_ms,
        1,
        MAX_TIMEOUT_MS,
        "milliseconds",
    )?;

    if let Some(cpus) = limits.cpus
        && !(cpus.is_finite() && (0.01..=MAX_CPUS).contains(&cpus))
    {
        return Err(invalid(
            "limits.cpus",
            format!("{cpus} must be between 0.01 and {MAX_CPUS}"),
        ));
    }
    Ok(())
}

/// Checks that an optional limit lies within `min..=max`.
fn in_range(
    field: &'static str,
    value: Option<u64>,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<(), InvalidField> {
    match value {
        Some(value) if !(min..=max).contains(&value) => Err(invalid(
            field,
            format!("{value} must be between {min} and {max} {unit}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str]) -> ExecuteDistributedCommandRequest {
        ExecuteDistributedCommandRequest {
            command: Some(Command {
                args: args.iter().map(|arg| (*arg).to_owned()).collect(),
                ..Command::default()
            }),
            ..ExecuteDistributedCommandRequest::default()
        }
    }

    fn field_of(request: &ExecuteDistributedCommandRequest) -> &'static str {
        execute_request(request).unwrap_err().field
    }

    #[test]
    fn valid_request_passes() {
        assert_eq!(execute_request(&request(&["echo", "hi"])), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(&request(&[])), "command.args");
        assert_eq!(field_of(&request(&[""])), "command.args");
        assert_eq!(field_of(&request(&["echo", "a\0b"])), "command.args");
        let huge = "x".repeat(MAX_COMMAND_BYTES + 1);
        assert_eq!(field_of(&request(&["echo", &huge])), "command");

        let mut bad_env = request(&["env"]);
        let command = bad_env.command.as_mut().unwrap();
        command.env.insert("A=B".into(), "c".into());
        assert_eq!(field_of(&bad_env), "command.env");

        let mut relative = request(&["pwd"]);
        relative.command.as_mut().unwrap().workdir = "tmp".into();
        assert_eq!(field_of(&relative), "command.workdir");

        let mut bad_user = request(&["true"]);
        bad_user.command.as_mut().unwrap().user = "root; rm".into();
        assert_eq!(field_of(&bad_user), "command.user");

        let mut long_id = request(&["true"]);
        long_id.id = "x".repeat(10 * 1024);
        assert_eq!(field_of(&long_id), "id");
    }

    #[test]
    fn limits_are_checked() {
        let cases = [
            (
                Limits {
                    memory_bytes: Some(1024),
                    ..Limits::default()
                },
                "limits.memory_bytes",
            ),
            (
                Limits {
                    cpus: Some(-1.0),
                    ..Limits::default()
                },
                "limits.cpus",
            ),
            (
                Limits {
                    cpus: Some(f64::NAN),
                    ..Limits::default()
                },
                "limits.cpus",
            ),
            (
                Limits {
                    pids: Some(0),
                    ..Limits::default()
                },
                "limits.pids",
            ),
            (
                Limits {
                    timeout_ms: Some(0),
                    ..Limits::default()
                },
                "limits.timeout_ms",
            ),
        ];
        for (limits, field) in cases {
            let mut bad = request(&["true"]);
            bad.limits = Some(limits);
            assert_eq!(field_of(&bad), field);
        }
    }
}
