//! Pieces both daemons share: loading the TOML config file, logging setup
//! and binding the listening socket.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::watch;

use tokio::net::TcpStream;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tonic::transport::server::Router;

use crate::endpoint::Endpoint;
use crate::peer::{Gate, Guarded};

/// Exit status of a daemon whose flags or config file are invalid
/// (EX_CONFIG in sysexits.h). The units do not restart on it, since a
/// restart cannot fix the config.
pub const EXIT_CONFIG: u8 = 78;

/// Errors from loading a config file or binding a listener.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("failed to read config file {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseConfig { path: PathBuf, message: String },
    #[error("failed to listen on {endpoint}")]
    Listen {
        endpoint: Endpoint,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot listen on {0}: https needs a CA, a certificate and a key (tls_ca, tls_cert, tls_key)"
    )]
    TlsRequired(Endpoint),
    #[error("failed to build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// Starts a router with the standard services every herd daemon serves:
/// `grpc.health.v1.Health`, reporting each of `services` as serving, and
/// server reflection of every herd proto, so grpcurl works unaided.
/// Both services stand behind `gate`, like every other service.
pub async fn standard_router(
    services: &[&str],
    gate: &Arc<dyn Gate>,
) -> Result<Router, DaemonError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in services {
        reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(DaemonError::Reflection)?;
    Ok(Server::builder()
        .add_service(Guarded::new(health, gate.clone()))
        .add_service(Guarded::new(reflection, gate.clone())))
}

/// Serves `router` on `listener` until `stopped` turns true, then lets open
/// calls finish.
pub async fn serve(
    router: Router,
    listener: Listener,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let result = match listener {
        Listener::Unix(incoming) => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Listener::Tcp(incoming) => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Listener::Tls(incoming) => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    result.map_err(DaemonError::Serve)
}

/// Loads a TOML config file. A missing file is an error only when the
/// operator named it; the default path may be absent.
pub fn load_config<T: DeserializeOwned + Default>(
    path: &Path,
    named: bool,
) -> Result<T, DaemonError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound && !named => {
            return Ok(T::default());
        }
        Err(source) => {
            return Err(DaemonError::ReadConfig {
                path: path.to_owned(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1);
        let message = match line {
            Some(line) => format!("line {line}: {}", error.message()),
            None => error.message().to_owned(),
        };
        DaemonError::ParseConfig {
            path: path.to_owned(),
            message,
        }
    })
}

/// Sets up `tracing`, filtered by `RUST_LOG` (default `info`): to the
/// journal, with each event's fields (such as `PROCESS_ID` and `WORKER_ID`)
/// as journal fields, when stderr is connected to journald; as text on
/// stderr otherwise.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    if stderr_is_journal()
        && let Ok(journal) = tracing_journald::layer()
    {
        // Fields keep their own names, so `journalctl PROCESS_ID=ID` works.
        let journal = journal.with_field_prefix(None);
        tracing_subscriber::registry()
            .with(filter())
            .with(journal)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .init();
}

/// Reports whether stderr is the journal stream systemd gave this process:
/// `JOURNAL_STREAM` names its device and inode (see systemd.exec(5)).
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(io::stderr()) else {
        return false;
    };
    stream == format!("{}:{}", stat.st_dev, stat.st_ino)
}

/// A bound listener, ready to hand to tonic.
#[derive(Debug)]
pub enum Listener {
    Unix(UnixListenerStream),
    Tcp(TcpListenerStream),
    /// TCP connections that completed the TLS handshake.
    Tls(ReceiverStream<io::Result<TlsStream<TcpStream>>>),
}

/// Access to a daemon's unix socket: its mode, and the group that owns it
/// (the daemon's own group when `None`).
#[derive(Debug, Clone, Copy)]
pub struct SocketAccess {
    pub mode: u32,
    pub group: Option<u32>,
}

/// Binds `endpoint`. For a unix socket it creates the parent folder, removes
/// a stale socket file left by an earlier run, and applies `access` to the
/// new socket. An `https://` endpoint needs `tls`.
pub async fn bind(
    endpoint: &Endpoint,
    access: SocketAccess,
    tls: Option<&Arc<ServerConfig>>,
) -> Result<Listener, DaemonError> {
    let listen_error = |source| DaemonError::Listen {
        endpoint: endpoint.clone(),
        source,
    };
    match endpoint {
        Endpoint::Unix(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(listen_error)?;
            }
            remove_stale_socket(path).map_err(listen_error)?;
            let listener = tokio::net::UnixListener::bind(path).map_err(listen_error)?;
            restrict(path, access).map_err(listen_error)?;
            Ok(Listener::Unix(UnixListenerStream::new(listener)))
        }
        Endpoint::Http(authority) => {
            let listener = tokio::net::TcpListener::bind(authority)
                .await
                .map_err(listen_error)?;
            Ok(Listener::Tcp(TcpListenerStream::new(listener)))
        }
        Endpoint::Https(authority) => {
            let config = tls.ok_or_else(|| DaemonError::TlsRequired(endpoint.clone()))?;
            let listener = tokio::net::TcpListener::bind(authority)
                .await
                .map_err(listen_error)?;
            let accepted = crate::tls::accept(listener, config.clone());
            Ok(Listener::Tls(ReceiverStream::new(accepted)))
        }
    }
}

/// The group that owns daemon sockets unless configured, which the
/// packages create.
pub const DEFAULT_SOCKET_GROUP: &str = "herd";

/// Resolves a group given by name or number to its gid; `None` when no
/// group has that name.
pub fn group_id(group: &str) -> Result<Option<u32>, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Some(gid));
    }
    nix::unistd::Group::from_name(group)
        .map(|found| found.map(|found| found.gid.as_raw()))
        .map_err(|error| format!("failed to look up group {group:?}: {error}"))
}

/// Resolves the group a setting names, which must exist.
pub fn named_group(setting: &str, name: &str) -> anyhow::Result<u32> {
    group_id(name).map_err(anyhow::Error::msg)?.ok_or_else(|| {
        anyhow::anyhow!("invalid {setting} {name:?}: no such group; create it or name another")
    })
}

/// Resolves the socket group: one the operator named must exist; the
/// default, `herd`, may be missing on a machine without the packages, and
/// the socket then keeps the daemon's own group.
pub fn socket_group(named: Option<String>) -> anyhow::Result<Option<u32>> {
    if let Some(name) = named {
        return named_group("--socket-group (socket_group)", &name).map(Some);
    }
    let found = group_id(DEFAULT_SOCKET_GROUP).map_err(anyhow::Error::msg)?;
    if found.is_none() {
        tracing::warn!(
            group = DEFAULT_SOCKET_GROUP,
            "group not found: the socket keeps the daemon's own group"
        );
    }
    Ok(found)
}

/// Takes an exclusive flock on the folder `dir` and returns the open folder,
/// which keeps the lock until it is dropped or the process dies. Returns
/// `None` when another process holds the lock.
pub fn lock_folder(dir: &Path) -> io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir)?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked == 0 {
        return Ok(Some(file));
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(None),
        _ => Err(error),
    }
}

/// Waits for SIGTERM or SIGINT, the signals that stop a daemon.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

/// Removes the socket file of a unix endpoint this daemon listened on, at
/// shutdown. Other endpoints have no file.
pub fn remove_socket(endpoint: &Endpoint) {
    if let Endpoint::Unix(path) = endpoint {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes `path` if it is a socket without a listener, so a daemon can start
/// after a crash. A live socket is left alone, and the bind then fails.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Ok(());
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process is listening on this socket",
        ));
    }
    std::fs::remove_file(path)
}

fn restrict(path: &Path, access: SocketAccess) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(gid) = access.group {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: Option<String>,
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!(group_id("root"), Ok(Some(0)));
        assert_eq!(group_id("4242"), Ok(Some(4242)));
        assert_eq!(group_id("no-such-group-herd"), Ok(None));
        let error = named_group("--socket-group", "no-such-group-herd").unwrap_err();
        assert!(error.to_string().contains("no-such-group-herd"), "{error}");
    }

    #[test]
    fn missing_default_config_is_empty() {
        let config: Sample = load_config(Path::new("/nonexistent/herd.toml"), false).unwrap();
        assert_eq!(config.name, None);
    }

    #[test]
    fn missing_named_config_is_an_error() {
        let error = load_config::<Sample>(Path::new("/nonexistent/herd.toml"), true).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/herd.toml"));
    }

    #[test]
    fn unknown_key_names_the_file() {
        let dir = std::env::temp_dir().join(format!("herd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "nmae = \"x\"\n").unwrap();
        let error = load_config::<Sample>(&path, true).unwrap_err().to_string();
        assert!(error.contains("bad.toml"), "{error}");
        assert!(error.contains("nmae"), "{error}");
        assert!(error.contains("line 1"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
