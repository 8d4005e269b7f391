//! The manager's settings: flags, the TOML config file, and defaults, in
//! that order of precedence.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use herd_proto::endpoint::Endpoint;
use herd_proto::units::parse_duration;
use serde::Deserialize;

const DEFAULT_CONFIG: &str = "/etc/herd/managerd.toml";
const DEFAULT_LISTEN: &str = "unix:///run/herd/managerd.sock";
const DEFAULT_LEASE: &str = "10s";
const DEFAULT_QUEUE_TIMEOUT: &str = "30s";
const DEFAULT_STATE_DIR: &str = "/var/lib/herd";
/// Output kept over all processes unless configured: 4 GiB.
const DEFAULT_OUTPUT_BUDGET: u64 = 4 << 30;
/// Shortest lease or queue timeout accepted; below it heartbeats cannot
/// keep up.
const MIN_DURATION: Duration = Duration::from_millis(100);

/// herd-managerd: registers workers, places commands on them and keeps
/// their records and output.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Flags {
    /// TOML config file [default: /etc/herd/managerd.toml, if present]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Endpoint to serve on; repeatable [default: unix:///run/herd/managerd.sock]
    #[arg(long)]
    pub listen: Vec<String>,
    /// Folder of the state database, managerd.db [default: /var/lib/herd]
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Time without a heartbeat after which a worker is lost, such as 10s
    #[arg(long)]
    pub worker_lease: Option<String>,
    /// How long a request waits for a matching worker before it fails
    #[arg(long)]
    pub queue_timeout: Option<String>,
    /// Output kept per process, such as 256m; older output is dropped first
    #[arg(long, value_name = "SIZE")]
    pub output_limit: Option<String>,
    /// Output kept over all processes, such as 4g; the oldest goes first
    #[arg(long, value_name = "SIZE")]
    pub output_budget: Option<String>,
}

/// The config file's settings; each has a flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub listen: Vec<String>,
    pub state_dir: Option<PathBuf>,
    pub worker_lease: Option<String>,
    pub queue_timeout: Option<String>,
    pub output_limit: Option<String>,
    pub output_budget: Option<String>,
}

/// The resolved settings.
#[derive(Debug)]
pub struct Config {
    pub listen: Vec<Endpoint>,
    pub worker_lease: Duration,
    pub queue_timeout: Duration,
    pub output_limit: u64,
    pub output_budget: u64,
    /// Folder of the state database.
    pub state_dir: PathBuf,
}

impl Config {
    /// Merges flags over the config file over defaults, checking each value.
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let named = flags.config.is_some();
        let path = flags
            .config
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let file: File = herd_proto::daemon::load_config(&path, named)?;

        let mut listen = if flags.listen.is_empty() {
            file.listen
        } else {
            flags.listen
        };
        if listen.is_empty() {
            listen.push(DEFAULT_LISTEN.to_owned());
        }
        let listen = listen
            .iter()
            .map(|text| text.parse().context("invalid --listen"))
            .collect::<anyhow::Result<Vec<Endpoint>>>()?;
        let worker_lease = positive_duration(
            "--worker-lease (worker_lease)",
            flags.worker_lease.or(file.worker_lease),
            DEFAULT_LEASE,
        )?;
        let queue_timeout = positive_duration(
            "--queue-timeout (queue_timeout)",
            flags.queue_timeout.or(file.queue_timeout),
            DEFAULT_QUEUE_TIMEOUT,
        )?;
        let output_limit = match flags.output_limit.or(file.output_limit) {
            Some(text) => at_least_a_chunk(
                "--output-limit (output_limit)",
                herd_proto::units::parse_size(&text)
                    .context("invalid --output-limit (output_limit)")?,
            )?,
            None => crate::store::DEFAULT_OUTPUT_LIMIT,
        };
        let output_budget = match flags.output_budget.or(file.output_budget) {
            Some(text) => at_least_a_chunk(
                "--output-budget (output_budget)",
                herd_proto::units::parse_size(&text)
                    .context("invalid --output-budget (output_budget)")?,
            )?,
            None => DEFAULT_OUTPUT_BUDGET,
        };
        let state_dir = flags
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        Ok(Config {
            listen,
            worker_lease,
            queue_timeout,
            output_limit,
            output_budget,
            state_dir,
        })
    }
}

/// Rejects an output limit below 1 MiB: the newest chunk (up to 64 KiB) is
/// always kept, so a smaller limit could not hold.
fn at_least_a_chunk(flag: &str, bytes: u64) -> anyhow::Result<u64> {
    if bytes < 1 << 20 {
        anyhow::bail!("invalid {flag} {bytes}: use at least 1m");
    }
    Ok(bytes)
}

fn positive_duration(flag: &str, value: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let duration = parse_duration(&text).with_context(|| format!("invalid {flag}"))?;
    if duration < MIN_DURATION {
        anyhow::bail!("invalid {flag} {text:?}: use at least 100ms, such as {default}");
    }
    Ok(duration)
}
