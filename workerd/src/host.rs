//! Figures about the worker's host: load and memory.

use herd_proto::v1::WorkerMetrics;

/// Reads the host's load average and memory, with `running` processes.
pub fn metrics(running: usize) -> WorkerMetrics {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    WorkerMetrics {
        load_1m: load
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0),
        memory_total_bytes: meminfo_bytes(&meminfo, "MemTotal:"),
        memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable:"),
        running: running as u32,
    }
}

/// Reads a `Name:   1234 kB` line of /proc/meminfo as bytes.
fn meminfo_bytes(meminfo: &str, name: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Returns the host's name, for the worker's default id and name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_parse() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal:"), 24_000_000 * 1024);
        assert_eq!(meminfo_bytes(text, "MemAvailable:"), 1000 * 1024);
        assert_eq!(meminfo_bytes(text, "SwapTotal:"), 0);
    }
}
