//! The init's privileged setup steps, run inside the new namespaces before
//! the command starts. Each step names itself in its error.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::mount::{MsFlags, mount};

/// A setup step that failed, with the path or value involved.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("failed to {step} {target}")]
    Mount {
        step: &'static str,
        target: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("failed to set the hostname to {hostname:?}")]
    Hostname {
        hostname: String,
        #[source]
        source: nix::Error,
    },
    #[error("failed to bring the loopback interface up")]
    Loopback(#[source] io::Error),
}

/// Makes every mount private to the sandbox, then mounts a fresh /proc for
/// the new PID namespace, a private /tmp, and (with a private network) a
/// fresh read-only /sys that shows only the sandbox's interfaces.
pub fn mount_filesystems(private_network: bool) -> Result<(), SetupError> {
    // Stop mount events propagating back to the host before mounting
    // anything.
    mount_step(
        "make private",
        "/",
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;

    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_step("mount proc on", "/proc", Some("proc"), hardened, None)?;

    if private_network {
        // sysfs shows the network devices of the namespace that mounts it.
        let flags = hardened | MsFlags::MS_RDONLY;
        mount_step("mount sysfs on", "/sys", Some("sysfs"), flags, None)?;
    }

    // Every world-writable scratch folder is private, so sandboxes share no
    // files through them and leave nothing behind.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for target in PRIVATE_TMPFS {
        if std::path::Path::new(target).is_dir() {
            mount_step(
                "mount tmpfs on",
                target,
                Some("tmpfs"),
                flags,
                Some("mode=1777"),
            )?;
        }
    }
    Ok(())
}

/// Folders that get a fresh tmpfs in every sandbox.
const PRIVATE_TMPFS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

fn mount_step(
    step: &'static str,
    target: &'static str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), SetupError> {
    mount(fstype.or(Some(target)), target, fstype, flags, data).map_err(|source| {
        SetupError::Mount {
            step,
            target,
            source,
        }
    })
}

/// Files under the fresh /proc through which root could change the host
/// kernel, made read-only. Missing ones (no /proc/bus without PCI) are
/// skipped.
const READ_ONLY_PROC: &[&str] = &["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"];

/// Bind-mounts each of [`READ_ONLY_PROC`] over itself read-only.
pub fn protect_proc() -> Result<(), SetupError> {
    for path in READ_ONLY_PROC {
        if !std::path::Path::new(path).exists() {
            continue;
        }
        mount_step("bind", path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None).and_then(
            |()| {
                let flags = MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC;
                mount_step("remount read-only", path, None, flags, None)
            },
        )?;
    }
    Ok(())
}

/// Sets the UTS namespace's hostname.
pub fn set_hostname(hostname: &str) -> Result<(), SetupError> {
    nix::unistd::sethostname(hostname).map_err(|source| SetupError::Hostname {
        hostname: hostname.to_owned(),
        source,
    })
}

/// Sets IFF_UP on `lo`, which a new network namespace starts with down.
pub fn bring_loopback_up() -> Result<(), SetupError> {
    // SAFETY: socket(2) returns a new descriptor or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(SetupError::Loopback(io::Error::last_os_error()));
    }
    // SAFETY: the socket was just created and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: ifreq is plain data for which all zeroes is valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(SetupError::Loopback(io::Error::last_os_error()));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the name and flags of `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(SetupError::Loopback(io::Error::last_os_error()));
    }
    Ok(())
}
