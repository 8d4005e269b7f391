//! The manager's records and output outlive the manager, and placement
//! waits for a matching worker.

use std::time::{Duration, Instant};

use herd_tests::{Cluster, can_run};
use serde_json::Value;

const LEASE: Duration = Duration::from_secs(2);

/// Returns the fields that must survive a restart, for every process.
fn summary(cluster: &Cluster) -> Vec<Value> {
    let text = cluster.herd_ok(&["ps", "--all", "--output", "json"]);
    let list: Vec<Value> = serde_json::from_str(&text).expect("ps JSON");
    list.iter()
        .map(|status| {
            serde_json::json!([
                status["id"],
                status["state"],
                status["reason"],
                status["exit_code"],
                status["signal"],
                status["error"],
                status["output_bytes"],
                status["metrics"],
            ])
        })
        .collect()
}

#[test]
fn records_survive_manager_sigkill() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    for n in 0..50 {
        let id = format!("job-{n}");
        let script = format!("echo out-{n}; echo err-{n} >&2; exit {}", n % 3);
        cluster.herd(&["run", "--id", &id, "--", "sh", "-c", &script]);
    }
    let before = summary(&cluster);
    assert_eq!(before.len(), 50);

    cluster.signal_manager(libc::SIGKILL);
    cluster.start_manager_with(&[]);
    assert_eq!(summary(&cluster), before);
    for n in [0, 17, 49] {
        let output = cluster.herd(&["logs", &format!("job-{n}")]);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("out-{n}\n")
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            format!("err-{n}\n")
        );
    }
    cluster.wait_worker_state("w1", "READY", Duration::from_secs(10));
    assert_eq!(cluster.herd_ok(&["run", "--", "echo", "after"]), "after\n");
}

#[test]
fn running_process_is_settled_after_restart() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sleep", "300"]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    cluster.signal_manager(libc::SIGKILL);
    cluster.start_manager_with(&[]);
    let status = cluster.wait_status(&id, Duration::from_secs(15), |s| s["state"] != "RUNNING");
    assert_eq!(status["state"], "FAILED");
    let error = status["error"].as_str().unwrap();
    assert!(error.contains("manager restarted"), "{error}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cluster.command_cgroups("w1").is_empty() {
        assert!(Instant::now() < deadline, "the sandbox was not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn label_request_waits_for_a_match() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let started = Instant::now();
    let output = cluster.herd(&["run", "--id", "nowhere", "--label", "zone=b", "--", "true"]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unavailable"), "{stderr}");
    assert!(stderr.contains("labels zone=b"), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cluster.status("nowhere")["state"], "FAILED");

    let waiting = std::process::Command::new(herd_tests::binary("herd"))
        .env("HERD_ADDR", cluster.addr())
        .args([
            "run", "--id", "later", "--label", "zone=b", "--", "echo", "placed",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cluster.status("later")["state"], "PENDING");
    cluster.start_worker_with("w2", &["--label", "zone=b"]);
    let output = waiting.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "placed\n");
    assert_eq!(cluster.status("later")["worker_id"], "w2");
}
