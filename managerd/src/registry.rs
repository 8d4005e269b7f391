//! The worker registry: who is registered, their leases, and placement.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use herd_proto::endpoint::Endpoint;
use herd_proto::peer::{AttachToken, TokenChannel};
use herd_proto::tls::TlsFiles;
use herd_proto::v1::{WorkerInfo, WorkerMetrics, WorkerState};
use tokio::sync::Notify;
use tonic::service::interceptor::InterceptedService;

/// Extra time a worker restored from the database has to register again,
/// beyond its lease: its heartbeats must fail before it notices the
/// restart, then it retries with a backoff of up to 5 s.
const RESTORE_GRACE: Duration = Duration::from_secs(15);

/// A registered worker.
#[derive(Debug, Clone)]
pub struct Worker {
    pub info: WorkerInfo,
    pub channel: TokenChannel,
    /// Counts registrations of this id, so tasks tied to an older one stop.
    pub generation: u64,
    /// Loaded from the state database at start and not registered since:
    /// it takes no work, and its heartbeats are refused so it registers
    /// again and reports what it still runs.
    restored: bool,
    last_seen: Instant,
}

/// Errors from registering a worker.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid worker id {0:?}: use 1-64 letters, digits, '.', '_' or '-'")]
    InvalidId(String),
    #[error("invalid worker address {address:?}")]
    InvalidAddress {
        address: String,
        #[source]
        source: herd_proto::endpoint::EndpointError,
    },
    #[error("cannot reach worker {id} over TLS: {message}")]
    Tls { id: String, message: String },
    #[error("worker {0} is not registered; register it again")]
    Unknown(String),
    #[error(
        "worker id {id} is already registered from {address}, whose lease is current; \
         give this worker another --id"
    )]
    Duplicate { id: String, address: String },
}

/// Constraints on the workers that may take a request.
#[derive(Debug, Default, Clone)]
pub struct Constraints {
    pub worker_id: String,
    pub labels: HashMap<String, String>,
    /// Workers that already failed this request.
    pub excluded: Vec<String>,
}

/// The manager's links to workers: its TLS files for `https://` workers,
/// and the join token for the others.
#[derive(Debug, Default, Clone)]
pub struct Links {
    pub tls: Option<TlsFiles>,
    pub token: AttachToken,
}

impl Links {
    /// Opens a lazy channel to worker `id`. Over TLS the worker's
    /// certificate must name `id`, so one worker cannot stand in for
    /// another.
    fn connect(&self, endpoint: &Endpoint, id: &str) -> Result<TokenChannel, RegistryError> {
        let tls = match (&self.tls, endpoint) {
            (Some(files), Endpoint::Https(_)) => {
                let config =
                    files
                        .client_config_for(Some(id))
                        .map_err(|error| RegistryError::Tls {
                            id: id.to_owned(),
                            message: error.to_string(),
                        })?;
                Some(config)
            }
            _ => None,
        };
        let channel = endpoint.connect_lazy(tls.as_ref()).map_err(|source| {
            RegistryError::InvalidAddress {
                address: endpoint.to_string(),
                source,
            }
        })?;
        // Over TLS the certificates prove both sides, and the token, which
        // lets its holder act as any worker, stays home.
        let token = match endpoint {
            Endpoint::Https(_) => AttachToken::default(),
            _ => self.token.clone(),
        };
        Ok(InterceptedService::new(channel, token))
    }
}

/// All registered workers, by id.
#[derive(Debug, Default)]
pub struct Registry {
    links: Links,
    workers: Mutex<HashMap<String, Worker>>,
    /// Woken when a worker registers, so queued requests try again.
    pub changed: Notify,
}

impl Registry {
    /// Returns an empty registry that reaches workers through `links`.
    pub fn new(links: Links) -> Registry {
        Registry {
            links,
            ..Registry::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().expect("registry lock poisoned")
    }

    /// Adds or refreshes a worker, marks it READY, and returns the worker
    /// with its new generation.
    pub fn register(
        &self,
        id: &str,
        name: &str,
        address: &str,
        labels: HashMap<String, String>,
    ) -> Result<Worker, RegistryError> {
        if !herd_proto::names::is_valid_id(id) {
            return Err(RegistryError::InvalidId(id.to_owned()));
        }
        let endpoint: Endpoint =
            address
                .parse()
                .map_err(|source| RegistryError::InvalidAddress {
                    address: address.to_owned(),
                    source,
                })?;
        let channel = self.links.connect(&endpoint, id)?;
        let info = WorkerInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            address: address.to_owned(),
            labels,
            state: WorkerState::Ready as i32,
            running: 0,
            last_heartbeat: Some(SystemTime::now().into()),
            metrics: None,
        };
        let mut workers = self.lock();
        if let Some(old) = workers.get(id)
            && old.info.address != address
            && old.info.state == WorkerState::Ready as i32
            && !old.restored
        {
            return Err(RegistryError::Duplicate {
                id: id.to_owned(),
                address: old.info.address.clone(),
            });
        }
        let generation = workers.get(id).map_or(0, |old| old.generation + 1);
        let worker = Worker {
            info,
            channel,
            generation,
            restored: false,
            last_seen: Instant::now(),
        };
        workers.insert(id.to_owned(), worker.clone());
        drop(workers);
        self.changed.notify_waiters();
        Ok(worker)
    }

    /// Adds a worker saved by an earlier run of the manager. Its lease
    /// starts now: unless it registers again in time, it is lost and so are
    /// its processes.
    pub fn restore(&self, mut info: WorkerInfo) {
        let Ok(endpoint) = info.address.parse::<Endpoint>() else {
            return;
        };
        let Ok(channel) = self.links.connect(&endpoint, &info.id) else {
            return;
        };
        info.state = WorkerState::Ready as i32;
        info.running = 0;
        let worker = Worker {
            info,
            channel,
            generation: 0,
            restored: true,
            // The lease runs from when the worker can have noticed the
            // restart and come back through its retry backoff.
            last_seen: Instant::now() + RESTORE_GRACE,
        };
        self.lock().insert(worker.info.id.clone(), worker);
    }

    /// Stores a metrics sample of worker `id`; returns false when the
    /// worker has registered again or is lost since `generation`.
    pub fn store_metrics(&self, id: &str, generation: u64, metrics: Option<WorkerMetrics>) -> bool {
        let mut workers = self.lock();
        let Some(worker) = workers.get_mut(id).filter(|w| is_current(w, generation)) else {
            return false;
        };
        worker.info.metrics = metrics;
        true
    }

    /// Reports whether worker `id` is READY in registration `generation`.
    pub fn is_current(&self, id: &str, generation: u64) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|w| is_current(w, generation))
    }

    /// Renews a READY worker's lease.
    pub fn heartbeat(&self, id: &str, metrics: Option<WorkerMetrics>) -> Result<(), RegistryError> {
        let mut workers = self.lock();
        let worker = workers
            .get_mut(id)
            .filter(|worker| worker.info.state == WorkerState::Ready as i32 && !worker.restored)
            .ok_or_else(|| RegistryError::Unknown(id.to_owned()))?;
        worker.last_seen = Instant::now();
        worker.info.last_heartbeat = Some(SystemTime::now().into());
        if worker.info.metrics.is_none() {
            worker.info.metrics = metrics;
        }
        Ok(())
    }

    /// Marks READY workers whose lease ran out as LOST and returns their ids.
    pub fn expire(&self, lease: Duration) -> Vec<String> {
        let mut lost = Vec::new();
        for worker in self.lock().values_mut() {
            let ready = worker.info.state == WorkerState::Ready as i32;
            if ready && worker.last_seen.elapsed() > lease {
                worker.info.state = WorkerState::Lost as i32;
                lost.push(worker.info.id.clone());
            }
        }
        lost
    }

    /// Picks the READY worker that meets `constraints` and has the fewest
    /// running processes, and counts one more process on it.
    pub fn place(&self, constraints: &Constraints) -> Option<Worker> {
        let mut workers = self.lock();
        let chosen = workers
            .values_mut()
            .filter(|worker| matches(worker, constraints))
            .min_by(|a, b| (a.info.running, &a.info.id).cmp(&(b.info.running, &b.info.id)))?;
        chosen.info.running += 1;
        Some(chosen.clone())
    }

    /// Counts one process fewer on `id`.
    pub fn release(&self, id: &str) {
        if let Some(worker) = self.lock().get_mut(id) {
            worker.info.running = worker.info.running.saturating_sub(1);
        }
    }

    /// Returns the channel to a worker that is not LOST.
    pub fn channel(&self, id: &str) -> Option<TokenChannel> {
        let workers = self.lock();
        let worker = workers.get(id)?;
        (worker.info.state != WorkerState::Lost as i32).then(|| worker.channel.clone())
    }

    /// Returns every worker, sorted by id.
    pub fn list(&self) -> Vec<WorkerInfo> {
        let mut infos: Vec<WorkerInfo> = self.lock().values().map(|w| w.info.clone()).collect();
        infos.sort_by(|a, b| a.id.cmp(&b.id));
        infos
    }
}

fn is_current(worker: &Worker, generation: u64) -> bool {
    worker.generation == generation && worker.info.state == WorkerState::Ready as i32
}

fn matches(worker: &Worker, constraints: &Constraints) -> bool {
    let info = &worker.info;
    info.state == WorkerState::Ready as i32
        && !worker.restored
        && (constraints.worker_id.is_empty() || constraints.worker_id == info.id)
        && !constraints.excluded.contains(&info.id)
        && constraints
            .labels
            .iter()
            .all(|(key, value)| info.labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(ids: &[&str]) -> Registry {
        let registry = Registry::default();
        for id in ids {
            let labels = HashMap::from([("zone".to_owned(), format!("zone-{id}"))]);
            registry
                .register(id, id, &format!("unix:///tmp/{id}.sock"), labels)
                .unwrap();
        }
        registry
    }

    #[tokio::test]
    async fn placement_prefers_fewest_running() {
        let registry = registry_with(&["w1", "w2"]);
        let first = registry.place(&Constraints::default()).unwrap();
        let second = registry.place(&Constraints::default()).unwrap();
        assert_ne!(first.info.id, second.info.id);
        registry.release(&first.info.id);
        let third = registry.place(&Constraints::default()).unwrap();
        assert_eq!(third.info.id, first.info.id);
    }

    #[tokio::test]
    async fn placement_honours_id_labels_and_exclusions() {
        let registry = registry_with(&["w1", "w2"]);
        let by_id = Constraints {
            worker_id: "w2".into(),
            ..Constraints::default()
        };
        assert_eq!(registry.place(&by_id).unwrap().info.id, "w2");
        let by_label = Constraints {
            labels: HashMap::from([("zone".into(), "zone-w1".into())]),
            ..Constraints::default()
        };
        assert_eq!(registry.place(&by_label).unwrap().info.id, "w1");
        let excluded = Constraints {
            worker_id: "w1".into(),
            excluded: vec!["w1".into()],
            ..Constraints::default()
        };
        assert!(registry.place(&excluded).is_none());
    }

    #[tokio::test]
    async fn expired_worker_is_lost_until_it_registers() {
        let registry = registry_with(&["w1"]);
        assert_eq!(registry.expire(Duration::ZERO), vec!["w1".to_owned()]);
        assert!(registry.place(&Constraints::default()).is_none());
        assert!(registry.heartbeat("w1", None).is_err());
        registry
            .register("w1", "w1", "unix:///tmp/w1.sock", HashMap::new())
            .unwrap();
        assert!(registry.place(&Constraints::default()).is_some());
    }

    #[tokio::test]
    async fn live_id_cannot_move_address() {
        let registry = registry_with(&["w1"]);
        let second = registry.register("w1", "w1", "unix:///tmp/other.sock", HashMap::new());
        assert!(matches!(second, Err(RegistryError::Duplicate { .. })));
        let same = registry.register("w1", "w1", "unix:///tmp/w1.sock", HashMap::new());
        assert!(same.is_ok());
        registry.expire(Duration::ZERO);
        let after_loss = registry.register("w1", "w1", "unix:///tmp/other.sock", HashMap::new());
        assert!(after_loss.is_ok());
    }

    #[tokio::test]
    async fn bad_registrations_are_rejected() {
        let registry = Registry::default();
        let bad_id = registry.register("", "n", "unix:///tmp/x.sock", HashMap::new());
        assert!(matches!(bad_id, Err(RegistryError::InvalidId(_))));
        let bad_address = registry.register("w", "n", "nowhere", HashMap::new());
        assert!(matches!(
            bad_address,
            Err(RegistryError::InvalidAddress { .. })
        ));
    }
}
