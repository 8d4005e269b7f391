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

#[test]
fn late_followers_get_identical_output() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "for i in $(seq 30); do echo line-$i; sleep 0.05; done";
    let id = cluster.run_detached(&["--", "sh", "-c", script]);
    let follow = || {
        std::process::Command::new(herd_tests::binary("herd"))
            .env("HERD_ADDR", cluster.addr())
            .args(["logs", "--follow", &id])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = follow();
    std::thread::sleep(Duration::from_millis(400));
    let second = follow();
    std::thread::sleep(Duration::from_millis(600));
    let third = follow();
    let expected: String = (1..=30).map(|i| format!("line-{i}\n")).collect();
    for follower in [first, second, third] {
        let output = follower.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}

#[test]
fn slow_reader_keeps_memory_bounded() {
    if !can_run() {
        return;
    }
    use std::io::Read;

    let cluster = Cluster::start(&["w1"], LEASE);
    let manager = cluster.manager_pid();
    let worker = cluster.worker_pid("w1");
    let baseline = (
        herd_tests::rss_bytes(manager),
        herd_tests::rss_bytes(worker),
    );

    // 24 MiB as fast as the command can write, hashed inside the sandbox.
    let script = "head -c 25165824 /dev/urandom > /tmp/data; cat /tmp/data; \
                  sha256sum < /tmp/data >&2";
    let mut reader = std::process::Command::new(herd_tests::binary("herd"))
        .env("HERD_ADDR", cluster.addr())
        .args(["run", "--id", "flood", "--", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = reader.stdout.take().unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 << 10];
    let mut peak = baseline;
    let started = Instant::now();
    loop {
        let count = stdout.read(&mut buffer).unwrap();
        if count == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..count]);
        // About 1 MiB/s: 64 KiB every 62 ms.
        let due = Duration::from_millis(62 * (received.len() as u64 >> 16));
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(250)));
        }
        peak.0 = peak.0.max(herd_tests::rss_bytes(manager));
        peak.1 = peak.1.max(herd_tests::rss_bytes(worker));
    }
    let output = reader.wait_with_output().unwrap();
    assert_eq!(received.len(), 25_165_824);

    let mut hasher = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut hasher.stdin.take().unwrap(), &received).unwrap();
    let local = hasher.wait_with_output().unwrap();
    let local = String::from_utf8_lossy(&local.stdout);
    let remote = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        local.split_whitespace().next(),
        remote.split_whitespace().next()
    );

    let limit = 64 << 20;
    assert!(
        peak.0 - baseline.0 < limit,
        "manager grew {} bytes",
        peak.0 - baseline.0
    );
    assert!(
        peak.1 - baseline.1 < limit,
        "worker grew {} bytes",
        peak.1 - baseline.1
    );
}

#[test]
fn output_survives_manager_restart() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let script = "for i in $(seq 100); do echo line-$i; sleep 0.1; done";
    let id = "through-restart";
    // An attached `herd run` and a `herd logs --follow` both ride it out.
    let attached = std::process::Command::new(herd_tests::binary("herd"))
        .env("HERD_ADDR", cluster.addr())
        .args(["run", "--id", id, "--", "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    cluster.wait_status(id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    let follower = std::process::Command::new(herd_tests::binary("herd"))
        .env("HERD_ADDR", cluster.addr())
        .args(["logs", "--follow", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    cluster.signal_manager(libc::SIGKILL);
    std::thread::sleep(Duration::from_millis(500));
    cluster.start_manager_with(&[]);

    let status = cluster.wait_status(id, Duration::from_secs(30), |s| s["state"] != "RUNNING");
    assert_eq!(status["state"], "COMPLETED", "{status}");
    let expected: String = (1..=100).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(cluster.herd_ok(&["logs", id]), expected);
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), expected);
    let attached = attached.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&attached.stdout), expected);
    assert_eq!(attached.status.code(), Some(0));
}

#[test]
fn pending_request_is_placed_after_restart() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--label", "zone=c", "--", "echo", "placed late"]);
    assert_eq!(cluster.status(&id)["state"], "PENDING");
    cluster.signal_manager(libc::SIGKILL);
    cluster.start_manager_with(&[]);
    cluster.start_worker_with("w2", &["--label", "zone=c"]);
    let status = cluster.wait_status(&id, Duration::from_secs(10), |s| s["state"] != "PENDING");
    let status = match status["state"].as_str() {
        Some("RUNNING") => {
            cluster.wait_status(&id, Duration::from_secs(10), |s| s["state"] != "RUNNING")
        }
        _ => status,
    };
    assert_eq!(status["state"], "COMPLETED", "{status}");
    assert_eq!(status["worker_id"], "w2");
    assert_eq!(cluster.herd_ok(&["logs", &id]), "placed late\n");
}

#[test]
fn long_restart_keeps_running_process() {
    if !can_run() {
        return;
    }
    let mut cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sh", "-c", "sleep 9; echo done"]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    cluster.signal_manager(libc::SIGKILL);
    // Down for three leases: the worker must still count as alive.
    std::thread::sleep(LEASE * 3);
    cluster.start_manager_with(&[]);
    let status = cluster.wait_status(&id, Duration::from_secs(20), |s| s["state"] != "RUNNING");
    assert_eq!(status["state"], "COMPLETED", "{status}");
    assert_eq!(cluster.herd_ok(&["logs", &id]), "done\n");
}
