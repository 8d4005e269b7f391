//! The worker's settings: flags, the TOML config file, and defaults, in that
//! order of precedence.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use herd_proto::endpoint::Endpoint;
use herd_proto::tls::TlsFiles;
use herd_proto::units::parse_duration;
use serde::Deserialize;

const DEFAULT_CONFIG: &str = "/etc/herd/workerd.toml";
const DEFAULT_LISTEN: &str = "unix:///run/herd/workerd.sock";
const DEFAULT_MANAGER: &str = "unix:///run/herd/managerd.sock";
const DEFAULT_CGROUP_PARENT: &str = "herd";
/// The unprivileged user present on every Debian and Fedora system.
const DEFAULT_USER: &str = "nobody";
const DEFAULT_STATE_DIR: &str = "/var/lib/herd-workerd";
/// The manager's join token file on a host that runs both daemons.
const DEFAULT_JOIN_TOKEN: &str = "/var/lib/herd/join-token";
const DEFAULT_MANAGER_NAME: &str = "herd-managerd";

/// herd-workerd: runs commands from the manager, each in its own sandbox.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Flags {
    /// TOML config file [default: /etc/herd/workerd.toml, if present]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Manager endpoint [default: $MANAGER_HOST:$MANAGER_PORT when either
    /// is set, over https with TLS files and http without; else
    /// unix:///run/herd/managerd.sock]
    #[arg(long)]
    pub manager: Option<String>,
    /// Endpoint of this worker's API, which the manager calls
    /// [default: unix:///run/herd/workerd.sock]
    #[arg(long)]
    pub listen: Option<String>,
    /// Worker id [default: the host name]
    #[arg(long)]
    pub id: Option<String>,
    /// Label KEY=VALUE the manager can place commands by; repeatable
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Cgroup, relative to the worker's own in each hierarchy, under which
    /// each command gets a cgroup of its own [default: herd]
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Time between heartbeats, such as 1s [default: what the manager sets]
    #[arg(long)]
    pub heartbeat_interval: Option<String>,
    /// User (NAME, UID or UID:GID) that commands run as when the request
    /// names none [default: nobody]
    #[arg(long)]
    pub default_user: Option<String>,
    /// Let requests run commands as root (uid or gid 0); without it they
    /// are rejected, because root in a sandbox can write the host's files
    #[arg(long)]
    pub allow_root: bool,
    /// Another user (NAME, UID or UID:GID) requests may name besides the
    /// default user; repeatable. Others are rejected, because a command
    /// runs with that user's rights on the host's files and sockets
    #[arg(long = "allow-user", value_name = "USER")]
    pub allowed_users: Vec<String>,
    /// Folder for the worker's state, such as its output spool
    /// [default: /var/lib/herd-workerd]
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Output of one command spooled on disk beyond what the manager has
    /// stored, such as 64m; past it the command waits [default: 64m]
    #[arg(long, value_name = "SIZE")]
    pub spool_limit: Option<String>,
    /// Resource limit for commands, NAME=SOFT[:HARD] as in nofile=1024:4096;
    /// repeatable [default: core=0:0 and nofile=1024]
    #[arg(long = "rlimit", value_name = "NAME=SOFT[:HARD]")]
    pub rlimits: Vec<String>,
    /// CA certificate that signs the manager's certificate and this worker's
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This worker's certificate, named after its id, for https:// endpoints
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// File of the manager's join token, needed unless both --manager and
    /// --listen are https:// [default: /var/lib/herd/join-token]
    #[arg(long, value_name = "FILE")]
    pub join_token_file: Option<PathBuf>,
    /// Common name of the manager's certificate [default: herd-managerd]
    #[arg(long, value_name = "NAME")]
    pub manager_name: Option<String>,
    /// Group that owns the worker's unix socket, by name or number
    /// [default: herd]
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Allow http:// endpoints, where the join token travels in clear; only
    /// for tests and trusted loopback
    #[arg(long)]
    pub allow_plaintext: bool,
}

/// The config file's settings; each has a flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub manager: Option<String>,
    pub listen: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    pub cgroup_parent: Option<String>,
    pub heartbeat_interval: Option<String>,
    pub default_user: Option<String>,
    #[serde(default)]
    pub rlimits: BTreeMap<String, String>,
    pub state_dir: Option<PathBuf>,
    pub spool_limit: Option<String>,
    #[serde(default)]
    pub allow_root: bool,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub join_token_file: Option<PathBuf>,
    pub manager_name: Option<String>,
    pub socket_group: Option<String>,
    #[serde(default)]
    pub allow_plaintext: bool,
}

/// The resolved settings.
#[derive(Debug)]
pub struct Config {
    pub manager: Endpoint,
    pub listen: Endpoint,
    pub id: String,
    pub labels: HashMap<String, String>,
    pub cgroup_parent: String,
    pub heartbeat_interval: Option<Duration>,
    pub default_user: String,
    pub rlimits: Vec<crate::sandbox::Rlimit>,
    pub state_dir: PathBuf,
    pub spool_limit: u64,
    pub allow_root: bool,
    /// Users requests may name besides the default user.
    pub allowed_users: Vec<String>,
    pub tls: Option<TlsFiles>,
    pub join_token_file: PathBuf,
    pub manager_name: String,
    /// Group of the unix socket; `None` keeps the worker's own group.
    pub socket_group: Option<u32>,
}

impl Config {
    /// Merges flags over the config file over defaults, checking each value.
    pub fn load(flags: Flags) -> anyhow::Result<Config> {
        let named = flags.config.is_some();
        let path = flags
            .config
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let file: File = herd_proto::daemon::load_config(&path, named)?;

        let tls = TlsFiles::from_settings(
            TlsFiles::SETTINGS,
            flags.tls_ca.or(file.tls_ca),
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        )?;
        let manager = flags
            .manager
            .or(file.manager)
            .unwrap_or_else(|| manager_from_env(tls.is_some()));
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let mut labels = file.labels;
        for label in &flags.labels {
            let (key, value) = parse_label(label)?;
            labels.insert(key, value);
        }
        let heartbeat_interval = flags
            .heartbeat_interval
            .or(file.heartbeat_interval)
            .map(|text| parse_duration(&text).context("invalid --heartbeat-interval"))
            .transpose()?;
        if heartbeat_interval.is_some_and(|interval| interval.is_zero()) {
            anyhow::bail!("invalid --heartbeat-interval 0s: use a positive duration such as 1s");
        }
        let default_user = flags
            .default_user
            .or(file.default_user)
            .unwrap_or_else(|| DEFAULT_USER.to_owned());
        crate::sandbox::identity::resolve(&default_user).context("invalid --default-user")?;
        let mut rlimit_settings = file.rlimits;
        for setting in &flags.rlimits {
            let (name, value) = setting.split_once('=').with_context(|| {
                format!(
                    "invalid --rlimit {setting:?}: expected NAME=SOFT[:HARD], as in nofile=1024"
                )
            })?;
            rlimit_settings.insert(name.to_owned(), value.to_owned());
        }
        let rlimits = crate::rlimits::resolve(&rlimit_settings).context("invalid --rlimit")?;
        let id = flags.id.or(file.id).unwrap_or_else(crate::host::hostname);
        if !herd_proto::names::is_valid_id(&id) {
            anyhow::bail!(
                "invalid --id {id:?}: use 1-64 letters, digits, '.', '_' or '-', \
                 not starting with '.' or '-'"
            );
        }
        let state_dir = flags
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let spool_limit = match flags.spool_limit.or(file.spool_limit) {
            Some(text) => herd_proto::units::parse_size(&text)
                .context("invalid --spool-limit (spool_limit)")?,
            None => crate::journal::DEFAULT_SPOOL_LIMIT,
        };
        if spool_limit < 1 << 20 {
            anyhow::bail!("invalid --spool-limit (spool_limit) {spool_limit}: use at least 1m");
        }
        let allow_root = flags.allow_root || file.allow_root;
        let mut allowed_users = file.allowed_users;
        allowed_users.extend(flags.allowed_users);
        for user in &allowed_users {
            crate::sandbox::identity::resolve(user)
                .with_context(|| format!("invalid --allow-user (allowed_users) {user:?}"))?;
        }
        let manager: Endpoint = manager.parse().context("invalid --manager")?;
        let listen: Endpoint = listen.parse().context("invalid --listen")?;
        let allow_plaintext = flags.allow_plaintext || file.allow_plaintext;
        check_transport("--manager", &manager, tls.is_some(), allow_plaintext)?;
        check_transport("--listen", &listen, tls.is_some(), allow_plaintext)?;
        Ok(Config {
            tls,
            join_token_file: flags
                .join_token_file
                .or(file.join_token_file)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JOIN_TOKEN)),
            manager_name: flags
                .manager_name
                .or(file.manager_name)
                .unwrap_or_else(|| DEFAULT_MANAGER_NAME.to_owned()),
            socket_group: herd_proto::daemon::socket_group(
                flags.socket_group.or(file.socket_group),
            )?,
            allow_root,
            allowed_users,
            state_dir,
            spool_limit,
            id,
            default_user,
            rlimits,
            manager,
            listen,
            labels,
            cgroup_parent: flags
                .cgroup_parent
                .or(file.cgroup_parent)
                .unwrap_or_else(|| DEFAULT_CGROUP_PARENT.to_owned()),
            heartbeat_interval,
        })
    }
}

/// Checks that an https endpoint has TLS files and that plaintext TCP was
/// allowed.
fn check_transport(
    flag: &str,
    endpoint: &Endpoint,
    tls: bool,
    allow_plaintext: bool,
) -> anyhow::Result<()> {
    match endpoint {
        Endpoint::Https(_) if !tls => anyhow::bail!(
            "{flag} {endpoint} needs TLS files: set --tls-ca, --tls-cert and --tls-key \
             (tls_ca, tls_cert, tls_key)"
        ),
        Endpoint::Http(_) if !allow_plaintext => anyhow::bail!(
            "{flag} {endpoint} is plaintext TCP, where the join token travels in clear: use \
             https:// with --tls-ca, --tls-cert and --tls-key, or set allow_plaintext = true \
             (--allow-plaintext) for tests on a trusted loopback"
        ),
        Endpoint::Http(_) => {
            tracing::warn!(%endpoint, "plaintext TCP allowed: the join token travels in clear");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Builds the manager endpoint from MANAGER_HOST and MANAGER_PORT when
/// either is set (defaults localhost and 50051), over https when the
/// worker has TLS files.
fn manager_from_env(tls: bool) -> String {
    let host = std::env::var("MANAGER_HOST").ok();
    let port = std::env::var("MANAGER_PORT").ok();
    if host.is_none() && port.is_none() {
        return DEFAULT_MANAGER.to_owned();
    }
    let host = host.unwrap_or_else(|| "localhost".to_owned());
    let port = port.unwrap_or_else(|| "50051".to_owned());
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{port}")
}

/// Parses `KEY=VALUE`.
pub fn parse_label(text: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = herd_proto::names::parse_key_value("--label", text)?;
    Ok((key.to_owned(), value.to_owned()))
}
