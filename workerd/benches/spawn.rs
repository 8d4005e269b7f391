//! Times the worker-side sandbox spawn against `unshare(1)` in the same run.
//!
//! Each iteration of herd's path creates the command's cgroup and clones
//! the init into new PID, mount, network, UTS, IPC and cgroup namespaces.
//! The init mounts /proc, /sys and the private tmpfs folders, brings lo up
//! and runs `true`; the benchmark waits for it and removes the cgroup. The baseline runs
//! `unshare --fork --pid --mount-proc --mount --net true`, which does less
//! (no cgroup, no /sys, /tmp or loopback). The two alternate so that both
//! see the same machine load. Needs root; run with `cargo bench -p
//! herd-workerd --bench spawn`.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use herd_workerd::cgroup::{CommandCgroup, Layout, prepare_parents};
use herd_workerd::sandbox::{self, InitReport, SandboxSpec};

const ITERATIONS: usize = 300;

fn main() {
    if std::env::args().nth(1).as_deref() == Some(sandbox::INIT_SUBCOMMAND) {
        sandbox::init::main();
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: the spawn benchmark needs root for namespaces and cgroups");
        return;
    }
    let parent = format!("herd-bench-{}", std::process::id());
    let mut layout = Layout::discover(&parent).expect("cgroup layout");
    if let Some(own) = &layout.v2_own {
        let controllers =
            std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
        layout.read_v2_controllers(&controllers);
    }
    prepare_parents(&layout, "supervisor").expect("parent cgroups");

    let spec = SandboxSpec {
        args: vec!["true".into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        identity: sandbox::identity::resolve("nobody").expect("user nobody"),
        rlimits: Vec::new(),
        workdir: "/".into(),
        hostname: "bench".into(),
        host_network: false,
    };
    let mut herd = Vec::with_capacity(ITERATIONS);
    let mut unshare = Vec::with_capacity(ITERATIONS);
    for index in 0..ITERATIONS {
        herd.push(time_herd(&layout, &format!("b{index}"), &spec));
        unshare.push(time_unshare());
    }
    for dir in layout.parent_dirs() {
        let _ = std::fs::remove_dir(dir);
    }
    report(
        "herd sandbox spawn (cgroup + clone3 + init + true + cleanup)",
        &mut herd,
    );
    report(
        "unshare --fork --pid --mount-proc --mount --net true",
        &mut unshare,
    );
}

fn time_herd(layout: &Layout, name: &str, spec: &SandboxSpec) -> Duration {
    let started = Instant::now();
    let cgroup = CommandCgroup::create(layout, name).expect("create cgroup");
    let spawned = sandbox::spawn(&cgroup, spec).expect("spawn sandbox");
    let mut status = 0;
    // SAFETY: waits for our own child by pid, writing only to `status`.
    unsafe { libc::waitpid(spawned.pid as libc::pid_t, &mut status, 0) };
    let mut report = Vec::new();
    let _ = std::fs::File::from(spawned.report).read_to_end(&mut report);
    cgroup.remove().expect("remove cgroup");
    let elapsed = started.elapsed();
    assert_eq!(
        InitReport::parse(&report),
        Some(InitReport::Exited { code: 0 })
    );
    elapsed
}

fn time_unshare() -> Duration {
    let started = Instant::now();
    let status = Command::new("unshare")
        .args([
            "--fork",
            "--pid",
            "--mount-proc",
            "--mount",
            "--net",
            "true",
        ])
        .status()
        .expect("run unshare");
    assert!(status.success());
    started.elapsed()
}

fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |fraction: f64| samples[((samples.len() - 1) as f64 * fraction) as usize];
    println!(
        "{name}\n  runs {}  median {:.2} ms  p10 {:.2} ms  p90 {:.2} ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.1).as_secs_f64() * 1000.0,
        at(0.9).as_secs_f64() * 1000.0
    );
}
