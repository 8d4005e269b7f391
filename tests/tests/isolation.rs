//! What a command sees inside its sandbox, and the limits that hold it.

use std::time::Duration;

use herd_tests::{Cluster, can_run};

const LEASE: Duration = Duration::from_secs(3);

#[test]
fn network_has_only_loopback_up() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "ls /sys/class/net; cat /sys/class/net/lo/operstate";
    let output = cluster.herd_ok(&["run", "--", "sh", "-c", script]);
    assert_eq!(output, "lo\nunknown\n");
}

#[test]
fn processes_are_only_the_sandbox() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd_ok(&["run", "--", "ps", "-eo", "pid=,args="]);
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 2, "{output}");
    assert_eq!(lines[0], "1 herd-init sandbox-init");
    assert!(lines[1].starts_with("2 ps "), "{output}");
}

#[test]
fn hostname_is_the_process_id() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd_ok(&["run", "--id", "named-job", "--", "hostname"]);
    assert_eq!(output, "named-job\n");
}

#[test]
fn memory_limit_is_oom_killed() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd(&[
        "run",
        "--id",
        "hog",
        "--memory",
        "64M",
        "--",
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(output.status.code(), Some(137));
    let status = cluster.status("hog");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["reason"], "OOM_KILLED");
    assert_eq!(status["signal"], 9);
    assert!(status["metrics"]["oom_kills"].as_u64().unwrap() >= 1);
}

#[test]
fn sigkill_without_oom_is_signaled() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd(&[
        "run",
        "--id",
        "self-kill",
        "--",
        "sh",
        "-c",
        "kill -KILL $$",
    ]);
    assert_eq!(output.status.code(), Some(137));
    let status = cluster.status("self-kill");
    assert_eq!(status["reason"], "SIGNALED");
    assert_eq!(status["signal"], 9);
    assert_eq!(status["metrics"]["oom_kills"], 0);
}

#[test]
fn environment_is_clean() {
    if !can_run() {
        return;
    }
    let canary = [("HERD_TEST_CANARY", "leak123")];
    let cluster = Cluster::start_with_env(&["w1"], LEASE, &canary);
    let output = cluster.herd_ok(&["run", "--env", "FOO=bar", "--", "env"]);
    assert!(output.lines().any(|line| line == "FOO=bar"), "{output}");
    assert!(!output.contains("leak123"), "{output}");
    let init_env = cluster.herd_ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "tr '\\000' '\\n' < /proc/1/environ",
    ]);
    assert!(!init_env.contains("leak123"), "{init_env}");
}
