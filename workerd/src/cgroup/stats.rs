//! Statistics read from a command's cgroup files, v1 and v2.

use std::path::Path;

use super::{Layout, read_file};

/// A command's resource usage. A figure the host does not provide is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu_usage_usec: Option<u64>,
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    pub memory_current_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub pids_current: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
}

impl Stats {
    /// Reads every figure the layout's controllers provide for `name`.
    pub fn read(layout: &Layout, name: &str) -> Stats {
        let mut stats = Stats::default();
        if let Some((dir, v2)) = layout.controller_dir("memory", name) {
            stats.read_memory(&dir, v2);
        }
        if let Some((dir, _)) = layout.controller_dir("pids", name) {
            stats.pids_current = read_number(&dir.join("pids.current"));
        }
        if let Some((dir, false)) = layout.controller_dir("cpuacct", name) {
            stats.read_cpuacct(&dir);
        } else if let Some(dir) = layout.v2_parent.as_ref().map(|parent| parent.join(name)) {
            // cpu.stat's usage figures exist in every v2 cgroup, with or
            // without the cpu controller enabled.
            stats.read_cpu_stat(&dir);
        }
        if let Some((dir, v2)) = io_dir(layout, name) {
            stats.read_io(&dir, v2);
        }
        stats
    }

    fn read_memory(&mut self, dir: &Path, v2: bool) {
        if v2 {
            self.memory_current_bytes = read_number(&dir.join("memory.current"));
            self.memory_peak_bytes = read_number(&dir.join("memory.peak"));
            self.oom_kills = read_keyed(&dir.join("memory.events"), "oom_kill");
        } else {
            self.memory_current_bytes = read_number(&dir.join("memory.usage_in_bytes"));
            self.memory_peak_bytes = read_number(&dir.join("memory.max_usage_in_bytes"));
            // oom_kill appeared in memory.oom_control in Linux 4.13.
            self.oom_kills = read_keyed(&dir.join("memory.oom_control"), "oom_kill");
        }
    }

    fn read_cpu_stat(&mut self, dir: &Path) {
        let path = dir.join("cpu.stat");
        self.cpu_usage_usec = read_keyed(&path, "usage_usec");
        self.cpu_user_usec = read_keyed(&path, "user_usec");
        self.cpu_system_usec = read_keyed(&path, "system_usec");
    }

    fn read_cpuacct(&mut self, dir: &Path) {
        let to_usec = |nanos: u64| nanos / 1000;
        self.cpu_usage_usec = read_number(&dir.join("cpuacct.usage")).map(to_usec);
        self.cpu_user_usec = read_number(&dir.join("cpuacct.usage_user")).map(to_usec);
        self.cpu_system_usec = read_number(&dir.join("cpuacct.usage_sys")).map(to_usec);
    }

    fn read_io(&mut self, dir: &Path, v2: bool) {
        let (read, write) = if v2 {
            parse_io_stat(&read_file(dir.join("io.stat")).unwrap_or_default())
        } else {
            let path = dir.join("blkio.throttle.io_service_bytes");
            parse_blkio(&read_file(path).unwrap_or_default())
        };
        self.io_read_bytes = read;
        self.io_write_bytes = write;
    }
}

fn io_dir(layout: &Layout, name: &str) -> Option<(std::path::PathBuf, bool)> {
    layout
        .controller_dir("blkio", name)
        .or_else(|| layout.controller_dir("io", name))
}

fn read_number(path: &Path) -> Option<u64> {
    read_file(path.to_owned()).ok()?.trim().parse().ok()
}

/// Reads the value of `key` from a flat-keyed file of `key value` lines.
fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    parse_keyed(&read_file(path.to_owned()).ok()?, key)
}

fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

/// Sums `rbytes=` and `wbytes=` over the devices of a v2 `io.stat`. A file
/// with no device lines means no I/O yet, which is a real zero.
fn parse_io_stat(text: &str) -> (Option<u64>, Option<u64>) {
    let (mut read, mut write) = (0, 0);
    for field in text.split_whitespace() {
        if let Some(value) = field.strip_prefix("rbytes=") {
            read += value.parse::<u64>().unwrap_or(0);
        } else if let Some(value) = field.strip_prefix("wbytes=") {
            write += value.parse::<u64>().unwrap_or(0);
        }
    }
    (Some(read), Some(write))
}

/// Sums the `Read` and `Write` rows of a v1 `blkio.throttle.io_service_bytes`.
fn parse_blkio(text: &str) -> (Option<u64>, Option<u64>) {
    if text.is_empty() {
        return (None, None);
    }
    let (mut read, mut write) = (0, 0);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, operation, value] = fields.as_slice() {
            let value = value.parse::<u64>().unwrap_or(0);
            match *operation {
                "Read" => read += value,
                "Write" => write += value,
                _ => {}
            }
        }
    }
    (Some(read), Some(write))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let text = "oom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_keyed(text, "oom_kill"), Some(1));
        assert_eq!(parse_keyed(text, "missing"), None);
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_keyed(oom_control, "oom_kill"), Some(3));
    }

    #[test]
    fn io_stat_sums_devices() {
        let text = "8:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:16 rbytes=5 wbytes=1 rios=1 wios=1\n";
        assert_eq!(parse_io_stat(text), (Some(105), Some(21)));
        assert_eq!(parse_io_stat(""), (Some(0), Some(0)));
    }

    #[test]
    fn blkio_sums_rows() {
        let text = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:0 Total 4608\nTotal 4608\n";
        assert_eq!(parse_blkio(text), (Some(4096), Some(512)));
        assert_eq!(parse_blkio(""), (None, None));
    }
}
