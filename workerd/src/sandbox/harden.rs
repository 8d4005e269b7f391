//! The last steps before the command's exec, run in the init's forked
//! child: drop every privilege the command must not have.
//!
//! The order matters. The bounding and ambient sets can only be cleared
//! while the process still has CAP_SETPCAP, so they go first. Then the
//! groups and ids change, which clears the other sets for a non-root user.
//! Last, every set is cleared explicitly, for a command that runs as root.

use std::io;

use caps::CapSet;

use super::identity::Identity;

/// A resource limit to set: `resource` is one of the RLIMIT_* numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Applies rlimits, identity, capabilities, no_new_privs and the fd policy.
/// Runs between fork and exec in the single-threaded init, so it may
/// allocate.
pub fn apply(identity: &Identity, rlimits: &[Rlimit]) -> io::Result<()> {
    for limit in rlimits {
        let value = libc::rlimit {
            rlim_cur: limit.soft,
            rlim_max: limit.hard,
        };
        // SAFETY: setrlimit reads one valid rlimit struct.
        if unsafe { libc::setrlimit(limit.resource as _, &value) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }

    caps::clear(None, CapSet::Ambient).map_err(io::Error::other)?;
    caps::clear(None, CapSet::Bounding).map_err(io::Error::other)?;

    // SAFETY: setgroups with a zero count reads no memory.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain syscalls on integer arguments.
    if unsafe { libc::setresgid(identity.gid, identity.gid, identity.gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(identity.uid, identity.uid, identity.uid) } != 0 {
        return Err(io::Error::last_os_error());
    }

    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(io::Error::other)?;
    }

    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }

    // Every descriptor above stderr closes at exec, including inherited ones.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if closed != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
