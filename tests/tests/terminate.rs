//! Terminating a running command: SIGTERM, grace, then the whole tree.

use std::time::{Duration, Instant};

use herd_tests::{Cluster, can_run};

#[test]
fn terminate_aborts_and_keeps_logs() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], Duration::from_secs(3));
    let script = "for i in {1..30}; do echo $i; sleep 1; done";
    let id = cluster.run_detached(&["--", "bash", "-c", script]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    std::thread::sleep(Duration::from_secs(2));

    let asked = Instant::now();
    cluster.herd_ok(&["kill", "--grace", "5s", &id]);
    let status = cluster.wait_status(&id, Duration::from_secs(10), |s| s["state"] != "RUNNING");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(status["state"], "ABORTED");
    assert_eq!(status["reason"], "TERMINATED_BY_USER");
    assert_eq!(status["signal"], 15);

    let logs = cluster.herd_ok(&["logs", &id]);
    assert!(logs.starts_with("1\n2\n"), "{logs:?}");

    let host_pid = status["host_pid"].as_u64().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{host_pid}")).exists());
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn grace_ends_with_tree_killed() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], Duration::from_secs(3));
    let script = "trap '' TERM; echo ready; sleep 1000 & sleep 1000";
    let id = cluster.run_detached(&["--", "bash", "-c", script]);
    cluster.wait_output(&id, "ready\n", Duration::from_secs(5));

    let asked = Instant::now();
    cluster.herd_ok(&["kill", "--grace", "1s", &id]);
    let status = cluster.wait_status(&id, Duration::from_secs(10), |s| s["state"] != "RUNNING");
    assert!(asked.elapsed() >= Duration::from_millis(900));
    assert_eq!(status["state"], "ABORTED");
    assert_eq!(status["signal"], 9);
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn finished_process_cannot_be_killed() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], Duration::from_secs(3));
    cluster.herd_ok(&["run", "--id", "quick", "--", "true"]);
    let output = cluster.herd(&["kill", "quick"]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already ended"), "{stderr}");
}

#[test]
fn interrupt_terminates_remote_command() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], Duration::from_secs(3));
    let mut child = std::process::Command::new(herd_tests::binary("herd"))
        .env("HERD_ADDR", cluster.addr())
        .args(["run", "--id", "interrupted", "--", "sleep", "100"])
        .spawn()
        .unwrap();
    cluster.wait_status("interrupted", Duration::from_secs(5), |s| {
        s["state"] == "RUNNING"
    });
    // SAFETY: kill(2) on the pid of the CLI this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(143));
    let status = cluster.status("interrupted");
    assert_eq!(status["state"], "ABORTED");
    assert_eq!(status["signal"], 15);
}

#[test]
fn timeout_kills_the_tree() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], Duration::from_secs(3));
    let started = Instant::now();
    let output = cluster.herd(&[
        "run",
        "--id",
        "slow",
        "--timeout",
        "1s",
        "--",
        "sh",
        "-c",
        "sleep 100 & sleep 100",
    ]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(137));
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let status = cluster.status("slow");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["reason"], "TIMED_OUT");
    assert!(cluster.command_cgroups("w1").is_empty());
}
