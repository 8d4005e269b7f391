//! Checks on client requests, made before anything is stored. Each error
//! names the field, the value and the fix.

use std::collections::HashMap;

use herd_proto::names::{MAX_ID_LENGTH, is_valid_id};
use herd_proto::v1::{Command, ExecuteDistributedCommandRequest, Limits};

/// Largest size of one argument or one `NAME=value` environment entry,
/// counting its NUL terminator: Linux's MAX_ARG_STRLEN (32 pages of 4 KiB),
/// past which execve fails with E2BIG.
pub const MAX_ARG_BYTES: usize = 32 * 4096;
/// Largest total size of a command's arguments and environment, in bytes;
/// the same as Linux's default ARG_MAX of 2 MiB less room for the defaults.
pub const MAX_COMMAND_BYTES: usize = 1 << 20;
/// Maximum length of the working directory in bytes: Linux's PATH_MAX of 4096 less the
/// NUL terminator, past which chdir fails with ENAMETOOLONG.
pub const MAX_WORKDIR_BYTES: usize = 4095;
/// Maximum length of the user: a name, UID or UID:GID.
pub const MAX_USER_LENGTH: usize = 64;
/// Largest memory or bandwidth limit accepted, 1 PiB, far below what the
/// kernel's 64-bit counters take.
pub const MAX_BYTES: u64 = 1 << 50;
/// Smallest memory limit accepted: below this even a shell cannot start.
pub const MIN_MEMORY_BYTES: u64 = 4 << 20;
/// Minimum pids limit: the sandbox init and the command.
pub const MIN_PIDS: u64 = 2;
/// Most processes a pids limit may allow: the kernel's PID_MAX_LIMIT.
pub const MAX_PIDS: u64 = 4 << 20;
/// Maximum timeout accepted, one year in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 365 * 24 * 3600 * 1000;
/// Smallest I/O bandwidth accepted, in bytes per second: one page.
pub const MIN_IO_BPS: u64 = 4096;
/// Smallest CPU quota accepted, in cores.
pub const MIN_CPUS: f64 = 0.01;
/// Largest CPU quota accepted, in cores.
pub const MAX_CPUS: f64 = 1024.0;
/// Most labels a request may select workers by.
pub const MAX_LABELS: usize = 64;
/// Maximum length of a label key or value, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// Maximum time a request may wait for a worker: one day.
pub const MAX_QUEUE_TIMEOUT_MS: u64 = 24 * 3600 * 1000;
/// Characters of a client's value that an error message repeats, so that a
/// huge value cannot make a huge message.
const SHOWN_CHARS: usize = 64;

/// A request field that failed its check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {field}: {message}")]
pub struct InvalidField {
    /// The field's path in the request, such as `command.args[1]`.
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: String) -> InvalidField {
    InvalidField {
        field: field.into(),
        message,
    }
}

/// Returns `value` quoted and escaped, cut to its first 64 characters.
fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    match chars.next() {
        Some(_) => format!("{head:?}... ({} bytes)", value.len()),
        None => format!("{head:?}"),
    }
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
            format!("{} {}", shown(&request.worker_id), id_rule()),
        ));
    }
    if request.queue_timeout_ms > MAX_QUEUE_TIMEOUT_MS {
        return Err(invalid(
            "queue_timeout_ms",
            format!(
                "{} is over the maximum of {MAX_QUEUE_TIMEOUT_MS} (one day)",
                request.queue_timeout_ms
            ),
        ));
    }
    labels(&request.labels)
}

/// Checks a process id given by a client.
pub fn process_id(id: &str) -> Result<(), InvalidField> {
    if is_valid_id(id) {
        return Ok(());
    }
    Err(invalid("id", format!("{} {}", shown(id), id_rule())))
}

fn id_rule() -> String {
    format!(
        "must be 1-{MAX_ID_LENGTH} letters, digits, '.', '_' or '-', not starting with '.' or '-'"
    )
}

fn command(command: &Command) -> Result<(), InvalidField> {
    if herd_proto::v1::NetworkMode::try_from(command.network).is_err() {
        return Err(invalid(
            "command.network",
            format!(
                "{} is not a network mode; use none or host",
                command.network
            ),
        ));
    }
    args(&command.args)?;
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
    workdir(&command.workdir)?;
    user(&command.user)
}

fn args(args: &[String]) -> Result<(), InvalidField> {
    let Some(program) = args.first() else {
        return Err(invalid(
            "command.args",
            "empty; give the program to run".into(),
        ));
    };
    if program.is_empty() {
        return Err(invalid(
            "command.args[0]",
            "the program name is empty".into(),
        ));
    }
    for (index, arg) in args.iter().enumerate() {
        let field = || format!("command.args[{index}]");
        if arg.contains('\0') {
            return Err(invalid(field(), "contains a NUL byte".into()));
        }
        if arg.len() + 1 > MAX_ARG_BYTES {
            return Err(invalid(
                field(),
                format!(
                    "takes {} bytes with its NUL terminator; the maximum is {MAX_ARG_BYTES}",
                    arg.len() + 1
                ),
            ));
        }
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
                "{} is not a valid variable name: use letters, digits and '_', not starting with a digit",
                shown(name)
            ),
        ));
    }
    if value.contains('\0') {
        return Err(invalid(
            "command.env",
            format!("the value of {} contains a NUL byte", shown(name)),
        ));
    }
    let entry_bytes = name.len() + 1 + value.len() + 1;
    if entry_bytes > MAX_ARG_BYTES {
        return Err(invalid(
            "command.env",
            format!(
                "{} takes {entry_bytes} bytes as NAME=value with its NUL terminator; the maximum is {MAX_ARG_BYTES}",
                shown(name)
            ),
        ));
    }
    Ok(())
}

fn workdir(workdir: &str) -> Result<(), InvalidField> {
    if workdir.contains('\0') {
        return Err(invalid("command.workdir", "contains a NUL byte".into()));
    }
    if workdir.len() > MAX_WORKDIR_BYTES {
        return Err(invalid(
            "command.workdir",
            format!(
                "is {} bytes long; the maximum is {MAX_WORKDIR_BYTES}",
                workdir.len()
            ),
        ));
    }
    if !workdir.is_empty() && !workdir.starts_with('/') {
        return Err(invalid(
            "command.workdir",
            format!("{} must be an absolute path", shown(workdir)),
        ));
    }
    Ok(())
}

fn user(user: &str) -> Result<(), InvalidField> {
    let user_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    // The character set leaves out NUL, so this rejects it too.
    if user.len() > MAX_USER_LENGTH || !user.chars().all(user_chars) {
        return Err(invalid(
            "command.user",
            format!(
                "{} must be a user name, UID or UID:GID of at most {MAX_USER_LENGTH} letters, digits, '.', '_', '-' or ':'",
                shown(user)
            ),
        ));
    }
    Ok(())
}

fn labels(labels: &HashMap<String, String>) -> Result<(), InvalidField> {
    if labels.len() > MAX_LABELS {
        return Err(invalid(
            "labels",
            format!("{} labels; the maximum is {MAX_LABELS}", labels.len()),
        ));
    }
    for (key, value) in labels {
        if key.len() > MAX_LABEL_BYTES || value.len() > MAX_LABEL_BYTES {
            return Err(invalid(
                "labels",
                format!(
                    "label {} is over {MAX_LABEL_BYTES} bytes in its key or value",
                    shown(key)
                ),
            ));
        }
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(invalid(
                "labels",
                format!(
                    "label key {} must be non-empty, without '=' or NUL",
                    shown(key)
                ),
            ));
        }
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
        && !(cpus.is_finite() && (MIN_CPUS..=MAX_CPUS).contains(&cpus))
    {
        return Err(invalid(
            "limits.cpus",
            format!("{cpus} must be between {MIN_CPUS} and {MAX_CPUS}"),
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

    fn field_of(request: &ExecuteDistributedCommandRequest) -> String {
        execute_request(request).unwrap_err().field
    }

    /// Returns a valid request after `change`.
    fn changed(
        change: impl FnOnce(&mut ExecuteDistributedCommandRequest),
    ) -> ExecuteDistributedCommandRequest {
        let mut request = request(&["echo", "hi"]);
        change(&mut request);
        request
    }

    fn command_of(request: &mut ExecuteDistributedCommandRequest) -> &mut Command {
        request.command.as_mut().unwrap()
    }

    #[test]
    fn valid_request_passes() {
        assert_eq!(execute_request(&request(&["echo", "hi"])), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mebibyte = "x".repeat(1 << 20);
        let at_kernel_limit = "x".repeat(MAX_ARG_BYTES);
        let kibibytes_200 = "x".repeat(200 << 10);
        let chunk = "x".repeat(100 << 10);
        let over_total = vec![chunk.as_str(); 11];
        let cases = [
            ("empty argv", request(&[]), "command.args"),
            ("empty program", request(&[""]), "command.args[0]"),
            (
                "1 MiB argument",
                request(&["echo", &mebibyte]),
                "command.args[1]",
            ),
            (
                "argument with no room for its NUL",
                request(&["echo", "a", &at_kernel_limit]),
                "command.args[2]",
            ),
            ("arguments over the total", request(&over_total), "command"),
            (
                "NUL in the program",
                request(&["ec\0ho"]),
                "command.args[0]",
            ),
            (
                "NUL in an argument",
                request(&["echo", "a\0b"]),
                "command.args[1]",
            ),
            (
                "env name with '='",
                changed(|r| {
                    command_of(r).env.insert("A=B".into(), "c".into());
                }),
                "command.env",
            ),
            (
                "NUL in an env name",
                changed(|r| {
                    command_of(r).env.insert("A\0".into(), "c".into());
                }),
                "command.env",
            ),
            (
                "NUL in an env value",
                changed(|r| {
                    command_of(r).env.insert("A".into(), "c\0".into());
                }),
                "command.env",
            ),
            (
                "200 KiB env value",
                changed(|r| {
                    command_of(r).env.insert("A".into(), kibibytes_200.clone());
                }),
                "command.env",
            ),
            (
                "relative workdir",
                changed(|r| command_of(r).workdir = "tmp".into()),
                "command.workdir",
            ),
            (
                "NUL in the workdir",
                changed(|r| command_of(r).workdir = "/tmp\0".into()),
                "command.workdir",
            ),
            (
                "workdir over PATH_MAX",
                changed(|r| command_of(r).workdir = format!("/{}", "x".repeat(5000))),
                "command.workdir",
            ),
            (
                "shell in the user",
                changed(|r| command_of(r).user = "root; rm".into()),
                "command.user",
            ),
            (
                "NUL in the user",
                changed(|r| command_of(r).user = "root\0".into()),
                "command.user",
            ),
            ("10 KiB id", changed(|r| r.id = "x".repeat(10 << 10)), "id"),
            ("NUL in the id", changed(|r| r.id = "a\0".into()), "id"),
            (
                "worker id with '/'",
                changed(|r| r.worker_id = "a/b".into()),
                "worker_id",
            ),
            (
                "label key with '='",
                changed(|r| {
                    r.labels.insert("a=b".into(), "c".into());
                }),
                "labels",
            ),
            ("missing command", changed(|r| r.command = None), "command"),
            (
                "too many labels",
                changed(|r| {
                    r.labels = (0..=MAX_LABELS)
                        .map(|i| (format!("k{i}"), String::new()))
                        .collect();
                }),
                "labels",
            ),
            (
                "long label value",
                changed(|r| {
                    r.labels
                        .insert("zone".into(), "x".repeat(MAX_LABEL_BYTES + 1));
                }),
                "labels",
            ),
            (
                "queue timeout over a day",
                changed(|r| r.queue_timeout_ms = u64::MAX),
                "queue_timeout_ms",
            ),
            (
                "unknown network mode",
                changed(|r| {
                    if let Some(command) = r.command.as_mut() {
                        command.network = 99;
                    }
                }),
                "command.network",
            ),
        ];
        for (case, request, field) in cases {
            let error = execute_request(&request).unwrap_err();
            assert_eq!(error.field, field, "{case}");
            let message = error.to_string();
            assert!(message.contains(field), "{case}: {message}");
            assert!(message.len() <= 1024, "{case}: {} bytes", message.len());
        }
    }

    #[test]
    fn argument_at_the_kernel_limit_passes() {
        let largest = "x".repeat(MAX_ARG_BYTES - 1);
        assert_eq!(execute_request(&request(&["echo", &largest])), Ok(()));

        let entry = changed(|r| {
            let value = "x".repeat(MAX_ARG_BYTES - "A=".len() - 1);
            command_of(r).env.insert("A".into(), value);
        });
        assert_eq!(execute_request(&entry), Ok(()));
    }

    #[test]
    fn process_id_error_is_short() {
        let error = process_id(&"x".repeat(10 << 10)).unwrap_err();
        assert_eq!(error.field, "id");
        assert!(error.message.contains("(10240 bytes)"), "{error}");
        assert!(error.to_string().len() <= 1024, "{error}");
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
                    cpus: Some(f64::INFINITY),
                    ..Limits::default()
                },
                "limits.cpus",
            ),
            (
                Limits {
                    cpus: Some(-0.0),
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
