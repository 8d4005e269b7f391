//! Inputs that broke other process runners and container runtimes, each a
//! whole kind of fault, run through a real manager and worker.

use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use herd_tests::{Cluster, binary, can_run, count_entries, pid_namespace_count, still_alive};

const LEASE: Duration = Duration::from_secs(3);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn orphans_are_reaped() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "(sleep 0.2 &); (sleep 0.2 &); sleep 1; \
                  grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l";
    let output = cluster.herd(&["run", "--", "sh", "-c", script]);
    assert_eq!(text(&output.stdout).trim(), "0");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn orphans_do_not_exhaust_pids() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "for i in $(seq 200); do (true &); done; sleep 1; echo ok";
    let output = cluster.herd(&["run", "--pids", "32", "--", "sh", "-c", script]);
    assert_eq!(text(&output.stdout), "ok\n", "{}", text(&output.stderr));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn terminate_reaches_pid_one_command() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let id = cluster.run_detached(&["--", "sleep", "300"]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    let asked = Instant::now();
    cluster.herd_ok(&["kill", "--grace", "5s", &id]);
    let status = cluster.wait_status(&id, Duration::from_secs(10), |s| s["state"] != "RUNNING");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status["state"], "ABORTED");
    assert_eq!(status["signal"], 15);
}

#[test]
fn output_survives_fast_exit() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    for round in 0..200 {
        let output = cluster.herd(&["run", "--", "sh", "-c", "printf 'line1\\nno-newline-tail'"]);
        assert_eq!(output.stdout, b"line1\nno-newline-tail", "round {round}");
        assert_eq!(output.status.code(), Some(0), "round {round}");
    }
}

#[test]
fn background_child_does_not_hold_output() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let started = Instant::now();
    let output = cluster.herd(&["run", "--", "sh", "-c", "sleep 30 & echo started"]);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(text(&output.stdout), "started\n");
    thread::sleep(Duration::from_secs(2));
    assert!(cluster.processes_named(&["sleep", "30"]).is_empty());
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn new_sessions_do_not_escape_kill() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "setsid sleep 1001 & nohup sleep 1003 >/dev/null 2>&1 & sleep 1000";
    let id = cluster.run_detached(&["--", "sh", "-c", script]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    thread::sleep(Duration::from_secs(1));
    let processes = cluster.sandbox_processes("w1", &id);
    let sleeps = processes
        .iter()
        .filter(|(_, cmdline)| cmdline.starts_with(b"sleep\0"));
    assert_eq!(sleeps.count(), 3, "{processes:?}");

    let asked = Instant::now();
    cluster.herd_ok(&["kill", &id]);
    cluster.wait_status(&id, Duration::from_secs(2), |s| s["state"] == "ABORTED");
    assert_eq!(still_alive(&processes), Vec::<u32>::new());
    assert!(cluster.command_cgroups("w1").is_empty());
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}

#[test]
fn cgroups_are_removed_despite_children() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "for i in $(seq 50); do sleep 100 & done; exit 0";
    for round in 0..100 {
        let output = cluster.herd(&["run", "--", "sh", "-c", script]);
        assert_eq!(output.status.code(), Some(0), "round {round}");
        let left = cluster.command_cgroups("w1");
        assert!(left.is_empty(), "round {round}: {left:?}");
    }
    assert!(cluster.processes_named(&["sleep", "100"]).is_empty());
}

#[test]
fn stdin_is_empty() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let started = Instant::now();
    let cat = cluster.herd(&["run", "--", "cat"]);
    assert_eq!(cat.stdout, b"");
    assert_eq!(cat.status.code(), Some(0));
    let read = cluster.herd(&["run", "--", "sh", "-c", "read x; echo \"got:$x\""]);
    assert_eq!(text(&read.stdout), "got:\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn long_lines_are_exact() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "head -c 100000000 /dev/zero | tr '\\000' x; echo END";
    let output = cluster.herd(&["run", "--", "sh", "-c", script]);
    assert_eq!(output.stdout.len(), 100_000_004);
    assert!(output.stdout.ends_with(b"END\n"));
    assert!(
        output.stdout[..100_000_000]
            .iter()
            .all(|byte| *byte == b'x')
    );
}

#[test]
fn binary_output_is_exact() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    // The sandbox hashes what it wrote, and the test hashes what arrived.
    let script = "head -c 1048576 /dev/urandom > /tmp/data; cat /tmp/data; \
                  sha256sum < /tmp/data >&2";
    let output = cluster.herd(&["run", "--", "sh", "-c", script]);
    assert_eq!(output.stdout.len(), 1_048_576);
    let mut hasher = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hasher
        .stdin
        .take()
        .unwrap()
        .write_all(&output.stdout)
        .unwrap();
    let local = hasher.wait_with_output().unwrap();
    let local_hash = text(&local.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let remote_hash = text(&output.stderr)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(local_hash, remote_hash);

    let partial = cluster.herd(&["run", "--", "printf", "\\342\\200"]);
    assert_eq!(partial.stdout, [0xe2, 0x80]);
}

#[test]
fn arguments_are_verbatim() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let args = [
        "run",
        "--",
        "printf",
        "%s|",
        "a b",
        "$HOME",
        "; echo hi",
        "*",
        "",
    ];
    let output = cluster.herd(&args);
    assert_eq!(text(&output.stdout), "a b|$HOME|; echo hi|*||");
}

#[test]
fn daemon_environment_does_not_leak() {
    if !can_run() {
        return;
    }
    let canary = [("HERD_TEST_CANARY", "leak123")];
    let cluster = Cluster::start_with_env(&["w1"], LEASE, &canary);
    let env = cluster.herd_ok(&["run", "--env", "FOO=bar", "--", "env"]);
    assert!(env.lines().any(|line| line == "FOO=bar"), "{env}");
    assert!(!env.contains("leak123"), "{env}");
    let script = "tr '\\000' '\\n' < /proc/1/environ";
    let output = cluster.herd(&["run", "--", "sh", "-c", script]);
    assert!(!text(&output.stdout).contains("leak123"));
    assert!(!text(&output.stderr).contains("leak123"));
}

#[test]
fn loopback_is_up_and_alone() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "cat /sys/class/net/lo/operstate; ls /sys/class/net";
    let output = cluster.herd_ok(&["run", "--", "sh", "-c", script]);
    assert_eq!(output, "unknown\nlo\n");
}

#[test]
fn host_processes_are_invisible() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "ls -d /proc/[0-9]* | wc -l; cat /proc/1/cmdline | tr '\\000' ' '";
    let output = cluster.herd_ok(&["run", "--", "sh", "-c", script]);
    let mut lines = output.lines();
    let count: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(count <= 5, "{output}");
    assert_eq!(lines.next().unwrap().trim(), "herd-init sandbox-init");
}

#[test]
fn stopped_processes_die_at_timeout() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let script = "sleep 1000 & kill -STOP $!; trap '' TERM; kill -STOP $$";
    let started = Instant::now();
    let id = cluster.run_detached(&["--timeout", "2s", "--", "sh", "-c", script]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    thread::sleep(Duration::from_millis(500));
    let processes = cluster.sandbox_processes("w1", &id);
    assert!(processes.len() >= 3, "{processes:?}");

    let status = cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] != "RUNNING");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["reason"], "TIMED_OUT");
    assert_eq!(still_alive(&processes), Vec::<u32>::new());
    assert!(cluster.command_cgroups("w1").is_empty());
}

/// The sandbox lives as long as its command, as a container lives as long
/// as its PID 1: the bomb's bash returns at once, and the kernel kills every
/// process it left when the init exits.
#[test]
fn fork_bomb_ends_with_its_shell() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let args = [
        "run",
        "--id",
        "bomb",
        "--pids",
        "64",
        "--timeout",
        "5s",
        "--",
        "bash",
        "-c",
    ];
    let output = cluster.herd(&[&args[..], &[":(){ :|:& };:"]].concat());
    assert_eq!(output.status.code(), Some(0));
    assert!(cluster.command_cgroups("w1").is_empty());
}

/// A bomb whose shell stays alive runs into the pids limit until the
/// timeout, while other commands still run.
#[test]
fn fork_bomb_is_contained_until_timeout() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let bomb = ":(){ :|:& };:; sleep 100";
    let id = cluster.run_detached(&["--pids", "64", "--timeout", "5s", "--", "bash", "-c", bomb]);
    cluster.wait_status(&id, Duration::from_secs(5), |s| s["state"] == "RUNNING");
    thread::sleep(Duration::from_secs(2));

    let started = Instant::now();
    assert_eq!(cluster.herd_ok(&["run", "--", "echo", "alive"]), "alive\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let processes = cluster.sandbox_processes("w1", &id);
    assert!(processes.len() <= 64, "{} processes", processes.len());
    let sampled = cluster.status(&id);
    let pids = sampled["metrics"]["pids_current"].as_u64().unwrap();
    assert!(pids <= 64, "{pids} pids");

    let status = cluster.wait_status(&id, Duration::from_secs(10), |s| s["state"] != "RUNNING");
    assert_eq!(status["reason"], "TIMED_OUT");
    assert_eq!(still_alive(&processes), Vec::<u32>::new());
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn many_at_once_return_their_own_results() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    let worker = cluster.worker_pid("w1");
    cluster.herd_ok(&["run", "--", "true"]);
    thread::sleep(Duration::from_secs(2));
    let fds = count_entries(worker, "fd");
    let threads = count_entries(worker, "task");
    let namespaces = pid_namespace_count();

    let children: Vec<_> = (0..200)
        .map(|n| {
            let child = Command::new(binary("herd"))
                .env("HERD_ADDR", cluster.addr())
                .args(["run", "--", "sh", "-c", "printf '%s\\n' \"$0\"; exit 3"])
                .arg(format!("tag-{n}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (n, child)
        })
        .collect();
    for (n, child) in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            text(&output.stdout),
            format!("tag-{n}\n"),
            "{}",
            text(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(3), "tag-{n}");
    }

    let settled = Instant::now() + Duration::from_secs(15);
    loop {
        let now = (
            count_entries(worker, "fd"),
            count_entries(worker, "task"),
            pid_namespace_count(),
        );
        if now.0 <= fds && now.1 <= threads && now.2 <= namespaces {
            break;
        }
        assert!(
            Instant::now() < settled,
            "fds {fds}, threads {threads}, namespaces {namespaces} before; {now:?} after"
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert!(cluster.command_cgroups("w1").is_empty());
}

#[test]
fn oom_kill_is_reported() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start(&["w1"], LEASE);
    // Both the command itself and a shell's child hitting the limit end the
    // whole sandbox as OOM_KILLED.
    let forms: [&[&str]; 2] = [&["tail", "/dev/zero"], &["sh", "-c", "tail /dev/zero"]];
    for (index, form) in forms.iter().enumerate() {
        let id = format!("oom-{index}");
        let args = [&["run", "--id", &id, "--memory", "64M", "--"][..], form].concat();
        let output = cluster.herd(&args);
        assert_eq!(output.status.code(), Some(137), "{form:?}");
        let status = cluster.status(&id);
        assert_eq!(status["state"], "FAILED", "{form:?}");
        assert_eq!(status["reason"], "OOM_KILLED", "{form:?}");
        assert_eq!(status["signal"], 9, "{form:?}");
        assert_eq!(status["exit_code"], serde_json::Value::Null, "{form:?}");
        assert_eq!(status["metrics"]["oom_kills"], 1, "{form:?}");
        let peak = status["metrics"]["memory_peak_bytes"].as_u64().unwrap();
        assert!(
            (56 << 20..=(64 << 20) + (1 << 20)).contains(&peak),
            "peak {peak}"
        );
    }
}

#[test]
fn plain_sigkill_is_not_oom() {
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
    assert_eq!(status["signal"], 9);
    assert_eq!(status["metrics"]["oom_kills"], 0);
    assert_ne!(status["reason"], "OOM_KILLED");
}
