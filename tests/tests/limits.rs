//! Resource limits and the metrics read from each command's cgroup.

use std::time::{Duration, Instant};

use herd_tests::{Cluster, can_run};

const LEASE: Duration = Duration::from_secs(3);

#[test]
fn final_metrics_show_peak_memory() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    // dd fills a 100 MiB buffer, so the peak is about 100 MiB plus dd.
    let script = "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null";
    cluster.herd_ok(&[
        "run", "--id", "alloc", "--memory", "256M", "--", "sh", "-c", script,
    ]);
    let status = cluster.status("alloc");
    let peak = status["metrics"]["memory_peak_bytes"].as_u64().unwrap();
    assert!((100 << 20..=150 << 20).contains(&peak), "peak {peak}");
    let cpu = status["metrics"]["cpu_usage_usec"].as_u64().unwrap();
    assert!(cpu > 0);
    assert_eq!(status["limits"]["memory_bytes"], 256 << 20);
}

#[test]
fn metrics_are_sampled_while_running() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sh", "-c", "sleep 30 & sleep 30"]);
    let status = cluster.wait_status(&id, Duration::from_secs(5), |s| {
        s["metrics"]["pids_current"]
            .as_u64()
            .is_some_and(|pids| pids >= 3)
    });
    assert_eq!(status["state"], "RUNNING");
    assert!(status["metrics"]["memory_current_bytes"].as_u64().unwrap() > 0);
    cluster.herd_ok(&["kill", &id]);
    let finished = cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "ABORTED");
    assert_eq!(finished["metrics"]["pids_current"], 0);
}

#[test]
fn workers_report_host_metrics() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    std::thread::sleep(Duration::from_millis(1500));
    let text = cluster.herd_ok(&["workers", "--output", "json"]);
    let workers: serde_json::Value = serde_json::from_str(&text).unwrap();
    let metrics = &workers[0]["metrics"];
    assert!(
        metrics["memory_total_bytes"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    assert!(
        metrics["memory_available_bytes"].as_u64().unwrap() > 0,
        "{metrics}"
    );
}

#[test]
fn throttled_process_is_still_killed() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "trap '' TERM; echo ready; while :; do :; done";
    let id = cluster.run_detached(&["--cpus", "0.01", "--", "sh", "-c", script]);
    // At 1% of a CPU the shell takes a while to set its trap; SIGTERM
    // before that would end it at once.
    cluster.wait_output(&id, "ready\n", Duration::from_secs(10));
    let asked = Instant::now();
    cluster.herd_ok(&["kill", "--grace", "1s", &id]);
    let status = cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] != "RUNNING");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status["state"], "ABORTED");
    assert_eq!(status["signal"], 9);
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn cpu_quota_holds() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "timeout 2 sh -c 'while :; do :; done'; exit 0";
    cluster.herd_ok(&[
        "run", "--id", "spin", "--cpus", "0.25", "--", "sh", "-c", script,
    ]);
    let status = cluster.status("spin");
    let used = status["metrics"]["cpu_usage_usec"].as_u64().unwrap();
    // 2 s at a quarter of a core is 0.5 s; allow one CFS period either way.
    assert!((400_000..=700_000).contains(&used), "used {used} usec");
}

#[test]
fn read_bandwidth_is_throttled() {
    if !can_run() {
        return;
    }
    // A file on a disk-backed file system, read with O_DIRECT so the page
    // cache does not hide the disk.
    // The sandbox has its own /tmp and /var/tmp, so the file lives under
    // /var/lib, which is on disk and outside both.
    let dir = tempfile::Builder::new()
        .prefix("herd-test-")
        .tempdir_in("/var/lib")
        .unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, vec![7u8; 3 << 20]).unwrap();
    set_mode(dir.path(), 0o755);
    set_mode(&data, 0o644);

    let cluster = Cluster::start(&["w1"], LEASE);
    // 3 MiB at 1 MiB/s take at least 2 s.
    let script = format!(
        "dd if={} of=/dev/null bs=64k iflag=direct 2>/dev/null",
        data.display()
    );
    let started = Instant::now();
    let args = [
        "run",
        "--id",
        "reader",
        "--io-read-bps",
        "1m",
        "--",
        "sh",
        "-c",
    ];
    cluster.herd_ok(&[&args[..], &[script.as_str()]].concat());
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "took {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let read = cluster.status("reader")["metrics"]["io_read_bytes"]
        .as_u64()
        .unwrap();
    assert!(read >= 3 << 20, "read {read} bytes");
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod test file");
}

#[test]
fn bad_limits_are_rejected_before_start() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let cases: &[(&[&str], &str)] = &[
        (&["--memory", "1k"], "limits.memory_bytes"),
        (&["--memory=-5m"], "invalid --memory"),
        (&["--cpus", "0"], "invalid --cpus"),
        (&["--pids", "0"], "limits.pids"),
        (&["--timeout", "0s"], "limits.timeout_ms"),
        (&["--timeout=-1s"], "invalid --timeout"),
        (&["--io-read-bps", "10"], "limits.io_read_bps"),
    ];
    for (flags, expected) in cases {
        let args = [&["run"], *flags, &["--", "true"]].concat();
        let output = cluster.herd(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
    assert_eq!(cluster.herd_ok(&["ps", "--all", "--quiet"]), "");
}
