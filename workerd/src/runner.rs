//! The worker's running processes: starting each in a sandbox, following it
//! to its end, and terminating it on request.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herd_proto::v1::{Command, ExitStatus, Limits, Reason, Started, WorkerEvent, worker_event};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::cgroup::{self, CommandCgroup, Layout, Stats};
use crate::exit::{self, Ending};
use crate::output;
use crate::sandbox::{self, Identity, InitReport, Rlimit, SandboxSpec, identity};

/// PATH inside a sandbox unless the request sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long to wait for output pipes to close once the init has exited and
/// the cgroup is empty, before giving up on what is still buffered.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Signals the init forwards to the command; others go to the command
/// directly.
const FORWARDED: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Errors a caller of the runner can meet.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("process {0} is already running on this worker")]
    Duplicate(String),
    #[error("process {0} is not running on this worker")]
    NotFound(String),
    #[error("invalid command: {0}")]
    Invalid(String),
}

/// A live process, shared between its run task and terminate requests.
#[derive(Debug)]
struct Handle {
    pid: u32,
    pidfd: Arc<OwnedFd>,
    cgroup: Arc<CommandCgroup>,
    ending: Mutex<Ending>,
}

/// Settings from the worker's config that apply to every command.
#[derive(Debug, Clone)]
pub struct Settings {
    /// User for requests that name none.
    pub default_user: String,
    pub rlimits: Vec<Rlimit>,
    /// Whether commands may run as root.
    pub allow_root: bool,
    /// Users requests may name besides `default_user`, as configured.
    pub allowed_users: Vec<String>,
}

/// Starts and tracks the sandboxes of this worker.
#[derive(Debug)]
pub struct Runner {
    layout: Layout,
    settings: Settings,
    processes: Mutex<HashMap<String, Arc<Handle>>>,
}

impl Runner {
    pub fn new(layout: Layout, settings: Settings) -> Arc<Runner> {
        Arc::new(Runner {
            layout,
            settings,
            processes: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the ids of the processes running now.
    pub fn running_ids(&self) -> Vec<String> {
        let processes = self.processes.lock().expect("runner lock poisoned");
        processes.keys().cloned().collect()
    }

    /// Reads the current cgroup statistics of every running process.
    pub async fn sample(&self) -> HashMap<String, Stats> {
        let handles: Vec<(String, Arc<CommandCgroup>)> = {
            let processes = self.processes.lock().expect("runner lock poisoned");
            processes
                .iter()
                .map(|(id, handle)| (id.clone(), handle.cgroup.clone()))
                .collect()
        };
        tokio::task::spawn_blocking(move || {
            handles
                .into_iter()
                .map(|(id, cgroup)| (id, cgroup.stats()))
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Checks a request and builds the sandbox spec for it.
    pub fn prepare(&self, process_id: &str, command: &Command) -> Result<SandboxSpec, RunError> {
        if command.args.is_empty() || command.args[0].is_empty() {
            return Err(RunError::Invalid("args must name a program".into()));
        }
        if !command.workdir.is_empty() && !command.workdir.starts_with('/') {
            return Err(RunError::Invalid(format!(
                "workdir {:?} must be an absolute path",
                command.workdir
            )));
        }
        if self
            .processes
            .lock()
            .expect("runner lock poisoned")
            .contains_key(process_id)
        {
            return Err(RunError::Duplicate(process_id.to_owned()));
        }
        let user = match command.user.as_str() {
            "" => self.settings.default_user.as_str(),
            user => user,
        };
        let identity =
            identity::resolve(user).map_err(|error| RunError::Invalid(error.to_string()))?;
        let root = identity.uid == 0 || identity.gid == 0;
        if root && !self.settings.allow_root {
            return Err(RunError::Invalid(format!(
                "user {user:?} is root, which this worker does not allow; \
                 run as another user, or start the worker with --allow-root"
            )));
        }
        if !root && !self.user_allowed(&identity) {
            return Err(RunError::Invalid(format!(
                "user {user:?} is not allowed on this worker: commands run as {:?} unless \
                 the worker's allowed_users (--allow-user) names another",
                self.settings.default_user
            )));
        }
        Ok(build_spec(
            process_id,
            command,
            identity,
            &self.settings.rlimits,
        ))
    }

    /// Runs a process to its end, sending its events to `events`. The final
    /// event is always `finished`.
    pub async fn run(
        self: Arc<Self>,
        process_id: String,
        spec: SandboxSpec,
        limits: Limits,
        events: mpsc::Sender<WorkerEvent>,
    ) {
        let status = match self.start(&process_id, &spec, &limits).await {
            Ok(handle) => self.follow(&process_id, handle, &limits, &events).await,
            Err(error) => {
                tracing::warn!(process_id, error = %error, "failed to start sandbox");
                spawn_failed(format!("failed to start the sandbox: {error:#}"))
            }
        };
        let event = WorkerEvent {
            event: Some(worker_event::Event::Finished(status)),
        };
        let _ = events.send(event).await;
    }

    async fn start(
        &self,
        process_id: &str,
        spec: &SandboxSpec,
        limits: &Limits,
    ) -> anyhow::Result<(Arc<Handle>, sandbox::Sandbox)> {
        let layout = self.layout.clone();
        let name = process_id.to_owned();
        let cgroup_limits = cgroup::Limits {
            memory_bytes: limits.memory_bytes,
            cpus: limits.cpus,
            pids: limits.pids,
            io_read_bps: limits.io_read_bps,
            io_write_bps: limits.io_write_bps,
        };
        let spec = spec.clone();
        let (cgroup, sandbox) = tokio::task::spawn_blocking(move || {
            let cgroup = CommandCgroup::create(&layout, &name)?;
            let started = cgroup
                .apply_limits(&cgroup_limits)
                .map_err(anyhow::Error::from)
                .and_then(|()| sandbox::spawn(&cgroup, &spec).map_err(anyhow::Error::from));
            match started {
                Ok(sandbox) => Ok((cgroup, sandbox)),
                Err(error) => {
                    let _ = cgroup.remove();
                    Err(error)
                }
            }
        })
        .await??;
        let handle = Arc::new(Handle {
            pid: sandbox.pid,
            pidfd: Arc::new(sandbox.pidfd.try_clone()?),
            cgroup: Arc::new(cgroup),
            ending: Mutex::new(Ending::Natural),
        });
        let mut processes = self.processes.lock().expect("runner lock poisoned");
        processes.insert(process_id.to_owned(), handle.clone());
        Ok((handle, sandbox))
    }

    async fn follow(
        &self,
        process_id: &str,
        (handle, sandbox): (Arc<Handle>, sandbox::Sandbox),
        limits: &Limits,
        events: &mpsc::Sender<WorkerEvent>,
    ) -> ExitStatus {
        tracing::info!(process_id, pid = handle.pid, "sandbox started");
        let started = WorkerEvent {
            event: Some(worker_event::Event::Started(Started {
                host_pid: handle.pid,
            })),
        };
        let _ = events.send(started).await;

        let pump = tokio::spawn(output::pump(sandbox.stdout, sandbox.stderr, events.clone()));
        let oom_watch = watch_oom(process_id, &handle);
        let timeout = limits.timeout_ms.map(Duration::from_millis);
        let init_signal = wait_with_timeout(&handle, timeout, limits.timeout_ms).await;
        let report = read_report(sandbox.report).await;
        if let Some(watch) = oom_watch {
            watch.abort();
        }

        // The kernel kills the rest of the PID namespace when the init exits;
        // killing the cgroup also covers processes that are stopped or frozen.
        let cgroup = handle.cgroup.clone();
        let kill_result = tokio::task::spawn_blocking(move || cgroup.kill()).await;
        if let Ok(Err(error)) = kill_result {
            tracing::error!(process_id, error = %error, "failed to empty cgroup");
        }
        let summary = match tokio::time::timeout(OUTPUT_DRAIN, pump).await {
            Ok(Ok(Ok(summary))) => summary,
            _ => {
                tracing::warn!(process_id, "output pipes did not close; output may be cut");
                output::OutputSummary::default()
            }
        };

        let mut stats = self.finish_cgroup(process_id, &handle).await;
        self.processes
            .lock()
            .expect("runner lock poisoned")
            .remove(process_id);
        let ending = *handle.ending.lock().expect("ending lock poisoned");
        if ending == Ending::OutOfMemory {
            // The kernel's counter misses the kill the worker made for it.
            stats.oom_kills = Some(stats.oom_kills.unwrap_or(0) + 1);
        }
        let status = exit::build(
            report,
            init_signal,
            ending,
            &stats,
            summary.last_stderr_line.as_deref(),
        );
        tracing::info!(
            process_id,
            reason = Reason::try_from(status.reason)
                .unwrap_or_default()
                .short_name(),
            exit_code = status.exit_code,
            signal = status.signal,
            "process finished"
        );
        status
    }

    /// Reads the final statistics, then removes the cgroup.
    async fn finish_cgroup(&self, process_id: &str, handle: &Handle) -> Stats {
        let cgroup = handle.cgroup.clone();
        let (stats, removed) = tokio::task::spawn_blocking(move || {
            let stats = cgroup.stats();
            (stats, cgroup.remove())
        })
        .await
        .unwrap_or_else(|_| (Stats::default(), Ok(())));
        if let Err(error) = removed {
            tracing::error!(process_id, error = %error, "failed to remove cgroup");
        }
        stats
    }

    /// Sends SIGTERM (or `signal` alone), then after `grace` kills every
    /// process in the cgroup.
    pub fn terminate(
        self: &Arc<Self>,
        process_id: &str,
        grace: Duration,
        signal: Option<i32>,
    ) -> Result<(), RunError> {
        let handle = self
            .processes
            .lock()
            .expect("runner lock poisoned")
            .get(process_id)
            .cloned()
            .ok_or_else(|| RunError::NotFound(process_id.to_owned()))?;
        if let Some(signal) = signal {
            signal_command(&handle, signal);
            return Ok(());
        }
        *handle.ending.lock().expect("ending lock poisoned") = Ending::Terminated;
        send_signal(&handle.pidfd, libc::SIGTERM);
        let process_id = process_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if is_alive(&handle.pidfd) {
                tracing::info!(process_id, "grace period over; killing the process tree");
                kill_tree(&handle).await;
            }
        });
        Ok(())
    }

    /// Terminates every running process with `grace` and waits until all
    /// have ended, for a worker shutdown.
    pub async fn terminate_all(self: &Arc<Self>, grace: Duration) {
        for process_id in self.running_ids() {
            let _ = self.terminate(&process_id, grace, None);
            let processes = self.processes.lock().expect("runner lock poisoned");
            if let Some(handle) = processes.get(&process_id) {
                *handle.ending.lock().expect("ending lock poisoned") = Ending::WorkerShutdown;
            }
        }
        while !self.running_ids().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts a task that kills the sandbox when it reaches its v1 memory
/// limit, where the kernel's OOM killer is off for it.
fn watch_oom(process_id: &str, handle: &Arc<Handle>) -> Option<tokio::task::JoinHandle<()>> {
    let event = match handle.cgroup.watch_oom() {
        Ok(event) => event?,
        Err(error) => {
            tracing::error!(process_id, error = %error, "failed to watch for OOM");
            return None;
        }
    };
    let handle = handle.clone();
    let process_id = process_id.to_owned();
    Some(tokio::spawn(async move {
        // SAFETY: the task owns the eventfd for the AsyncFd's whole life.
        let Ok(watched) = (unsafe { AsyncFd::register(event) }) else {
            return;
        };
        if watched.readable().await.is_err() {
            return;
        }
        tracing::info!(process_id, "memory limit reached; killing the sandbox");
        {
            let mut ending = handle.ending.lock().expect("ending lock poisoned");
            if *ending == Ending::Natural {
                *ending = Ending::OutOfMemory;
            }
        }
        kill_tree(&handle).await;
    }))
}

/// Waits for the init to exit; kills the tree when the timeout runs out
/// first. Returns the signal that killed the init, if one did.
async fn wait_with_timeout(
    handle: &Handle,
    timeout: Option<Duration>,
    limit_ms: Option<u64>,
) -> Option<i32> {
    let wait = wait_exit(handle.pidfd.clone());
    tokio::pin!(wait);
    if let (Some(timeout), Some(limit_ms)) = (timeout, limit_ms) {
        tokio::select! {
            status = &mut wait => return status,
            () = tokio::time::sleep(timeout) => {
                *handle.ending.lock().expect("ending lock poisoned") = Ending::TimedOut { limit_ms };
                kill_tree(handle).await;
            }
        }
    }
    wait.await
}

async fn kill_tree(handle: &Handle) {
    let cgroup = handle.cgroup.clone();
    let _ = tokio::task::spawn_blocking(move || cgroup.kill()).await;
    send_signal(&handle.pidfd, libc::SIGKILL);
}

/// Waits until the init exits and reaps it; returns the signal that killed
/// it, or `None` when it exited.
async fn wait_exit(pidfd: Arc<OwnedFd>) -> Option<i32> {
    // SAFETY: the Arc keeps the pidfd open and unchanged for as long as the
    // AsyncFd holds its clone of it.
    let watched = match unsafe { AsyncFd::register(PidFd(pidfd.clone())) } {
        Ok(watched) => watched,
        Err(error) => {
            let error = error.into_parts().1;
            tracing::error!(error = %error, "failed to watch pidfd; waiting on a thread");
            return tokio::task::spawn_blocking(move || reap(&pidfd))
                .await
                .ok()
                .flatten();
        }
    };
    let _ = watched.readable().await;
    reap(&pidfd)
}

/// Reaps the init through its pidfd.
fn reap(pidfd: &OwnedFd) -> Option<i32> {
    // SAFETY: siginfo_t is plain data for which all zeroes is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only to `info`; P_PIDFD names our own child.
    let result = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        )
    };
    if result < 0 {
        return None;
    }
    // SAFETY: waitid filled a SIGCHLD siginfo, whose si_status is valid.
    let status = unsafe { info.si_status() };
    match info.si_code {
        libc::CLD_KILLED | libc::CLD_DUMPED => Some(status),
        _ => None,
    }
}

fn is_alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let result = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    result == 0
}

fn send_signal(pidfd: &OwnedFd, signal: i32) {
    // SAFETY: pidfd_send_signal on a pidfd we own; a dead process makes it
    // fail with ESRCH, which is fine.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Delivers a user-chosen signal: through the init for the ones it
/// forwards, otherwise straight to the init's children, because PID 1 of a
/// namespace ignores signals it has no handler for.
fn signal_command(handle: &Handle, signal: i32) {
    if FORWARDED.contains(&signal) {
        send_signal(&handle.pidfd, signal);
        return;
    }
    let path = format!("/proc/{0}/task/{0}/children", handle.pid);
    let children = std::fs::read_to_string(path).unwrap_or_default();
    for child in children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<i32>().ok())
    {
        // SAFETY: kill(2) has no memory-safety requirements.
        unsafe { libc::kill(child, signal) };
    }
}

async fn read_report(report: OwnedFd) -> Option<InitReport> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut bytes = Vec::new();
        let _ = std::fs::File::from(report).read_to_end(&mut bytes);
        InitReport::parse(&bytes)
    })
    .await
    .ok()
    .flatten()
}

fn spawn_failed(message: String) -> ExitStatus {
    ExitStatus {
        reason: Reason::SpawnFailed as i32,
        exit_code: Some(125),
        signal: None,
        error: message,
        metrics: None,
    }
}

/// Builds the spec: the environment is PATH, HOME and TERM, then the
/// request's variables, which may replace those three.
impl Runner {
    /// Reports whether `identity` is the default user or one the worker
    /// allows. Names resolve anew each time, as the user database may
    /// change.
    fn user_allowed(&self, identity: &identity::Identity) -> bool {
        let same = |user: &str| {
            identity::resolve(user)
                .is_ok_and(|allowed| (allowed.uid, allowed.gid) == (identity.uid, identity.gid))
        };
        same(&self.settings.default_user) || self.settings.allowed_users.iter().any(|u| same(u))
    }
}

fn build_spec(
    process_id: &str,
    command: &Command,
    identity: Identity,
    rlimits: &[Rlimit],
) -> SandboxSpec {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), identity.home.clone()),
        ("TERM".into(), "dumb".into()),
    ];
    for (name, value) in &command.env {
        env.retain(|(existing, _)| existing != name);
        env.push((name.clone(), value.clone()));
    }
    let workdir = if command.workdir.is_empty() {
        "/".to_owned()
    } else {
        command.workdir.clone()
    };
    SandboxSpec {
        args: command.args.clone(),
        env,
        identity,
        rlimits: rlimits.to_vec(),
        workdir,
        hostname: process_id.chars().take(64).collect(),
        host_network: command.network == herd_proto::v1::NetworkMode::Host as i32,
    }
}

/// A shared pidfd that tokio can watch.
struct PidFd(Arc<OwnedFd>);

impl AsRawFd for PidFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
