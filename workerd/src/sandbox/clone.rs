//! Starting the sandbox init: clone3 into new namespaces and the command's
//! cgroup, then exec of the worker binary.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::cgroup::{CgroupError, CommandCgroup};

use super::{INIT_SUBCOMMAND, SandboxSpec, fds};

/// A started sandbox init and the host's ends of its pipes.
#[derive(Debug)]
pub struct Sandbox {
    /// The init's pid in the worker's PID namespace.
    pub pid: u32,
    /// A pidfd for the init, which becomes readable when it exits.
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub report: OwnedFd,
}

/// Errors from starting a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("failed to {step}")]
    Io {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to place the sandbox init (pid {pid}) in its cgroup")]
    Attach {
        pid: u32,
        #[source]
        source: CgroupError,
    },
}

fn io_error(step: &'static str) -> impl FnOnce(io::Error) -> SpawnError {
    move |source| SpawnError::Io { step, source }
}

/// The kernel's `struct clone_args` (linux/sched.h), version 2 (88 bytes,
/// Linux 5.7+), which adds `cgroup` for `CLONE_INTO_CGROUP`.
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Everything the child needs after clone, prepared beforehand because the
/// child of a multi-threaded process may not allocate.
struct ChildPlan {
    exe: CString,
    argv: [*const libc::c_char; 3],
    envp: [*const libc::c_char; 1],
    /// `(source, target)` pairs for dup2; every source is above 4, so no
    /// dup2 overwrites a later source.
    fds: [(RawFd, RawFd); 5],
}

/// Starts the sandbox init in `cgroup` and sends it `spec`.
pub fn spawn(cgroup: &CommandCgroup, spec: &SandboxSpec) -> Result<Sandbox, SpawnError> {
    let (stdout_read, stdout_write) = pipe()?;
    let (stderr_read, stderr_write) = pipe()?;
    let (spec_read, spec_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let devnull = File::open("/dev/null").map_err(io_error("open /dev/null"))?;
    let child_fds = [
        high_fd(devnull.into())?,
        high_fd(stdout_write)?,
        high_fd(stderr_write)?,
        high_fd(spec_read)?,
        high_fd(report_write)?,
    ];
    let cgroup_dir = cgroup.v2_dir().map(open_dir).transpose()?;

    let exe = CString::new("/proc/self/exe").expect("no NUL in a literal");
    let arg0 = CString::new("herd-init").expect("no NUL in a literal");
    let arg1 = CString::new(INIT_SUBCOMMAND).expect("no NUL in a literal");
    let plan = ChildPlan {
        argv: [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()],
        envp: [std::ptr::null()],
        exe,
        fds: [
            (child_fds[0].as_raw_fd(), 0),
            (child_fds[1].as_raw_fd(), 1),
            (child_fds[2].as_raw_fd(), 2),
            (child_fds[3].as_raw_fd(), fds::SPEC),
            (child_fds[4].as_raw_fd(), fds::REPORT),
        ],
    };
    let mut flags = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_PIDFD;
    if !spec.host_network {
        flags |= libc::CLONE_NEWNET;
    }
    let (pid, pidfd) = clone_init(flags as u64, cgroup_dir.as_ref(), &plan)?;
    drop(child_fds);

    let mut sandbox = Sandbox {
        pid,
        pidfd,
        stdout: stdout_read,
        stderr: stderr_read,
        report: report_read,
    };
    if let Err(error) = finish_start(&mut sandbox, cgroup, spec, spec_write) {
        kill_and_reap(&sandbox);
        return Err(error);
    }
    Ok(sandbox)
}

/// Joins the v1 cgroups and sends the spec. The init blocks on the spec
/// pipe until then, so no command code runs outside its cgroups.
fn finish_start(
    sandbox: &mut Sandbox,
    cgroup: &CommandCgroup,
    spec: &SandboxSpec,
    spec_write: OwnedFd,
) -> Result<(), SpawnError> {
    cgroup
        .attach_v1(sandbox.pid)
        .map_err(|source| SpawnError::Attach {
            pid: sandbox.pid,
            source,
        })?;
    let json = serde_json::to_vec(spec).expect("a spec always serializes");
    let mut pipe = File::from(spec_write);
    pipe.write_all(&json)
        .map_err(io_error("send the spec to the sandbox init"))
}

fn kill_and_reap(sandbox: &Sandbox) {
    // SAFETY: pidfd_send_signal on a pidfd this function's caller owns; a
    // process that is gone only makes the call fail.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            sandbox.pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    let mut status = 0;
    // SAFETY: waits for our own child by pid, writing only to `status`.
    unsafe { libc::waitpid(sandbox.pid as libc::pid_t, &mut status, 0) };
}

fn clone_init(
    flags: u64,
    cgroup_dir: Option<&OwnedFd>,
    plan: &ChildPlan,
) -> Result<(u32, OwnedFd), SpawnError> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(dir) = cgroup_dir {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }

    // SAFETY: `args` is a valid clone_args of the size passed. With stack 0
    // the child runs on a copy of this thread's stack like fork(2). The
    // child calls only `exec_child`, which is async-signal-safe, so the
    // locks other threads held at clone time are never touched.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        exec_child(plan);
    }
    if ret < 0 {
        return Err(SpawnError::Io {
            step: "clone the sandbox init into new namespaces",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: CLONE_PIDFD made the kernel store a new pidfd that nothing
    // else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((ret as u32, pidfd))
}

/// Runs in the child between clone and exec: only dup2, execve and _exit,
/// all async-signal-safe and allocation-free.
fn exec_child(plan: &ChildPlan) -> ! {
    for (source, target) in plan.fds {
        // SAFETY: both are valid descriptor numbers; dup2 clears
        // close-on-exec on the target, which is what the init needs.
        if unsafe { libc::dup2(source, target) } < 0 {
            // SAFETY: _exit never returns and runs no atexit handlers.
            unsafe { libc::_exit(125) };
        }
    }
    // Descriptors the worker inherited without close-on-exec (from the
    // shell or unit that started it) must not reach the init.
    // SAFETY: close_range is a raw syscall that only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            5u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    // SAFETY: exe, argv and envp are NUL-terminated and outlive this call,
    // because the parent's copy of `plan` is in this address space.
    unsafe { libc::execve(plan.exe.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
    // SAFETY: as above.
    unsafe { libc::_exit(125) }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `ends`.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io_error("create a pipe")(io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are new and unowned.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// Duplicates `fd` to a number above 4, so the child's dup2 onto 0-4 never
/// overwrites another source.
fn high_fd(fd: OwnedFd) -> Result<OwnedFd, SpawnError> {
    // SAFETY: F_DUPFD_CLOEXEC on an fd we own returns a new unowned fd.
    let raw = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5) };
    if raw < 0 {
        return Err(io_error("duplicate a descriptor")(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fcntl returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn open_dir(path: &Path) -> Result<OwnedFd, SpawnError> {
    let file = File::open(path).map_err(io_error("open the command's cgroup"))?;
    Ok(file.into())
}
