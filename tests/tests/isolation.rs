//! What a command sees inside its sandbox, and the limits that hold it.

use std::time::Duration;

use herd_tests::{Cluster, can_run};

const LEASE: Duration = Duration::from_secs(3);

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
fn init_and_command_environ_are_clean() {
    if !can_run() {
        return;
    }
    let canary = [("HERD_TEST_CANARY", "leak123")];
    let cluster = Cluster::start_with_env(&["w1"], LEASE, &canary);
    // Without capabilities a command cannot read the init's environ, so the
    // test reads it from the host while the command runs. What `env` prints
    // inside is checked with the sandbox cases.
    let id = cluster.run_detached(&["--", "sleep", "30"]);
    let status = cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    let init_pid = status["host_pid"].as_u64().unwrap();
    let init_env = std::fs::read(format!("/proc/{init_pid}/environ")).unwrap();
    assert!(
        init_env.is_empty(),
        "{}",
        String::from_utf8_lossy(&init_env)
    );
    let command_pid = wait_for_child(init_pid);
    // The child shows the init's empty environment until its exec.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let command_env = loop {
        let environ = std::fs::read(format!("/proc/{command_pid}/environ")).unwrap();
        if !environ.is_empty() || std::time::Instant::now() > deadline {
            break String::from_utf8_lossy(&environ).into_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!command_env.contains("leak123"), "{command_env}");
    assert!(command_env.contains("PATH="), "{command_env}");
    cluster.herd_ok(&["kill", &id]);
}

#[test]
fn command_runs_unprivileged() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start_with_worker_flags(
        &["w1"],
        LEASE,
        &["--allow-root", "--allow-user", "1234:4321"],
    );
    let caps = cluster.herd_ok(&[
        "run",
        "--",
        "grep",
        "-E",
        "^(Cap|NoNewPrivs)",
        "/proc/self/status",
    ]);
    for line in caps.lines() {
        let (name, value) = line.split_once(':').unwrap();
        let expected = if name == "NoNewPrivs" {
            "1"
        } else {
            "0000000000000000"
        };
        assert_eq!(value.trim(), expected, "{name}");
    }
    assert_eq!(caps.lines().count(), 6, "{caps}");

    let ids = cluster.herd_ok(&["run", "--", "sh", "-c", "id -u; id -g; id -G"]);
    assert_eq!(ids, "65534\n65534\n65534\n");
    let root = cluster.herd_ok(&[
        "run",
        "--user",
        "root",
        "--",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(root, "CapEff:\t0000000000000000\n");
    let numeric = cluster.herd_ok(&[
        "run",
        "--user",
        "1234:4321",
        "--",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(numeric, "1234\n4321\n");
}

#[test]
fn unknown_user_fails_to_spawn() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let output = cluster.herd(&[
        "run",
        "--id",
        "who",
        "--user",
        "no-such-user-x",
        "--",
        "true",
    ]);
    assert_eq!(output.status.code(), Some(125));
    let status = cluster.status("who");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["reason"], "SPAWN_FAILED");
    assert!(status["error"].as_str().unwrap().contains("no-such-user-x"));
}

#[test]
fn rlimits_and_descriptors_are_reset() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    // ls lists its own descriptors: the three standard ones, and 3 for the
    // folder it reads. A shell listing its own could catch a pipe it is
    // setting up.
    let script = "ulimit -c; ulimit -n; exec ls /proc/self/fd";
    let output = cluster.herd_ok(&["run", "--", "bash", "-c", script]);
    assert_eq!(output, "0\n1024\n0\n1\n2\n3\n");
}

#[test]
fn proc_and_tmp_are_private() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start_allowing_root(&["w1"], LEASE);
    // Kernels without magic SysRq have no /proc/sysrq-trigger.
    let script = "for f in /proc/sys /proc/sysrq-trigger /proc/irq /proc/bus; do \
                  if [ ! -e $f ]; then echo missing:$f; \
                  elif grep -q \" $f ro,\" /proc/self/mountinfo; then echo ro:$f; \
                  else echo rw:$f; fi; done; \
                  grep -cE ' /(tmp|var/tmp|dev/shm) rw,nosuid,nodev.* - tmpfs ' /proc/self/mountinfo; \
                  find /tmp /var/tmp /dev/shm -mindepth 1 | wc -l";
    let output = cluster.herd_ok(&["run", "--user", "root", "--", "sh", "-c", script]);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[0], "ro:/proc/sys", "{output}");
    assert!(!output.contains("rw:"), "{output}");
    assert_eq!(lines[4], "3", "{output}");
    assert_eq!(lines[5], "0", "{output}");
}

/// Waits until the init `init_pid` has started its command and returns the
/// command's host pid.
fn wait_for_child(init_pid: u64) -> String {
    let path = format!("/proc/{init_pid}/task/{init_pid}/children");
    for _ in 0..100 {
        let children = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("init {init_pid} started no command");
}

#[test]
fn root_needs_the_worker_to_allow_it() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    for user in ["root", "0", "0:0", "1000:0", "4294967295"] {
        let output = cluster.herd(&["run", "--user", user, "--", "id"]);
        assert_eq!(output.status.code(), Some(125), "{user}");
        assert!(output.stdout.is_empty(), "{user}");
    }
    let status = cluster.herd_ok(&["ps", "--all", "--output", "json"]);
    assert!(!status.contains("\"COMPLETED\""), "{status}");
}

#[test]
fn other_users_need_the_worker_to_allow_them() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    for user in ["1234:4321", "daemon"] {
        let output = cluster.herd(&["run", "--user", user, "--", "id"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{user}: {stderr}");
        assert!(
            stderr.contains("not allowed on this worker"),
            "{user}: {stderr}"
        );
    }
    assert_eq!(
        cluster.herd_ok(&["run", "--user", "nobody", "--", "id", "-u"]),
        "65534\n"
    );
}
