//! The manager daemon's life: listeners, the lease monitor, and shutdown.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use std::time::Duration;

use herd_proto::MAX_MESSAGE_BYTES;
use herd_proto::daemon::{self, Listener, SocketAccess, bind};
use herd_proto::peer::{AttachToken, Gate, Guarded, JoinToken};
use herd_proto::systemd;
use herd_proto::v1::process_management_service_server::ProcessManagementServiceServer;
use herd_proto::v1::worker_registration_service_server::WorkerRegistrationServiceServer;
use tokio::sync::watch;
use tonic::server::NamedService;

use crate::api::ProcessApi;
use crate::auth::{ManagerGate, Policy};
use crate::config::Config;
use crate::registration_api::RegistrationApi;
use crate::registry::{Links, Registry};
use crate::state::Manager;
use crate::store::{ProcessStore, SqliteStore};

/// How often leases are checked; a lost worker is noticed at most this late.
const LEASE_CHECK: Duration = Duration::from_millis(200);

/// How long the servers may take to close their streams at shutdown.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Access mode of the manager's unix socket.
const SOCKET_MODE: u32 = 0o660;

/// Runs the manager until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Bind first: a manager that cannot serve must not touch the state.
    let access = &config.access;
    let server_tls = match &access.tls {
        Some(files) => Some(files.server_config()?),
        None => None,
    };
    let socket = SocketAccess {
        mode: SOCKET_MODE,
        group: access.socket_group,
    };
    let mut listeners = Vec::new();
    for endpoint in &config.listen {
        listeners.push(bind(endpoint, socket, server_tls.as_ref()).await?);
        tracing::info!(listen = %endpoint, "manager listening");
    }
    let (_lock, store) = open_store(&config)?;
    let token = JoinToken::load_or_create(&access.join_token_file).with_context(|| {
        format!(
            "failed to read or create the join token {}; delete the file to have a new one made",
            access.join_token_file.display()
        )
    })?;
    if let Some(files) = &access.tls {
        // Bad files fail at start, not at the first worker.
        files.client_config()?;
    }
    let links = Links {
        tls: access.tls.clone(),
        token: AttachToken::new(Some(&token)),
    };
    let gate: Arc<dyn Gate> = Arc::new(ManagerGate::new(Policy {
        roles: access.roles.clone(),
        local_role: access.local_role,
        admin_group: access.admin_group,
        viewers_see_all: access.viewers_see_all,
        join_token: token,
    }));
    let registry = Registry::new(links);
    for worker in store.load_workers() {
        registry.restore(worker);
    }
    let manager = Arc::new(Manager {
        store,
        registry,
        lease: config.worker_lease,
        queue_timeout: config.queue_timeout,
        followed: Mutex::default(),
    });
    manager.recover();
    let leases = tokio::spawn(monitor_leases(manager.clone()));

    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    for listener in listeners {
        servers.push(tokio::spawn(serve(
            listener,
            manager.clone(),
            gate.clone(),
            stopped.clone(),
        )));
    }
    // The watchdog keeps pinging through shutdown, which ends with the
    // process.
    let _watchdog = systemd::spawn_watchdog();
    systemd::ready(&format!("serving on {}", join(&config.listen)));
    daemon::shutdown_signal().await;
    tracing::info!("shutting down");
    systemd::stopping();
    // Workers cannot heartbeat while the servers drain, which must not
    // count against their leases.
    leases.abort();
    let _ = stop.send(true);
    // Followers of running processes keep their streams open; give them a
    // moment, then exit, which closes every connection.
    for server in servers {
        match tokio::time::timeout(SERVER_DRAIN, server).await {
            Ok(result) => result??,
            Err(_) => tracing::warn!("open streams did not close; exiting anyway"),
        }
    }
    for endpoint in &config.listen {
        daemon::remove_socket(endpoint);
    }
    Ok(())
}

fn join(endpoints: &[herd_proto::endpoint::Endpoint]) -> String {
    let names: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    names.join(", ")
}

/// Opens the state database in the state folder, creating both if needed,
/// and returns it with an exclusive lock on the folder, which the caller
/// holds until exit so a second manager cannot share the database.
fn open_store(config: &Config) -> anyhow::Result<(std::fs::File, Arc<dyn ProcessStore>)> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &config.state_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create the state folder {}", dir.display()))?;
    let lock = lock_state_dir(dir)?;
    let path = dir.join("managerd.db");
    let store = SqliteStore::open(&path, config.output_limit, config.output_budget)
        .with_context(|| format!("failed to open {}", path.display()))?;
    tracing::info!(path = %path.display(), "state database open");
    Ok((lock, Arc::new(store)))
}

fn lock_state_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    daemon::lock_folder(dir)
        .with_context(|| format!("failed to lock the state folder {}", dir.display()))?
        .with_context(|| {
            format!(
                "the state folder {} is in use by another herd-managerd; stop it or use \
                 another --state-dir",
                dir.display()
            )
        })
}

/// Marks workers whose lease ran out as lost, and their processes as
/// FAILED/WORKER_LOST.
async fn monitor_leases(manager: Arc<Manager>) {
    let mut ticks = tokio::time::interval(LEASE_CHECK);
    loop {
        ticks.tick().await;
        for worker_id in manager.registry.expire(manager.lease) {
            tracing::warn!(worker_id, "worker lost: no heartbeat within the lease");
            let error = format!(
                "worker {worker_id} lost: no heartbeat for {}",
                herd_proto::units::format_duration(manager.lease)
            );
            manager.fail_lost(&worker_id, &[], &error);
        }
    }
}

async fn serve(
    listener: Listener,
    manager: Arc<Manager>,
    gate: Arc<dyn Gate>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let names = [
        <ProcessManagementServiceServer<ProcessApi> as NamedService>::NAME,
        <WorkerRegistrationServiceServer<RegistrationApi> as NamedService>::NAME,
    ];
    let clients = ProcessManagementServiceServer::new(ProcessApi {
        manager: manager.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let workers = WorkerRegistrationServiceServer::new(RegistrationApi { manager })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let router = daemon::standard_router(&names, &gate)
        .await?
        .add_service(Guarded::new(clients, gate.clone()))
        .add_service(Guarded::new(workers, gate));
    daemon::serve(router, listener, stopped).await?;
    Ok(())
}
