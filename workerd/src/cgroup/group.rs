//! One command's cgroup: a directory in the v2 hierarchy and in each v1
//! hierarchy the host mounts.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::stats::Stats;
use super::{CgroupError, Layout, Limits, read_file, write_file};

/// CFS period used for CPU quotas, in microseconds (the kernel's default).
const CPU_PERIOD_USEC: u64 = 100_000;

/// How long to wait for killed processes to leave a cgroup before removal
/// gives up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The cgroup of one command, present in every hierarchy of the layout.
#[derive(Debug)]
pub struct CommandCgroup {
    name: String,
    layout: Layout,
    v2_dir: Option<PathBuf>,
    v1_dirs: Vec<PathBuf>,
}

impl CommandCgroup {
    /// Creates the cgroup `name` under the worker's parent in every
    /// hierarchy. A cgroup that exists already is an error, because a v2
    /// cgroup that has been killed once kills any process placed in it later.
    pub fn create(layout: &Layout, name: &str) -> Result<CommandCgroup, CgroupError> {
        let mut cgroup = CommandCgroup {
            name: name.to_owned(),
            layout: layout.clone(),
            v2_dir: None,
            v1_dirs: Vec::new(),
        };
        if let Some(parent) = &layout.v2_parent {
            let dir = parent.join(name);
            make_dir(&dir)?;
            cgroup.v2_dir = Some(dir);
        }
        for parent in layout.v1_parents.values() {
            let dir = parent.join(name);
            if cgroup.v1_dirs.contains(&dir) {
                continue;
            }
            if let Err(error) = make_dir(&dir) {
                cgroup.remove_dirs();
                return Err(error);
            }
            cgroup.v1_dirs.push(dir);
        }
        Ok(cgroup)
    }

    /// Returns the command's v2 directory, into which the sandbox is cloned.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2_dir.as_deref()
    }

    /// Writes the limits into the controllers' files. A limit whose
    /// controller the host lacks is an error, never silently dropped.
    pub fn apply_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        if let Some(bytes) = limits.memory_bytes {
            self.limit_memory(bytes)?;
        }
        if let Some(cpus) = limits.cpus {
            self.limit_cpu(cpus)?;
        }
        if let Some(pids) = limits.pids {
            let dir = self.dir_of("pids", "pids")?.0;
            write_file(dir.join("pids.max"), &pids.to_string())?;
        }
        if limits.io_read_bps.is_some() || limits.io_write_bps.is_some() {
            self.limit_io(limits.io_read_bps, limits.io_write_bps)?;
        }
        Ok(())
    }

    /// Throttles every disk of the host: v1 blkio.throttle files take one
    /// device per write, v2 io.max takes both rates on one line.
    fn limit_io(&self, read_bps: Option<u64>, write_bps: Option<u64>) -> Result<(), CgroupError> {
        let (dir, v2) = match self.layout.controller_dir("blkio", &self.name) {
            Some(found) => found,
            None => self.dir_of("io", "io bandwidth")?,
        };
        for device in disks(&self.layout.sys_block)? {
            if v2 {
                let mut line = device.clone();
                if let Some(bps) = read_bps {
                    line.push_str(&format!(" rbps={bps}"));
                }
                if let Some(bps) = write_bps {
                    line.push_str(&format!(" wbps={bps}"));
                }
                write_file(dir.join("io.max"), &line)?;
                continue;
            }
            if let Some(bps) = read_bps {
                let path = dir.join("blkio.throttle.read_bps_device");
                write_file(path, &format!("{device} {bps}"))?;
            }
            if let Some(bps) = write_bps {
                let path = dir.join("blkio.throttle.write_bps_device");
                write_file(path, &format!("{device} {bps}"))?;
            }
        }
        Ok(())
    }

    fn limit_memory(&self, bytes: u64) -> Result<(), CgroupError> {
        let (dir, v2) = self.dir_of("memory", "memory")?;
        if v2 {
            write_file(dir.join("memory.max"), &bytes.to_string())?;
            // Swap off, so the limit is a real ceiling and OOM comes at once.
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write_file(swap, "0")?;
            }
            // An OOM kill takes the whole sandbox, so a shell does not live
            // on to report its child's death as an ordinary exit.
            return write_file(dir.join("memory.oom.group"), "1").or_else(ignore_missing);
        }
        write_file(dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
        // memory.memsw.* exists only when the kernel accounts swap; setting it
        // equal to the memory limit allows no swap at all.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write_file(memsw, &bytes.to_string())?;
        }
        write_file(dir.join("memory.swappiness"), "0").or_else(ignore_missing)?;
        // v1 has no memory.oom.group, so the kernel's OOM killer is turned
        // off here and the worker kills the whole sandbox when notified (see
        // `watch_oom`). Tasks at the limit wait until then.
        write_file(dir.join("memory.oom_control"), "1")
    }

    /// Returns an eventfd that becomes readable when the command hits its
    /// memory limit on a v1 memory controller, where the worker itself
    /// kills the sandbox. `None` on v2, where the kernel kills the group.
    pub fn watch_oom(&self) -> Result<Option<OwnedFd>, CgroupError> {
        let Some((dir, false)) = self.layout.controller_dir("memory", &self.name) else {
            return Ok(None);
        };
        let control_path = dir.join("memory.oom_control");
        let control = std::fs::File::open(&control_path).map_err(|source| CgroupError::Read {
            path: control_path.clone(),
            source,
        })?;
        // SAFETY: eventfd returns a new descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(CgroupError::Read {
                path: control_path,
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: eventfd succeeded, so nothing else owns the descriptor.
        let event = unsafe { OwnedFd::from_raw_fd(raw) };
        let registration = format!("{} {}", event.as_raw_fd(), control.as_raw_fd());
        write_file(dir.join("cgroup.event_control"), &registration)?;
        Ok(Some(event))
    }

    fn limit_cpu(&self, cpus: f64) -> Result<(), CgroupError> {
        let (dir, v2) = self.dir_of("cpu", "cpu")?;
        let quota = ((cpus * CPU_PERIOD_USEC as f64).round() as u64).max(1000);
        if v2 {
            return write_file(dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_USEC}"));
        }
        write_file(dir.join("cpu.cfs_period_us"), &CPU_PERIOD_USEC.to_string())?;
        write_file(dir.join("cpu.cfs_quota_us"), &quota.to_string())
    }

    fn dir_of(
        &self,
        controller: &'static str,
        limit: &'static str,
    ) -> Result<(PathBuf, bool), CgroupError> {
        self.layout
            .controller_dir(controller, &self.name)
            .ok_or(CgroupError::MissingController { controller, limit })
    }

    /// Moves `pid` into the command's v1 cgroups. On a host with cgroup v2
    /// the process is already in its v2 cgroup from birth.
    pub fn attach_v1(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in &self.v1_dirs {
            write_file(dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Reads the cgroup's statistics; figures the host lacks stay `None`.
    pub fn stats(&self) -> Stats {
        Stats::read(&self.layout, &self.name)
    }

    /// Reports whether no process is left in any of the command's cgroups.
    pub fn is_empty(&self) -> bool {
        self.all_dirs().all(|dir| list_pids(dir).is_empty())
    }

    /// Kills every process in the cgroup, including stopped and frozen ones
    /// and those in new sessions, and waits until the cgroup is empty.
    pub fn kill(&self) -> Result<(), CgroupError> {
        let kill_file = self.v2_dir.as_ref().map(|dir| dir.join("cgroup.kill"));
        match kill_file {
            Some(path) if path.exists() => write_file(path, "1")?,
            _ => self.kill_frozen()?,
        }
        self.wait_empty()
    }

    /// Kills without `cgroup.kill`: freezes the cgroup so no process can fork
    /// while the list is read, sends SIGKILL to each, then thaws it so the
    /// signals are delivered.
    fn kill_frozen(&self) -> Result<(), CgroupError> {
        let freezer = self.layout.controller_dir("freezer", &self.name);
        if let Some((dir, _)) = &freezer {
            write_file(dir.join("freezer.state"), "FROZEN")?;
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let pids: Vec<u32> = self.all_dirs().flat_map(|dir| list_pids(dir)).collect();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: kill(2) has no memory-safety requirements; a pid
                // that exited meanwhile only makes it fail with ESRCH.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            if let Some((dir, _)) = &freezer {
                write_file(dir.join("freezer.state"), "THAWED")?;
            }
            thread::sleep(Duration::from_millis(5));
        }
        if let Some((dir, _)) = &freezer {
            write_file(dir.join("freezer.state"), "THAWED")?;
        }
        Ok(())
    }

    fn wait_empty(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while !self.is_empty() {
            if Instant::now() > deadline {
                let path = self.all_dirs().next().cloned().unwrap_or_default();
                return Err(CgroupError::NotEmpty { path });
            }
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// Kills what is left and removes the cgroup from every hierarchy.
    pub fn remove(&self) -> Result<(), CgroupError> {
        if !self.is_empty() {
            self.kill()?;
        }
        for dir in self.all_dirs() {
            remove_dir(dir)?;
        }
        Ok(())
    }

    /// Removes the directories created so far, ignoring errors, after a
    /// failed creation.
    fn remove_dirs(&self) {
        for dir in self.all_dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }

    fn all_dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.v2_dir.iter().chain(self.v1_dirs.iter())
    }

    /// Returns a handle to an existing cgroup, for removing what an earlier
    /// run of the worker left behind.
    pub fn existing(layout: &Layout, name: &str) -> CommandCgroup {
        let v2_dir = layout
            .v2_parent
            .as_ref()
            .map(|parent| parent.join(name))
            .filter(|dir| dir.is_dir());
        let mut v1_dirs = Vec::new();
        for parent in layout.v1_parents.values() {
            let dir = parent.join(name);
            if dir.is_dir() && !v1_dirs.contains(&dir) {
                v1_dirs.push(dir);
            }
        }
        CommandCgroup {
            name: name.to_owned(),
            layout: layout.clone(),
            v2_dir,
            v1_dirs,
        }
    }
}

/// Returns `MAJ:MIN` of each disk under `sys_block` (normally /sys/block),
/// skipping loop, RAM and zram devices, which are memory, not disks.
fn disks(sys_block: &Path) -> Result<Vec<String>, CgroupError> {
    let entries = std::fs::read_dir(sys_block).map_err(|source| CgroupError::Read {
        path: sys_block.to_owned(),
        source,
    })?;
    let mut devices = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "zram"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let device = read_file(entry.path().join("dev"))?;
        devices.push(device.trim().to_owned());
    }
    devices.sort();
    Ok(devices)
}

fn ignore_missing(error: CgroupError) -> Result<(), CgroupError> {
    match &error {
        CgroupError::Write { source, .. } if source.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => Err(error),
    }
}

fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir(dir).map_err(|source| CgroupError::Create {
        path: dir.to_owned(),
        source,
    })
}

/// Removes a cgroup directory, retrying while the kernel still reports it
/// busy: the last exiting task can leave it EBUSY for a moment.
fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error)
                if error.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_owned(),
                    source,
                });
            }
        }
    }
}

fn list_pids(dir: &Path) -> Vec<u32> {
    read_file(dir.join("cgroup.procs"))
        .map(|text| {
            text.lines()
                .filter_map(|line| line.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates the worker's parent cgroups and, on cgroup v2, enables the
/// controllers the commands need along the way. When the worker's own v2
/// cgroup must delegate controllers but contains the worker itself, the
/// worker first moves into a leaf named `leaf`, because the kernel lets only
/// cgroups without processes enable controllers for their children.
pub fn prepare_parents(layout: &Layout, leaf: &str) -> Result<(), CgroupError> {
    if let (Some(own), Some(parent)) = (&layout.v2_own, &layout.v2_parent) {
        let wanted = v2_wanted(layout);
        if !wanted.is_empty() {
            enable_controllers(own, &wanted, leaf)?;
        }
        let mut dir = own.clone();
        for part in parent
            .strip_prefix(own)
            .unwrap_or(Path::new(""))
            .components()
        {
            dir.push(part);
            make_dir(&dir).or_else(ignore_exists)?;
            if !wanted.is_empty() {
                write_subtree_control(&dir, &wanted)?;
            }
        }
    }
    for dir in layout.v1_parents.values() {
        std::fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(())
}

fn v2_wanted(layout: &Layout) -> Vec<String> {
    ["memory", "cpu", "pids", "io"]
        .iter()
        .filter(|name| layout.v2_controllers.iter().any(|c| c == *name))
        .map(|name| (*name).to_owned())
        .collect()
}

fn enable_controllers(own: &Path, wanted: &[String], leaf: &str) -> Result<(), CgroupError> {
    let enabled = read_file(own.join("cgroup.subtree_control"))?;
    if wanted
        .iter()
        .all(|name| enabled.split_whitespace().any(|e| e == name))
    {
        return Ok(());
    }
    match write_subtree_control(own, wanted) {
        Err(CgroupError::Write { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
            let leaf_dir = own.join(leaf);
            make_dir(&leaf_dir).or_else(ignore_exists)?;
            let procs = read_file(own.join("cgroup.procs"))?;
            for pid in procs.lines() {
                // Threads of other processes may also sit here under a
                // delegated unit; move them all, as systemd expects of a
                // delegate.
                write_file(leaf_dir.join("cgroup.procs"), pid).or_else(ignore_gone)?;
            }
            write_subtree_control(own, wanted)
        }
        other => other,
    }
}

fn write_subtree_control(dir: &Path, wanted: &[String]) -> Result<(), CgroupError> {
    let value: Vec<String> = wanted.iter().map(|name| format!("+{name}")).collect();
    write_file(dir.join("cgroup.subtree_control"), &value.join(" "))
}

fn ignore_exists(error: CgroupError) -> Result<(), CgroupError> {
    match &error {
        CgroupError::Create { source, .. } if source.kind() == io::ErrorKind::AlreadyExists => {
            Ok(())
        }
        _ => Err(error),
    }
}

fn ignore_gone(error: CgroupError) -> Result<(), CgroupError> {
    match &error {
        CgroupError::Write { source, .. } if source.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        _ => Err(error),
    }
}

/// Lists the names of command cgroups under the worker's parents, skipping
/// `leaf`, the worker's own cgroup.
pub fn list_children(layout: &Layout, leaf: &str) -> Vec<String> {
    let mut names = Vec::new();
    for parent in layout.parent_dirs() {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_dir && name != leaf && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Builds a layout rooted in a tempdir: a v2 parent with `v2_controllers`
    /// and a v1 parent for each controller in `v1`.
    fn fixture(root: &Path, v2_controllers: &[&str], v1: &[&str]) -> Layout {
        let v2_parent = root.join("unified/herd");
        std::fs::create_dir_all(&v2_parent).unwrap();
        let mut v1_parents = BTreeMap::new();
        for controller in v1 {
            let dir = root.join(controller).join("herd");
            std::fs::create_dir_all(&dir).unwrap();
            v1_parents.insert((*controller).to_owned(), dir);
        }
        std::fs::create_dir_all(root.join("block/vda")).unwrap();
        std::fs::write(root.join("block/vda/dev"), "254:0\n").unwrap();
        std::fs::create_dir_all(root.join("block/loop0")).unwrap();
        Layout {
            sys_block: root.join("block"),
            v2_own: Some(root.join("unified")),
            v2_parent: Some(v2_parent),
            v2_controllers: v2_controllers.iter().map(|c| (*c).to_owned()).collect(),
            v1_parents,
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn v2_limits_go_to_v2_files() {
        let root = tempfile::tempdir().unwrap();
        let layout = fixture(root.path(), &["memory", "cpu", "pids", "io"], &[]);
        let cgroup = CommandCgroup::create(&layout, "p1").unwrap();
        let dir = root.path().join("unified/herd/p1");
        std::fs::write(dir.join("memory.swap.max"), "max").unwrap();
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(32),
            io_read_bps: Some(1 << 20),
            io_write_bps: Some(2 << 20),
        };
        cgroup.apply_limits(&limits).unwrap();
        assert_eq!(read(dir.join("io.max")), "254:0 rbps=1048576 wbps=2097152");
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("memory.oom.group")), "1");
        assert_eq!(read(dir.join("cpu.max")), "50000 100000");
        assert_eq!(read(dir.join("pids.max")), "32");
        assert_eq!(cgroup.v2_dir(), Some(dir.as_path()));
    }

    #[test]
    fn hybrid_limits_go_to_v1_files() {
        let root = tempfile::tempdir().unwrap();
        let layout = fixture(root.path(), &[], &["memory", "cpu", "pids", "blkio"]);
        let cgroup = CommandCgroup::create(&layout, "p1").unwrap();
        let memory = root.path().join("memory/herd/p1");
        std::fs::write(memory.join("memory.memsw.limit_in_bytes"), "").unwrap();
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            cpus: Some(2.0),
            pids: Some(64),
            io_read_bps: Some(4096),
            io_write_bps: None,
        };
        cgroup.apply_limits(&limits).unwrap();
        let blkio = root.path().join("blkio/herd/p1");
        assert_eq!(
            read(blkio.join("blkio.throttle.read_bps_device")),
            "254:0 4096"
        );
        assert!(!blkio.join("blkio.throttle.write_bps_device").exists());
        assert_eq!(read(memory.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(memory.join("memory.memsw.limit_in_bytes")), "67108864");
        assert_eq!(read(memory.join("memory.oom_control")), "1");
        let cpu = root.path().join("cpu/herd/p1");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "200000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(root.path().join("pids/herd/p1/pids.max")), "64");
        // The lifetime cgroup exists in v2 even without controllers.
        assert!(root.path().join("unified/herd/p1").is_dir());
    }

    #[test]
    fn missing_controller_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let layout = fixture(root.path(), &[], &["pids"]);
        let cgroup = CommandCgroup::create(&layout, "p1").unwrap();
        let limits = Limits {
            memory_bytes: Some(1 << 30),
            ..Limits::default()
        };
        let error = cgroup.apply_limits(&limits).unwrap_err();
        assert!(matches!(
            error,
            CgroupError::MissingController {
                controller: "memory",
                ..
            }
        ));
    }

    #[test]
    fn existing_cgroup_is_not_reused() {
        let root = tempfile::tempdir().unwrap();
        let layout = fixture(root.path(), &[], &["pids"]);
        CommandCgroup::create(&layout, "p1").unwrap();
        let error = CommandCgroup::create(&layout, "p1").unwrap_err();
        assert!(matches!(error, CgroupError::Create { .. }));
    }

    #[test]
    fn stats_read_both_versions() {
        let root = tempfile::tempdir().unwrap();
        let layout = fixture(root.path(), &["memory"], &["pids", "cpuacct"]);
        CommandCgroup::create(&layout, "p1").unwrap();
        let v2 = root.path().join("unified/herd/p1");
        std::fs::write(v2.join("memory.current"), "1000\n").unwrap();
        std::fs::write(v2.join("memory.peak"), "2000\n").unwrap();
        std::fs::write(v2.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        let cpuacct = root.path().join("cpuacct/herd/p1");
        std::fs::write(cpuacct.join("cpuacct.usage"), "5000000\n").unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage_user"), "3000000\n").unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage_sys"), "2000000\n").unwrap();
        std::fs::write(root.path().join("pids/herd/p1/pids.current"), "3\n").unwrap();

        let stats = CommandCgroup::existing(&layout, "p1").stats();
        assert_eq!(stats.memory_current_bytes, Some(1000));
        assert_eq!(stats.memory_peak_bytes, Some(2000));
        assert_eq!(stats.oom_kills, Some(1));
        assert_eq!(stats.cpu_usage_usec, Some(5000));
        assert_eq!(stats.cpu_user_usec, Some(3000));
        assert_eq!(stats.cpu_system_usec, Some(2000));
        assert_eq!(stats.pids_current, Some(3));
        // No io or blkio controller: the figures are absent, not zero.
        assert_eq!(stats.io_read_bytes, None);
    }

    #[test]
    fn children_skip_the_supervisor_leaf() {
        let root = tempfile::tempdir().unwrap();
        let layout = fixture(root.path(), &[], &["pids"]);
        CommandCgroup::create(&layout, "p1").unwrap();
        std::fs::create_dir(root.path().join("unified/herd/supervisor")).unwrap();
        let mut names = list_children(&layout, "supervisor");
        names.sort();
        assert_eq!(names, vec!["p1".to_owned()]);
    }
}
