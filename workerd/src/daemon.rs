//! The worker daemon's life: cgroup setup, cleanup of an earlier run, the
//! API server, registration, and shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use herd_proto::MAX_MESSAGE_BYTES;
use herd_proto::daemon::{self, Listener, SocketAccess, bind};
use herd_proto::peer::{Gate, Guarded};
use herd_proto::systemd;
use herd_proto::v1::worker_process_service_server::WorkerProcessServiceServer;
use tokio::sync::watch;
use tonic::server::NamedService;

use crate::access::{TokenSource, WorkerGate};
use crate::cgroup::{self, CommandCgroup, Layout};
use crate::config::Config;
use crate::journal::Journals;
use crate::registration::{self, Identity, ManagerLink};
use crate::runner::{Runner, Settings};
use crate::service::WorkerService;

/// Name of the leaf cgroup the worker moves itself into on cgroup v2 when
/// its own cgroup must delegate controllers to the commands' cgroups.
const SUPERVISOR_LEAF: &str = "supervisor";

/// Access mode of the worker's unix socket: the manager, which may run as
/// another user in the socket's group, must reach it; the gate then admits
/// only calls with the join token.
const SOCKET_MODE: u32 = 0o660;

/// How long the server may take to close its streams at shutdown.
const SERVER_DRAIN: Duration = Duration::from_secs(3);

/// Grace given to running commands when the worker shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the worker until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let layout = discover_layout(&config.cgroup_parent)?;
    // Held until exit: a second worker on the same parent would kill this
    // one's commands as leftovers.
    let _lock = lock_parent(&layout, &config.cgroup_parent)?;
    let result = run_locked(&config, &layout).await;
    remove_parents(&layout);
    result
}

async fn run_locked(config: &Config, layout: &Layout) -> anyhow::Result<()> {
    clean_leftovers(layout);
    let settings = Settings {
        default_user: config.default_user.clone(),
        rlimits: config.rlimits.clone(),
        allow_root: config.allow_root,
        allowed_users: config.allowed_users.clone(),
    };
    let runner = Runner::new(layout.clone(), settings);
    private_folder(&config.state_dir)?;
    // One folder per worker id, so workers sharing a state folder never
    // remove each other's spools.
    let spool = config.state_dir.join("spool").join(&config.id);
    let journals = Journals::open(spool.clone(), config.spool_limit)
        .with_context(|| format!("failed to prepare the spool folder {}", spool.display()))?;
    let journals = Arc::new(journals);

    let token = Arc::new(TokenSource::new(config.join_token_file.clone()));
    let (server_tls, client_tls) = match &config.tls {
        Some(files) => (
            Some(files.server_config()?),
            Some(files.client_config_for(Some(&config.manager_name))?),
        ),
        None => (None, None),
    };
    let socket = SocketAccess {
        mode: SOCKET_MODE,
        group: config.socket_group,
    };
    let listener = bind(&config.listen, socket, server_tls.as_ref()).await?;
    let gate: Arc<dyn Gate> = Arc::new(WorkerGate {
        token: token.clone(),
        manager_name: config.manager_name.clone(),
    });
    let (stop, stopped) = watch::channel(false);
    let service = WorkerService {
        worker_id: config.id.clone(),
        runner: runner.clone(),
        journals: journals.clone(),
        stopping: stopped.clone(),
    };
    let identity = Identity {
        id: config.id.clone(),
        name: crate::host::hostname(),
        address: config.listen.to_string(),
        labels: config.labels.clone(),
    };
    let link = ManagerLink {
        endpoint: config.manager.clone(),
        tls: client_tls,
        token,
    };
    let registration = tokio::spawn(registration::run(
        link,
        identity,
        config.heartbeat_interval,
        journals,
    ));
    tracing::info!(worker_id = %config.id, listen = %config.listen, "worker started");

    let server = tokio::spawn(serve(listener, service, gate, stopped));
    // Ready once the API serves; registration goes on retrying meanwhile.
    // The watchdog keeps pinging while commands end at shutdown.
    let _watchdog = systemd::spawn_watchdog();
    systemd::ready(&format!(
        "serving on {}; registering with {}",
        config.listen, config.manager
    ));
    daemon::shutdown_signal().await;
    systemd::stopping();

    // The server and the heartbeats keep running while commands end, so
    // their final events reach the manager and it does not think the
    // worker lost meanwhile.
    tracing::info!(worker_id = %config.id, "shutting down; terminating running commands");
    runner.terminate_all(SHUTDOWN_GRACE).await;
    registration.abort();
    let _ = stop.send(true);
    match tokio::time::timeout(SERVER_DRAIN, server).await {
        Ok(result) => result??,
        Err(_) => {
            tracing::warn!(worker_id = %config.id, "open streams did not close; exiting anyway")
        }
    }
    // Only a socket this worker bound is removed, never another's.
    daemon::remove_socket(&config.listen);
    Ok(())
}

/// Creates the state folder if needed and makes it root's alone (0700):
/// the spool contains every command's output, and the worker, as root, must
/// not follow links that another user planted there.
fn private_folder(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create the state folder {}", dir.display()))?;
    let metadata = std::fs::symlink_metadata(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !metadata.is_dir() || metadata.uid() != euid {
        anyhow::bail!(
            "the state folder {} is not a folder owned by this worker's user; \
             remove it or give another --state-dir",
            dir.display()
        );
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to make {} private", dir.display()))
}

/// Takes an exclusive flock on the worker's first parent cgroup folder, or
/// fails when another worker holds it. The kernel drops the lock when the
/// worker dies, so a restart after a crash gets it again.
fn lock_parent(layout: &Layout, parent: &str) -> anyhow::Result<std::fs::File> {
    let dir = layout
        .parent_dirs()
        .into_iter()
        .next()
        .context("no cgroup parent to lock")?;
    daemon::lock_folder(&dir)
        .with_context(|| format!("failed to lock {}", dir.display()))?
        .with_context(|| {
            format!(
                "cgroup parent {parent:?} ({}) is in use by another worker; \
                 give each worker on a host its own --cgroup-parent",
                dir.display()
            )
        })
}

/// Removes the worker's parent cgroups if they are empty, so a stopped
/// worker leaves nothing behind. The supervisor leaf stays: the worker is
/// still in it.
fn remove_parents(layout: &Layout) {
    for dir in layout.parent_dirs() {
        if let Err(error) = std::fs::remove_dir(&dir) {
            tracing::debug!(path = %dir.display(), error = %error, "kept parent cgroup");
        }
    }
}

fn discover_layout(parent: &str) -> anyhow::Result<Layout> {
    let mut layout = Layout::discover(parent).context("failed to find the cgroup hierarchies")?;
    if let Some(own) = &layout.v2_own {
        let controllers = std::fs::read_to_string(own.join("cgroup.controllers"))
            .with_context(|| format!("failed to read {}/cgroup.controllers", own.display()))?;
        layout.read_v2_controllers(&controllers);
    }
    cgroup::prepare_parents(&layout, SUPERVISOR_LEAF)
        .context("failed to prepare the worker's cgroups")?;
    tracing::info!(
        v2 = ?layout.v2_parent,
        v2_controllers = ?layout.v2_controllers,
        v1 = ?layout.v1_parents.keys().collect::<Vec<_>>(),
        "cgroup layout"
    );
    Ok(layout)
}

/// Kills and removes every command cgroup an earlier run of this worker
/// left behind.
fn clean_leftovers(layout: &Layout) {
    for name in cgroup::list_children(layout, SUPERVISOR_LEAF) {
        let leftover = CommandCgroup::existing(layout, &name);
        match leftover.remove() {
            Ok(()) => tracing::warn!(process_id = %name, "removed sandbox left by an earlier run"),
            Err(error) => {
                tracing::error!(process_id = %name, error = %error, "failed to remove leftover sandbox")
            }
        }
    }
}

async fn serve(
    listener: Listener,
    service: WorkerService,
    gate: Arc<dyn Gate>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let names = [<WorkerProcessServiceServer<WorkerService> as NamedService>::NAME];
    let service =
        WorkerProcessServiceServer::new(service).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let router = daemon::standard_router(&names, &gate)
        .await?
        .add_service(Guarded::new(service, gate));
    daemon::serve(router, listener, stopped).await?;
    Ok(())
}
