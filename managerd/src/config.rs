//! The manager's settings: flags, the TOML config file, and defaults, in
//! that order of precedence.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use herd_proto::endpoint::Endpoint;
use herd_proto::tls::TlsFiles;
use herd_proto::units::parse_duration;

use herd_proto::daemon::{named_group, socket_group};

use crate::auth::Role;
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
    /// CA certificate that signs every client and worker certificate
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// The manager's certificate, for https:// listeners and workers
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// File of the secret workers present on unix sockets and plaintext TCP;
    /// created with a random token if missing [default: STATE_DIR/join-token]
    #[arg(long, value_name = "FILE")]
    pub join_token_file: Option<PathBuf>,
    /// Group that owns the unix socket, by name or number [default: herd]
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Allow http:// listeners, which carry no identity; only for tests and
    /// trusted loopback
    #[arg(long)]
    pub allow_plaintext: bool,
    #[command(subcommand)]
    pub command: Option<crate::certs::Command>,
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
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub join_token_file: Option<PathBuf>,
    pub socket_group: Option<String>,
    pub allow_plaintext: Option<bool>,
    /// Local users in this group are admins, as root is.
    pub admin_group: Option<String>,
    /// Role of local users without an entry in `roles`.
    pub local_role: Option<Role>,
    pub viewers_see_all: Option<bool>,
    /// Roles by certificate name, user name or `uid:N`.
    #[serde(default)]
    pub roles: HashMap<String, Role>,
}

/// The access settings, resolved; the join token is read at start, from
/// the state folder.
#[derive(Debug)]
pub struct Access {
    pub tls: Option<TlsFiles>,
    pub join_token_file: PathBuf,
    /// Group of the unix socket; `None` keeps the manager's own group.
    pub socket_group: Option<u32>,
    pub admin_group: Option<u32>,
    pub local_role: Role,
    pub viewers_see_all: bool,
    pub roles: HashMap<String, Role>,
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
    pub access: Access,
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
        let allow_plaintext = flags.allow_plaintext || file.allow_plaintext.unwrap_or(false);
        check_plaintext(&listen, allow_plaintext)?;
        let access = Access {
            tls: TlsFiles::from_settings(
                TlsFiles::SETTINGS,
                flags.tls_ca.or(file.tls_ca),
                flags.tls_cert.or(file.tls_cert),
                flags.tls_key.or(file.tls_key),
            )?,
            join_token_file: flags
                .join_token_file
                .or(file.join_token_file)
                .unwrap_or_else(|| state_dir.join("join-token")),
            socket_group: if listen.iter().any(|e| matches!(e, Endpoint::Unix(_))) {
                socket_group(flags.socket_group.or(file.socket_group))?
            } else {
                None
            },
            admin_group: match file.admin_group {
                Some(name) => Some(named_group("admin_group", &name)?),
                None => None,
            },
            local_role: local_role(file.local_role)?,
            viewers_see_all: file.viewers_see_all.unwrap_or(false),
            roles: file.roles,
        };
        if access.tls.is_none()
            && let Some(endpoint) = listen.iter().find(|e| matches!(e, Endpoint::Https(_)))
        {
            anyhow::bail!(
                "--listen {endpoint} needs TLS files: set --tls-ca, --tls-cert and --tls-key \
                 (tls_ca, tls_cert, tls_key); `herd-managerd certs` makes a first set"
            );
        }
        Ok(Config {
            access,
            listen,
            worker_lease,
            queue_timeout,
            output_limit,
            output_budget,
            state_dir,
        })
    }
}

/// Checks `local_role`: the worker role is for certificates, because a
/// local worker proves itself with the join token.
fn local_role(role: Option<Role>) -> anyhow::Result<Role> {
    match role {
        Some(Role::Worker) => anyhow::bail!(
            "invalid local_role \"worker\": local users may be admin, operator or viewer; \
             workers on this host use the join token"
        ),
        Some(role) => Ok(role),
        None => Ok(Role::Operator),
    }
}

/// Rejects `http://` listeners unless the operator allowed plaintext, and
/// warns when it did.
fn check_plaintext(listen: &[Endpoint], allowed: bool) -> anyhow::Result<()> {
    for endpoint in listen.iter().filter(|e| matches!(e, Endpoint::Http(_))) {
        if !allowed {
            anyhow::bail!(
                "--listen {endpoint} is plaintext TCP, which carries no identity: use \
                 https:// with --tls-ca, --tls-cert and --tls-key, or set allow_plaintext = true \
                 (--allow-plaintext) for tests on a trusted loopback"
            );
        }
        tracing::warn!(listen = %endpoint, "plaintext TCP allowed: only workers with the join token may use it");
    }
    Ok(())
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
