//! Targets for the manager's request validation, `herd_managerd::validate`.
//!
//! Generated requests are compared with [`violations`], which restates the
//! documented bounds independently of the validator: a request passes when
//! it breaks none, and a rejection must name one of the fields it breaks.

use std::collections::HashMap;

use herd_fuzz::strings::{near, run_of_one_char, text};
use herd_managerd::validate::{
    self, MAX_ARG_BYTES, MAX_BYTES, MAX_COMMAND_BYTES, MAX_CPUS, MAX_LABEL_BYTES, MAX_LABELS,
    MAX_PIDS, MAX_QUEUE_TIMEOUT_MS, MAX_TIMEOUT_MS, MAX_USER_LENGTH, MAX_WORKDIR_BYTES, MIN_CPUS,
    MIN_IO_BPS, MIN_MEMORY_BYTES, MIN_PIDS,
};
use herd_proto::names::is_valid_id;
use herd_proto::v1::{Command, ExecuteDistributedCommandRequest, Limits};
use proptest::collection::{hash_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

/// Maximum length of an error message in bytes. A huge value must not make
/// a huge message, because the message travels in a gRPC trailer.
const MAX_MESSAGE_BYTES: usize = 1024;

/// Generates `len` copies of one ASCII letter.
fn letters(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    (b'a'..=b'z', len).prop_map(|(letter, len)| char::from(letter).to_string().repeat(len))
}

/// Generates mostly `valid` values and sometimes `invalid` ones, so that
/// each field breaks a bound in about one request of six and a fair share
/// of requests pass and reach the later checks.
fn mostly<T: std::fmt::Debug + 'static>(
    valid: impl Strategy<Value = T> + 'static,
    invalid: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![5 => valid.boxed(), 1 => invalid.boxed()].boxed()
}

fn arg() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => text(),
        2 => near("[a-z0-9 ./=-]{0,12}"),
        1 => letters(MAX_ARG_BYTES - 3..MAX_ARG_BYTES + 3),
        1 => run_of_one_char(MAX_ARG_BYTES / 2),
    ]
}

fn args() -> impl Strategy<Value = Vec<String>> {
    let valid = ("[a-z/]{1,8}", vec("[ -~]{0,12}", 0..5)).prop_map(|(program, mut args)| {
        args.insert(0, program);
        args
    });
    let invalid = prop_oneof![
        8 => vec(arg(), 0..6),
        // Many arguments of 500-700 bytes, around the total of 1 MiB.
        1 => (letters(500..700), 1400..2100usize).prop_map(|(arg, count)| vec![arg; count]),
    ];
    mostly(valid, invalid)
}

fn env() -> impl Strategy<Value = HashMap<String, String>> {
    let valid = hash_map("[A-Z_][A-Z0-9_]{0,8}", "[ -~]{0,16}", 0..4);
    let name = prop_oneof![near("[A-Z_][A-Z0-9_]{0,8}"), text()];
    let value = prop_oneof![
        4 => text(),
        1 => letters(MAX_ARG_BYTES - 12..MAX_ARG_BYTES + 3),
    ];
    let invalid = prop_oneof![
        8 => hash_map(name, value, 1..4),
        // Many variables of 400-600 bytes, around the total of 1 MiB.
        1 => (letters(400..600), 1500..2200usize).prop_map(|(value, count)| {
            (0..count).map(|i| (format!("V{i}"), value.clone())).collect()
        }),
    ];
    mostly(valid, invalid)
}

fn workdir() -> impl Strategy<Value = String> {
    let valid = prop_oneof![Just(String::new()), "/[a-z/]{0,20}"];
    let invalid = prop_oneof![
        near("/[a-z]{1,8}"),
        text(),
        letters(MAX_WORKDIR_BYTES - 2..MAX_WORKDIR_BYTES + 2).prop_map(|tail| format!("/{tail}")),
    ];
    mostly(valid, invalid)
}

fn user() -> impl Strategy<Value = String> {
    let valid = prop_oneof![Just(String::new()), "[a-z0-9:._-]{1,12}"];
    let invalid = prop_oneof!["[a-z0-9:._-]{60,70}", near("[a-z]{1,8}"), text()];
    mostly(valid, invalid)
}

/// Generates an id: empty, valid, near valid, any text or over 10 KiB.
fn id() -> impl Strategy<Value = String> {
    let valid = prop_oneof![Just(String::new()), "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,63}"];
    let invalid = prop_oneof![
        4 => near("[a-zA-Z0-9._-]{1,70}"),
        4 => text(),
        1 => letters(10_000..11_000),
    ];
    mostly(valid, invalid)
}

/// Generates a limit: absent, in range, any number, or a number at the
/// edge of a bound.
fn limit(min: u64, max: u64) -> impl Strategy<Value = Option<u64>> {
    let edges = [0, 1, min, max, u64::MAX];
    let edge = (select(edges.to_vec()), -1..=1i64)
        .prop_map(|(edge, step)| edge.saturating_add_signed(step));
    let valid = prop_oneof![Just(None), (min..=max).prop_map(Some)];
    mostly(valid, option::of(prop_oneof![any::<u64>(), edge]))
}

fn cpus() -> impl Strategy<Value = Option<f64>> {
    let special = select(vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        -1.0,
        f64::MIN_POSITIVE,
        MIN_CPUS,
        MIN_CPUS - 1e-12,
        MAX_CPUS,
        MAX_CPUS + 1e-9,
        f64::MAX,
    ]);
    let valid = prop_oneof![Just(None), (MIN_CPUS..=MAX_CPUS).prop_map(Some)];
    mostly(valid, option::of(prop_oneof![any::<f64>(), special]))
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        limit(MIN_MEMORY_BYTES, MAX_BYTES),
        cpus(),
        limit(MIN_PIDS, MAX_PIDS),
        limit(1, MAX_TIMEOUT_MS),
        limit(MIN_IO_BPS, MAX_BYTES),
        limit(MIN_IO_BPS, MAX_BYTES),
    )
        .prop_map(
            |(memory_bytes, cpus, pids, timeout_ms, io_read_bps, io_write_bps)| Limits {
                memory_bytes,
                cpus,
                pids,
                timeout_ms,
                io_read_bps,
                io_write_bps,
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    let network = mostly(0..=1i32, any::<i32>());
    (args(), env(), workdir(), user(), network).prop_map(|(args, env, workdir, user, network)| {
        Command {
            args,
            env,
            workdir,
            user,
            network,
        }
    })
}

fn labels() -> impl Strategy<Value = HashMap<String, String>> {
    let valid = hash_map("[a-z]{1,5}", "[a-z0-9]{0,5}", 0..3);
    let long = "x".repeat(MAX_LABEL_BYTES + 1);
    let invalid = prop_oneof![
        hash_map(prop_oneof!["[a-z=]{0,3}", text()], text(), 1..3),
        hash_map("[a-z]{1,5}", Just(long), 1..2),
        hash_map(
            "[a-z]{1,8}",
            Just(String::new()),
            MAX_LABELS + 1..MAX_LABELS + 3
        ),
    ];
    mostly(valid, invalid)
}

fn request() -> impl Strategy<Value = ExecuteDistributedCommandRequest> {
    (
        id(),
        mostly(command().prop_map(Some), Just(None)),
        option::of(limits()),
        id(),
        labels(),
        mostly(0..=MAX_QUEUE_TIMEOUT_MS, any::<u64>()),
    )
        .prop_map(
            |(id, command, limits, worker_id, labels, queue_timeout_ms)| {
                ExecuteDistributedCommandRequest {
                    id,
                    command,
                    limits,
                    worker_id,
                    labels,
                    queue_timeout_ms,
                }
            },
        )
}

/// Returns every field of `request` that breaks a documented bound, by the
/// name the validator gives it.
fn violations(request: &ExecuteDistributedCommandRequest) -> Vec<String> {
    let mut fields = Vec::new();
    if !request.id.is_empty() && !is_valid_id(&request.id) {
        fields.push("id".to_owned());
    }
    match &request.command {
        Some(command) => command_violations(command, &mut fields),
        None => fields.push("command".to_owned()),
    }
    if let Some(limits) = &request.limits {
        limit_violations(limits, &mut fields);
    }
    if !request.worker_id.is_empty() && !is_valid_id(&request.worker_id) {
        fields.push("worker_id".to_owned());
    }
    let bad_label = |(key, value): (&String, &String)| {
        key.is_empty()
            || key.contains('=')
            || key.contains('\0')
            || key.len() > MAX_LABEL_BYTES
            || value.len() > MAX_LABEL_BYTES
    };
    if request.labels.len() > MAX_LABELS || request.labels.iter().any(bad_label) {
        fields.push("labels".to_owned());
    }
    if request.queue_timeout_ms > MAX_QUEUE_TIMEOUT_MS {
        fields.push("queue_timeout_ms".to_owned());
    }
    fields
}

fn command_violations(command: &Command, fields: &mut Vec<String>) {
    if !(0..=1).contains(&command.network) {
        fields.push("command.network".to_owned());
    }
    if command.args.is_empty() {
        fields.push("command.args".to_owned());
    }
    for (index, arg) in command.args.iter().enumerate() {
        let empty_program = index == 0 && arg.is_empty();
        if empty_program || arg.contains('\0') || arg.len() >= MAX_ARG_BYTES {
            fields.push(format!("command.args[{index}]"));
        }
    }
    for (name, value) in &command.env {
        let bytes = name.as_bytes();
        let valid_name = bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        // `NAME=value` and its NUL terminator.
        let entry_bytes = name.len() + value.len() + 2;
        if !valid_name || value.contains('\0') || entry_bytes > MAX_ARG_BYTES {
            fields.push("command.env".to_owned());
        }
    }
    let args_bytes: usize = command.args.iter().map(|arg| arg.len() + 1).sum();
    let env_bytes: usize = command.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if args_bytes + env_bytes > MAX_COMMAND_BYTES {
        fields.push("command".to_owned());
    }
    let workdir = &command.workdir;
    let relative = !workdir.is_empty() && !workdir.starts_with('/');
    if relative || workdir.contains('\0') || workdir.len() > MAX_WORKDIR_BYTES {
        fields.push("command.workdir".to_owned());
    }
    let user_byte = |b: &u8| b.is_ascii_alphanumeric() || b".-_:".contains(b);
    if command.user.len() > MAX_USER_LENGTH || !command.user.as_bytes().iter().all(user_byte) {
        fields.push("command.user".to_owned());
    }
}

fn limit_violations(limits: &Limits, fields: &mut Vec<String>) {
    let ranges = [
        (
            "limits.memory_bytes",
            limits.memory_bytes,
            MIN_MEMORY_BYTES,
            MAX_BYTES,
        ),
        (
            "limits.io_read_bps",
            limits.io_read_bps,
            MIN_IO_BPS,
            MAX_BYTES,
        ),
        (
            "limits.io_write_bps",
            limits.io_write_bps,
            MIN_IO_BPS,
            MAX_BYTES,
        ),
        ("limits.pids", limits.pids, MIN_PIDS, MAX_PIDS),
        ("limits.timeout_ms", limits.timeout_ms, 1, MAX_TIMEOUT_MS),
    ];
    for (field, value, min, max) in ranges {
        if value.is_some_and(|value| value < min || value > max) {
            fields.push(field.to_owned());
        }
    }
    // NaN is in no range, so it counts as a violation here.
    if limits
        .cpus
        .is_some_and(|cpus| !(MIN_CPUS..=MAX_CPUS).contains(&cpus))
    {
        fields.push("limits.cpus".to_owned());
    }
}

#[test]
fn validate_execute_request() {
    herd_fuzz::run("validate_execute_request", request(), |request| {
        let expected = violations(&request);
        match validate::execute_request(&request) {
            Ok(()) => prop_assert!(expected.is_empty(), "accepted, but breaks {:?}", expected),
            Err(error) => {
                prop_assert!(
                    expected.contains(&error.field),
                    "rejected for {}, but breaks only {:?}: {}",
                    error.field,
                    expected,
                    error
                );
                let message = error.to_string();
                prop_assert!(message.contains(&error.field), "{}", message);
                prop_assert!(
                    message.len() <= MAX_MESSAGE_BYTES,
                    "message of {} bytes for {}",
                    message.len(),
                    error.field
                );
            }
        }
        Ok(())
    });
}

#[test]
fn validate_process_id() {
    herd_fuzz::run("validate_process_id", id(), |id| {
        match validate::process_id(&id) {
            Ok(()) => prop_assert!(is_valid_id(&id), "{:?}", id),
            Err(error) => {
                prop_assert!(!is_valid_id(&id), "{:?}", id);
                prop_assert_eq!(&error.field, "id");
                let message = error.to_string();
                prop_assert!(
                    message.len() <= MAX_MESSAGE_BYTES,
                    "{} bytes",
                    message.len()
                );
            }
        }
        Ok(())
    });
}
