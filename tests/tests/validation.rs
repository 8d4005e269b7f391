//! Malformed requests sent straight to the manager's gRPC API, past the
//! CLI's own checks: each is INVALID_ARGUMENT naming the field, nothing is
//! stored, and the manager keeps serving.

use std::collections::HashMap;
use std::time::Duration;

use herd_proto::endpoint::Endpoint;
use herd_proto::v1::process_management_service_client::ProcessManagementServiceClient;
use herd_proto::v1::{Command, ExecuteDistributedCommandRequest, Limits};
use herd_tests::{Cluster, can_run};

fn command(args: &[&str]) -> Command {
    Command {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        ..Command::default()
    }
}

fn request(command: Command) -> ExecuteDistributedCommandRequest {
    ExecuteDistributedCommandRequest {
        command: Some(command),
        ..ExecuteDistributedCommandRequest::default()
    }
}

/// The malformed requests of the issue, each with the field its error must
/// name.
fn malformed() -> Vec<(&'static str, ExecuteDistributedCommandRequest, &'static str)> {
    let huge = "x".repeat(1 << 20);
    let mut cases = vec![
        ("empty argv", request(command(&[])), "command.args"),
        (
            "1 MiB argument",
            request(command(&["echo", &huge])),
            "command.args[1]",
        ),
        (
            "NUL in an argument",
            request(command(&["echo", "a\0b"])),
            "command.args[1]",
        ),
        (
            "relative workdir",
            request(Command {
                workdir: "tmp".into(),
                ..command(&["true"])
            }),
            "command.workdir",
        ),
        (
            "negative cpus",
            ExecuteDistributedCommandRequest {
                limits: Some(Limits {
                    cpus: Some(-1.0),
                    ..Limits::default()
                }),
                ..request(command(&["true"]))
            },
            "limits.cpus",
        ),
        (
            "10 KiB id",
            ExecuteDistributedCommandRequest {
                id: "i".repeat(10 << 10),
                ..request(command(&["true"]))
            },
            "id",
        ),
    ];
    for (case, name) in [("env name with =", "A=B"), ("NUL in an env name", "A\0B")] {
        let env = HashMap::from([(name.to_owned(), "v".to_owned())]);
        cases.push((
            case,
            request(Command {
                env,
                ..command(&["true"])
            }),
            "command.env",
        ));
    }
    cases
}

#[test]
fn malformed_requests_store_nothing() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], Duration::from_secs(3));
    let endpoint: Endpoint = cluster.addr().parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = endpoint.connect(None).await.unwrap();
        let mut client = ProcessManagementServiceClient::new(channel);
        for (case, request, field) in malformed() {
            let error = client
                .execute_distributed_command(request)
                .await
                .expect_err(case);
            assert_eq!(
                error.code(),
                tonic::Code::InvalidArgument,
                "{case}: {error:?}"
            );
            assert!(
                error.message().contains(field),
                "{case}: {field} not named in {:?}",
                error.message()
            );
        }
    });
    let stored = cluster.herd_ok(&["ps", "-a", "-q"]);
    assert_eq!(stored, "", "malformed requests were stored");
    assert_eq!(
        cluster.herd_ok(&["run", "--", "echo", "still serving"]),
        "still serving\n"
    );
}

#[test]
fn negative_cli_limits_name_flag() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&[], Duration::from_secs(3));
    for (flag, value) in [
        ("--memory", "-1"),
        ("--pids-limit", "-5"),
        ("--cpus", "-1"),
        ("--timeout", "-3s"),
    ] {
        let output = cluster.herd(&["run", flag, value, "--", "true"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} not named: {stderr}");
    }
    assert_eq!(cluster.herd_ok(&["ps", "-a", "-q"]), "");
}
