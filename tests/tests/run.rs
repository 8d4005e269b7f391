//! `herd run` end to end: output, exit codes and final states.

use std::time::Duration;

use herd_tests::{Cluster, can_run};

const LEASE: Duration = Duration::from_secs(3);

#[test]
fn hello_world_completes() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1", "w2"], LEASE);
    let output = cluster.herd(&[
        "run",
        "--id",
        "hello",
        "--",
        "bash",
        "-c",
        "echo 'Hello World'",
    ]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "Hello World\n");
    assert_eq!(output.status.code(), Some(0));
    let status = cluster.status("hello");
    assert_eq!(status["state"], "COMPLETED");
    assert_eq!(status["reason"], "EXITED");
    assert_eq!(status["exit_code"], 0);
}

#[test]
fn invalid_command_fails_127() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd(&["run", "--id", "bad", "--", "bash", "-c", "invalid_command"]);
    assert_eq!(output.status.code(), Some(127));
    let status = cluster.status("bad");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["exit_code"], 127);
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("command not found"), "{error}");
}

#[test]
fn stdout_and_stderr_stay_apart() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "printf out1; printf err1 >&2; printf '\\342\\200'; exit 3";
    let output = cluster.herd(&["run", "--", "sh", "-c", script]);
    assert_eq!(output.stdout, b"out1\xe2\x80");
    assert!(output.stderr.starts_with(b"err1"), "{:?}", output.stderr);
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn missing_program_is_spawn_failed() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let started = std::time::Instant::now();
    let output = cluster.herd(&["run", "--id", "missing", "--", "/no/such/program"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(127));
    let status = cluster.status("missing");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["reason"], "SPAWN_FAILED");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("/no/such/program")
    );

    let output = cluster.herd(&[
        "run",
        "--id",
        "nowhere",
        "--workdir",
        "/no/such/dir",
        "--",
        "true",
    ]);
    assert_eq!(output.status.code(), Some(126));
    let status = cluster.status("nowhere");
    assert_eq!(status["reason"], "SPAWN_FAILED");
    assert!(status["error"].as_str().unwrap().contains("/no/such/dir"));
}

#[test]
fn detached_process_can_be_waited() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sh", "-c", "sleep 0.3; echo done; exit 7"]);
    let waited = cluster.herd(&["wait", &id]);
    assert_eq!(waited.status.code(), Some(7));
    assert_eq!(cluster.herd_ok(&["logs", &id]), "done\n");
    let listed = cluster.herd_ok(&["ps", "--all", "--quiet"]);
    assert!(listed.lines().any(|line| line == id), "{listed}");
    let running = cluster.herd_ok(&["ps", "--quiet"]);
    assert!(!running.lines().any(|line| line == id), "{running}");
}

#[test]
fn repeated_id_attaches_to_existing() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let first = cluster.herd(&["run", "--id", "once", "--", "sh", "-c", "echo $$"]);
    let second = cluster.herd(&["run", "--id", "once", "--", "sh", "-c", "echo $$"]);
    assert_eq!(first.stdout, second.stdout);
    let all = cluster.herd_ok(&["ps", "--all", "--quiet"]);
    assert_eq!(all.lines().filter(|line| *line == "once").count(), 1);
}

#[test]
fn bad_requests_are_rejected() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--workdir", "relative", "--", "true"],
            "command.workdir",
        ),
        (
            &["run", "--env", "A=B=C", "--env", "1X=y", "--", "true"],
            "command.env",
        ),
        (
            &["run", "--memory", "12q", "--", "true"],
            "invalid --memory",
        ),
        (&["run", "--cpus", "-1", "--", "true"], "invalid --cpus"),
        (&["run", "--id", "../etc", "--", "true"], "invalid id"),
        (&["kill", "--signal", "BOGUS", "x"], "invalid signal"),
        (&["status", "no-such-process"], "not found"),
    ];
    for (args, expected) in cases {
        let output = cluster.herd(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert_eq!(cluster.herd_ok(&["ps", "--all", "--quiet"]), "");
}

#[test]
fn logs_follow_until_the_end() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done";
    let id = cluster.run_detached(&["--", "sh", "-c", script]);
    let followed = cluster.herd_ok(&["logs", "--follow", &id]);
    assert_eq!(followed, "line1\nline2\nline3\nline4\nline5\n");
    assert_eq!(cluster.status(&id)["state"], "COMPLETED");
    assert_eq!(cluster.herd_ok(&["logs", &id]), followed);
}

#[test]
fn repeated_id_with_other_command_conflicts() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    cluster.herd_ok(&["run", "--id", "dup", "--", "echo", "first"]);
    let output = cluster.herd(&["run", "--id", "dup", "--", "echo", "second"]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("different command"), "{stderr}");
    assert_eq!(cluster.herd_ok(&["logs", "dup"]), "first\n");
}

#[test]
fn closed_stdout_ends_the_command() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = format!(
        "HERD_ADDR={} {} run --id yes -- yes | head -n 1",
        cluster.addr(),
        herd_tests::binary("herd").display()
    );
    let output = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "y\n");
    let status = cluster.wait_status("yes", Duration::from_secs(15), |s| s["state"] != "RUNNING");
    assert_eq!(status["state"], "ABORTED");
    let listed = format!(
        "HERD_ADDR={} {} ps --all | head -n 1",
        cluster.addr(),
        herd_tests::binary("herd").display()
    );
    let output = std::process::Command::new("sh")
        .args(["-c", &listed])
        .output()
        .unwrap();
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn output_over_the_limit_drops_oldest() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    cluster.stop_manager();
    cluster.start_manager_with(&["--output-limit", "1m"]);
    cluster.wait_worker_state("w1", "READY", Duration::from_secs(10));
    let script = "head -c 3145728 /dev/zero | tr '\\000' a; echo END";
    let id = cluster.run_detached(&["--", "sh", "-c", script]);
    cluster.herd(&["wait", &id]);
    let output = cluster.herd(&["logs", &id]);
    assert!(output.stdout.ends_with(b"aaaaEND\n"));
    assert!(
        output.stdout.len() <= (1 << 20) + (64 << 10),
        "{}",
        output.stdout.len()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("were dropped by the manager's output limit"),
        "{stderr}"
    );
    assert_eq!(cluster.status(&id)["output_bytes"], 3 * 1024 * 1024 + 4);
}

#[test]
fn output_dropped_by_budget_ends_followers() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    cluster.stop_manager();
    cluster.start_manager_with(&["--output-budget", "1m"]);
    cluster.wait_worker_state("w1", "READY", Duration::from_secs(10));
    // The second command's output pushes all of the first's out of the
    // budget; readers of the first must learn that and finish.
    cluster.herd_ok(&[
        "run",
        "--id",
        "old",
        "--",
        "head",
        "-c",
        "100000",
        "/dev/zero",
    ]);
    cluster.herd_ok(&[
        "run",
        "--id",
        "new",
        "--",
        "head",
        "-c",
        "2000000",
        "/dev/zero",
    ]);
    for args in [&["logs", "old"][..], &["logs", "--follow", "old"][..]] {
        let started = std::time::Instant::now();
        let output = cluster.herd(args);
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("100000 bytes of output"),
            "{args:?}: {stderr}"
        );
    }
}
