//! The sandbox init: PID 1 of the new PID namespace.
//!
//! It reads its spec, sets up the mounts, hostname and loopback, starts the
//! command as PID 2, forwards termination signals to it, reaps every child
//! including orphans, and exits with the command's status (128 + N for
//! signal N). When it exits the kernel kills whatever else is left in the
//! namespace. It runs single-threaded, so it may use std freely.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{InitReport, SandboxSpec, fds, harden, setup};

/// Signals the init passes on to the command.
const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Exit code for a setup failure of the init itself, as docker uses 125.
const SETUP_FAILED: i32 = 125;

/// Runs the init and exits the process.
pub fn main() -> ! {
    // SAFETY: the worker placed the report pipe's write end on this number
    // before exec, and nothing else in this process owns it.
    let mut report_pipe = unsafe { File::from_raw_fd(fds::REPORT) };
    let report = run();
    let mut line = serde_json::to_vec(&report).expect("a report always serializes");
    line.push(b'\n');
    // The worker falls back to the exit status if the report is lost.
    let _ = report_pipe.write_all(&line);
    std::process::exit(report.exit_code());
}

fn run() -> InitReport {
    let spec = match read_spec() {
        Ok(spec) => spec,
        Err(error) => return setup_failed(format!("failed to read the sandbox spec: {error}")),
    };
    if let Err(error) = prepare(&spec) {
        return setup_failed(error.to_string());
    }

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        mask.add(*signal);
    }
    // Block the signals before the command exists, so none is lost between
    // its start and the first wait.
    if let Err(error) = mask.thread_block() {
        return setup_failed(format!("failed to block signals: {error}"));
    }
    let child = match start_command(&spec) {
        Ok(pid) => pid,
        Err(report) => return report,
    };
    protect_from_oom_killer();
    supervise(child, &mask)
}

fn setup_failed(message: String) -> InitReport {
    eprintln!("herd-init: {message}");
    InitReport::SpawnFailed {
        code: SETUP_FAILED,
        message,
    }
}

fn read_spec() -> io::Result<SandboxSpec> {
    // SAFETY: the worker placed the spec pipe's read end on this number
    // before exec, and nothing else in this process owns it.
    let mut pipe = unsafe { File::from_raw_fd(fds::SPEC) };
    let mut json = Vec::new();
    pipe.read_to_end(&mut json)?;
    serde_json::from_slice(&json).map_err(io::Error::other)
}

fn prepare(spec: &SandboxSpec) -> Result<(), setup::SetupError> {
    // The report pipe must not reach the command.
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe { libc::fcntl(fds::REPORT, libc::F_SETFD, libc::FD_CLOEXEC) };
    setup::mount_filesystems(!spec.host_network)?;
    setup::protect_proc()?;
    setup::set_hostname(&spec.hostname)?;
    if !spec.host_network {
        setup::bring_loopback_up()?;
    }
    Ok(())
}

/// Starts the command as the init's only direct child, with every signal
/// unblocked and at its default action, as the requested user, without
/// capabilities and with no_new_privs set.
fn start_command(spec: &SandboxSpec) -> Result<Pid, InitReport> {
    if let Err(error) = std::env::set_current_dir(&spec.workdir) {
        let message = format!("invalid working directory {}: {error}", spec.workdir);
        eprintln!("herd: {message}");
        return Err(InitReport::SpawnFailed { code: 126, message });
    }
    let mut command = Command::new(&spec.args[0]);
    command
        .args(&spec.args[1..])
        .env_clear()
        .envs(spec.env.iter().cloned());
    let identity = spec.identity.clone();
    let rlimits = spec.rlimits.clone();
    // SAFETY: the init is single-threaded, so the forked child may do
    // anything the parent could, allocation included.
    unsafe {
        command.pre_exec(move || {
            reset_signals()?;
            harden::apply(&identity, &rlimits)
        })
    };
    match command.spawn() {
        Ok(child) => Ok(Pid::from_raw(child.id() as i32)),
        Err(error) => {
            let (code, message) = describe_spawn_error(&spec.args[0], &error);
            eprintln!("herd: {message}");
            Err(InitReport::SpawnFailed { code, message })
        }
    }
}

/// Unblocks every signal and restores each default action, because the
/// init blocks the signals it forwards and dispositions set to ignore
/// survive exec. Runs between fork and exec.
fn reset_signals() -> io::Result<()> {
    // SAFETY: an all-zero sigset_t is a valid empty set on Linux.
    let empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigprocmask with a valid set and no old-set pointer.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for signal in 1..libc::SIGRTMIN() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: signal(2) with SIG_DFL is async-signal-safe; invalid
            // numbers only return an error.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    Ok(())
}

/// Maps a spawn error to a shell's exit code and message.
fn describe_spawn_error(program: &str, error: &io::Error) -> (i32, String) {
    match error.kind() {
        io::ErrorKind::NotFound => (127, format!("{program}: command not found")),
        io::ErrorKind::PermissionDenied => (126, format!("{program}: permission denied")),
        _ => (126, format!("{program}: cannot run: {error}")),
    }
}

/// Makes the OOM killer never pick the init, so an out-of-memory command is
/// the one killed and reported. Set after the command started, because a
/// child inherits the value.
fn protect_from_oom_killer() {
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
}

/// Waits for signals: forwards termination signals to the command, reaps
/// every exited child, and returns once the command itself has exited.
fn supervise(child: Pid, mask: &SigSet) -> InitReport {
    loop {
        let signal = match mask.wait() {
            Ok(signal) => signal,
            Err(_) => continue,
        };
        if signal != Signal::SIGCHLD {
            // The command may have exited already; ESRCH is harmless.
            let _ = kill(child, signal);
            continue;
        }
        if let Some(report) = reap_all(child) {
            return report;
        }
    }
}

/// Reaps every exited child without blocking; returns the command's report
/// if it was among them.
fn reap_all(child: Pid) -> Option<InitReport> {
    let mut report = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                report = Some(InitReport::Exited { code });
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                report = Some(InitReport::Signaled {
                    signal: signal as i32,
                });
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return report,
            Ok(_) => continue,
        }
    }
}
