//! Worker loss, restart and recovery.

use std::time::{Duration, Instant};

use herd_tests::{Cluster, can_run, still_alive};

const LEASE: Duration = Duration::from_secs(2);

#[test]
fn killed_worker_loses_its_process() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let script = "sleep 100 & disown; exec sleep 101";
    let id = cluster.run_detached(&["--worker", "w1", "--", "bash", "-c", script]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    // Wait for the init, sleep 100 and sleep 101 to exist.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut processes = cluster.sandbox_processes("w1", &id);
    while !processes
        .iter()
        .any(|(_, cmdline)| cmdline == b"sleep\x00101\x00")
    {
        assert!(Instant::now() < deadline, "{processes:?}");
        std::thread::sleep(Duration::from_millis(50));
        processes = cluster.sandbox_processes("w1", &id);
    }
    assert_eq!(processes.len(), 3, "{processes:?}");

    cluster.stop_worker("w1", libc::SIGKILL);
    let killed = Instant::now();
    let status = cluster.wait_status(&id, LEASE + Duration::from_secs(3), |s| {
        s["state"] != "RUNNING"
    });
    let took = killed.elapsed();
    assert!(took <= LEASE + Duration::from_secs(1), "took {took:?}");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["reason"], "WORKER_LOST");

    cluster.start_worker("w1");
    cluster.wait_worker_state("w1", "READY", Duration::from_secs(10));
    assert_eq!(still_alive(&processes), Vec::<u32>::new());
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn commands_survive_a_stopped_worker() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1", "w2"], LEASE);
    cluster.stop_worker("w1", libc::SIGTERM);
    for round in 0..3 {
        let id = format!("while-down-{round}");
        let output = cluster.herd_ok(&["run", "--id", &id, "--", "echo", "up"]);
        assert_eq!(output, "up\n");
        assert_eq!(cluster.status(&id)["worker_id"], "w2");
    }

    cluster.start_worker("w1");
    cluster.wait_worker_state("w1", "READY", Duration::from_secs(10));
    let output = cluster.herd_ok(&["run", "--worker", "w1", "--", "echo", "recovered"]);
    assert_eq!(output, "recovered\n");
}

#[test]
fn unknown_worker_times_out_unavailable() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd(&["run", "--id", "nowhere", "--worker", "w9", "--", "true"]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unavailable"), "{stderr}");
    assert_eq!(cluster.status("nowhere")["state"], "FAILED");
}

#[test]
fn workers_are_listed() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1", "w2"], LEASE);
    let table = cluster.herd_ok(&["workers"]);
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("w1 ") && line.contains("READY"))
    );
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("w2 ") && line.contains("READY"))
    );
}

#[test]
fn second_worker_with_same_id_is_rejected() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let impostor = std::process::Command::new(herd_tests::binary("herd-workerd"))
        .args(["--manager", &cluster.addr(), "--id", "w1"])
        .arg("--listen")
        .arg(format!(
            "unix://{}/impostor.sock",
            cluster.dir.path().display()
        ))
        .args(["--cgroup-parent", &cluster.cgroup_parent("impostor")])
        .arg("--state-dir")
        .arg(cluster.dir.path().join("impostor-state"))
        .arg("--join-token-file")
        .arg(cluster.join_token())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill(2) on the pid of the worker this test started.
    unsafe { libc::kill(impostor.id() as i32, libc::SIGTERM) };
    let output = impostor.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("already registered"), "{log}");
    let workers = cluster.herd_ok(&["workers", "--output", "json"]);
    assert!(!workers.contains("impostor.sock"), "{workers}");
    assert_eq!(
        cluster.herd_ok(&["run", "--worker", "w1", "--", "echo", "ok"]),
        "ok\n"
    );
    cluster.stop_worker("w1", libc::SIGTERM);
}

#[test]
fn shared_cgroup_parent_is_refused() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sleep", "30"]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    let output = std::process::Command::new(herd_tests::binary("herd-workerd"))
        .args(["--manager", &cluster.addr(), "--id", "w2"])
        .arg("--listen")
        .arg(format!("unix://{}/w2.sock", cluster.dir.path().display()))
        .args(["--cgroup-parent", &cluster.cgroup_parent("w1")])
        .arg("--state-dir")
        .arg(cluster.dir.path().join("w2-state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another worker"), "{stderr}");
    assert_eq!(cluster.status(&id)["state"], "RUNNING");
    assert_eq!(cluster.herd_ok(&["run", "--", "echo", "still"]), "still\n");
}

#[test]
fn invalid_worker_id_exits_at_start() {
    if !can_run() {
        return;
    }
    let output = std::process::Command::new(herd_tests::binary("herd-workerd"))
        .args(["--id", "a/b", "--manager", "unix:///nonexistent/m.sock"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid --id \"a/b\""));
}

#[test]
fn stopping_worker_aborts_its_commands() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sleep", "300"]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    let stopping = Instant::now();
    cluster.stop_worker("w1", libc::SIGTERM);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    let status = cluster.status(&id);
    assert_eq!(status["state"], "ABORTED");
    assert_eq!(status["signal"], 15);
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("worker shut down"), "{error}");
    assert!(cluster.command_cgroups("w1").is_empty());
}
