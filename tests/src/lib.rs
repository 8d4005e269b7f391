//! A cluster of real herd binaries for end-to-end tests: one manager and
//! named workers on unix sockets in a temporary folder, each worker with a
//! cgroup parent of its own.
//!
//! The binaries come from the same target folder as the test executable, so
//! `cargo build --workspace --bins` must run before the tests (the
//! Makefile's `test` target does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod pki;

static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// Reports whether the tests can run: they need root for namespaces and
/// cgroups. Prints why when they cannot.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping: end-to-end tests need root for namespaces and cgroups");
    }
    root
}

/// Returns the folder holding the built binaries: the parent of `deps/`,
/// where the test executable lives.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("target profile folder").to_owned()
}

/// Returns the path of a built herd binary.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A manager and its workers, stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub lease: Duration,
    tag: String,
    manager: Option<Child>,
    workers: HashMap<String, Child>,
    extra_worker_env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts a manager with the given worker lease and workers named
    /// `ids`, and waits until all are registered.
    pub fn start(ids: &[&str], lease: Duration) -> Cluster {
        Cluster::start_with_env(ids, lease, &[])
    }

    /// Like [`Cluster::start`], with workers that may run commands as root.
    pub fn start_allowing_root(ids: &[&str], lease: Duration) -> Cluster {
        Cluster::start_with_worker_flags(ids, lease, &["--allow-root"])
    }

    /// Like [`Cluster::start`], with `flags` added to every worker's.
    pub fn start_with_worker_flags(ids: &[&str], lease: Duration, flags: &[&str]) -> Cluster {
        let mut cluster = Cluster::start(&[], lease);
        for id in ids {
            cluster.start_worker_with(id, flags);
        }
        for id in ids {
            cluster.wait_worker_state(id, "READY", Duration::from_secs(10));
        }
        cluster
    }

    /// Like [`Cluster::start`], with extra environment for the workers.
    pub fn start_with_env(ids: &[&str], lease: Duration, env: &[(&str, &str)]) -> Cluster {
        let mut cluster = Cluster::new(lease, env);
        cluster.start_manager();
        for id in ids {
            cluster.start_worker(id);
        }
        for id in ids {
            cluster.wait_worker_state(id, "READY", Duration::from_secs(10));
        }
        cluster
    }

    /// Starts only a manager, with `extra` flags after the usual ones.
    pub fn start_manager_only(lease: Duration, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::new(lease, &[]);
        cluster.start_manager_with(extra);
        cluster
    }

    /// Returns a cluster with nothing started yet.
    fn new(lease: Duration, env: &[(&str, &str)]) -> Cluster {
        let number = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        Cluster {
            dir: tempfile::tempdir().expect("temporary folder"),
            lease,
            tag: format!("herd-test-{}-{number}", std::process::id()),
            manager: None,
            workers: HashMap::new(),
            extra_worker_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn log_file(&self, name: &str) -> Stdio {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("log file");
        Stdio::from(file)
    }

    /// Returns the manager's endpoint.
    pub fn addr(&self) -> String {
        format!("unix://{}", self.dir.path().join("manager.sock").display())
    }

    /// Returns the join token file the manager creates in its state folder.
    pub fn join_token(&self) -> PathBuf {
        self.dir.path().join("state").join("join-token")
    }

    fn start_manager(&mut self) {
        self.start_manager_with(&[]);
    }

    /// Starts the manager with `extra` flags after the usual ones.
    pub fn start_manager_with(&mut self, extra: &[&str]) {
        let lease = format!("{}ms", self.lease.as_millis());
        let child = Command::new(binary("herd-managerd"))
            .args(["--listen", &self.addr(), "--worker-lease", &lease])
            .args(["--queue-timeout", "5s"])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(self.log_file("manager"))
            .spawn()
            .expect("start herd-managerd");
        self.manager = Some(child);
        wait_for_path(&self.dir.path().join("manager.sock"));
    }

    /// Stops the manager with SIGTERM and reaps it.
    pub fn stop_manager(&mut self) {
        self.signal_manager(libc::SIGTERM);
    }

    /// Sends `signal` to the manager and reaps it.
    pub fn signal_manager(&mut self, signal: i32) {
        if let Some(mut manager) = self.manager.take() {
            // SAFETY: kill(2) on the pid of the manager this cluster started.
            unsafe { libc::kill(manager.id() as i32, signal) };
            let _ = manager.wait();
        }
    }

    /// Returns the cgroup parent a worker of this cluster uses.
    pub fn cgroup_parent(&self, id: &str) -> String {
        format!("{}-{id}", self.tag)
    }

    /// Starts (or restarts) worker `id`.
    pub fn start_worker(&mut self, id: &str) {
        self.start_worker_with(id, &[]);
    }

    /// Starts (or restarts) worker `id` with `extra` flags.
    pub fn start_worker_with(&mut self, id: &str, extra: &[&str]) {
        let socket = self.dir.path().join(format!("{id}.sock"));
        let mut command = Command::new(binary("herd-workerd"));
        // Flags in `extra` replace the usual manager and listen endpoints.
        if !extra.contains(&"--manager") {
            command.args(["--manager", &self.addr()]);
        }
        if !extra.contains(&"--listen") {
            command
                .arg("--listen")
                .arg(format!("unix://{}", socket.display()));
        }
        let child = command
            .args(["--id", id])
            .args(["--cgroup-parent", &self.cgroup_parent(id)])
            .arg("--state-dir")
            .arg(self.dir.path().join("worker-state"))
            .arg("--join-token-file")
            .arg(self.join_token())
            .args(extra)
            .envs(self.extra_worker_env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(self.log_file(id))
            .spawn()
            .expect("start herd-workerd");
        self.workers.insert(id.to_owned(), child);
    }

    /// Sends `signal` to worker `id` and reaps it.
    pub fn stop_worker(&mut self, id: &str, signal: i32) {
        let mut child = self.workers.remove(id).expect("worker was started");
        // SAFETY: kill(2) on the pid of a child this cluster started.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().expect("reap worker");
    }

    /// Returns the host processes in the cgroup of process `process_id` on
    /// worker `worker`, with their command lines.
    pub fn sandbox_processes(&self, worker: &str, process_id: &str) -> Vec<(u32, Vec<u8>)> {
        let mut found = Vec::new();
        for dir in cgroup_dirs_named(&self.cgroup_parent(worker)) {
            let procs = std::fs::read_to_string(dir.join(process_id).join("cgroup.procs"));
            for pid in procs.unwrap_or_default().lines() {
                let Ok(pid) = pid.trim().parse::<u32>() else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if !found.iter().any(|(known, _)| *known == pid) {
                    found.push((pid, cmdline));
                }
            }
        }
        found
    }

    /// Returns the pids of processes whose command line is exactly `argv`
    /// and whose cgroups belong to this cluster, so the test ignores
    /// processes of other tests.
    pub fn processes_named(&self, argv: &[&str]) -> Vec<u32> {
        pids_running(argv)
            .into_iter()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .is_ok_and(|cgroups| cgroups.contains(&self.tag))
            })
            .collect()
    }

    /// Returns the manager's pid.
    pub fn manager_pid(&self) -> u32 {
        self.manager.as_ref().expect("manager is running").id()
    }

    /// Returns the pid of worker `id`.
    pub fn worker_pid(&self, id: &str) -> u32 {
        self.workers[id].id()
    }

    /// Runs the CLI against this cluster.
    pub fn herd(&self, args: &[&str]) -> Output {
        Command::new(binary("herd"))
            .env("HERD_ADDR", self.addr())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run herd")
    }

    /// Runs the CLI with `env` added, such as another HERD_ADDR and the
    /// TLS files.
    pub fn herd_env(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(binary("herd"))
            .env("HERD_ADDR", self.addr())
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run herd")
    }

    /// Runs the CLI and returns its stdout, asserting it exited 0.
    pub fn herd_ok(&self, args: &[&str]) -> String {
        let output = self.herd(args);
        assert!(
            output.status.success(),
            "herd {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Starts a command detached and returns its id.
    pub fn run_detached(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "--detach"];
        full.extend_from_slice(args);
        self.herd_ok(&full).trim().to_owned()
    }

    /// Returns `herd status ID -o json`.
    pub fn status(&self, id: &str) -> Value {
        let text = self.herd_ok(&["status", id, "--output", "json"]);
        serde_json::from_str(&text).expect("status JSON")
    }

    /// Polls the status until `done` holds, and returns it.
    pub fn wait_status(&self, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            // The process may not exist yet while a client is still sending it.
            let output = self.herd(&["status", id, "--output", "json"]);
            let status: Value = match output.status.success() {
                true => serde_json::from_slice(&output.stdout).expect("status JSON"),
                false => Value::String(String::from_utf8_lossy(&output.stderr).into_owned()),
            };
            if output.status.success() && done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {id}: {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the stored output of process `id` is exactly `expected`,
    /// for a command that prints when it is ready to be signalled.
    pub fn wait_output(&self, id: &str, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.herd(&["logs", id]);
            if output.stdout == expected.as_bytes() {
                return;
            }
            let seen = String::from_utf8_lossy(&output.stdout);
            assert!(
                Instant::now() < deadline,
                "{id} printed {seen:?}, not {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until worker `id` is listed in `state`.
    pub fn wait_worker_state(&self, id: &str, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.herd(&["workers", "--output", "json"]);
            if output.status.success() {
                let workers: Value = serde_json::from_slice(&output.stdout).expect("JSON");
                let found = workers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|worker| worker["id"] == id && worker["state"] == state);
                if found {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "worker {id} not {state} in time; log:\n{}",
                self.log(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns the stderr log of the manager or a worker.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Returns the command cgroups under worker `id`'s parent in every
    /// hierarchy.
    pub fn command_cgroups(&self, id: &str) -> Vec<PathBuf> {
        let parent = self.cgroup_parent(id);
        let mut found = Vec::new();
        for dir in cgroup_dirs_named(&parent) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    found.push(entry.path());
                }
            }
        }
        found
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<String> = self.workers.keys().cloned().collect();
        for id in ids {
            self.stop_worker(&id, libc::SIGTERM);
        }
        self.stop_manager();
        for dir in cgroup_dirs_named(&self.tag) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Finds cgroup folders whose name starts with `prefix`, up to four levels
/// below /sys/fs/cgroup.
pub fn cgroup_dirs_named(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut frontier = vec![PathBuf::from("/sys/fs/cgroup")];
    for _ in 0..5 {
        let mut next = Vec::new();
        for dir in frontier {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    continue;
                }
                if entry.file_name().to_string_lossy().starts_with(prefix) {
                    found.push(entry.path());
                } else {
                    next.push(entry.path());
                }
            }
        }
        frontier = next;
    }
    found
}

/// Waits until a server accepts connections on the unix socket `path`; a
/// stale socket file left by a killed daemon does not count.
fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Returns the pids of host processes whose command line is exactly `argv`.
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|arg| [arg.as_bytes(), b"\0"].concat())
        .collect();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline == wanted {
            pids.push(pid);
        }
    }
    pids
}

/// Returns how many distinct PID namespaces the host's processes are in.
pub fn pid_namespace_count() -> usize {
    let mut namespaces = std::collections::HashSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(target) = std::fs::read_link(entry.path().join("ns/pid")) {
            namespaces.insert(target);
        }
    }
    namespaces.len()
}

/// Counts the entries of `/proc/PID/fd` or `/proc/PID/task`.
pub fn count_entries(pid: u32, folder: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{folder}"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Returns those of `processes` still alive: the same pid with the same
/// command line, so a reused pid does not count.
pub fn still_alive(processes: &[(u32, Vec<u8>)]) -> Vec<u32> {
    processes
        .iter()
        .filter(|(pid, cmdline)| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|now| now == *cmdline)
        })
        .map(|(pid, _)| *pid)
        .collect()
}

/// Returns the resident set size of process `pid` in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
