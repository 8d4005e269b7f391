//! Authentication and authorization with the real binaries and real
//! certificates: mutual TLS at the handshake, roles and ownership, the unix
//! socket's group, and workers apart from clients.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use herd_proto::endpoint::Endpoint;
use herd_proto::v1::worker_process_service_client::WorkerProcessServiceClient;
use herd_proto::v1::worker_registration_service_client::WorkerRegistrationServiceClient;
use herd_proto::v1::{RegisterWorkerRequest, WorkerListProcessesRequest};
use herd_tests::pki::{Pki, free_port, probe};
use herd_tests::{Cluster, binary, can_run};

const LEASE: Duration = Duration::from_secs(3);

const ROLES: &str = r#"
[roles]
alice = "operator"
bob = "operator"
vera = "viewer"
boss = "admin"
w1 = "worker"
"#;

/// A manager on its unix socket and on https, with certificates for the
/// clients in [`ROLES`], worker w1 and the manager.
struct Secure {
    cluster: Cluster,
    pki: Pki,
    https: String,
    port: u16,
}

impl Secure {
    fn start() -> Secure {
        let mut cluster = Cluster::start_manager_only(LEASE, &[]);
        cluster.stop_manager();
        let dir = cluster.dir.path().join("tls");
        let pki = Pki::create(
            &dir,
            &[
                "--manager",
                "--worker",
                "w1",
                "--client",
                "alice",
                "--client",
                "bob",
                "--client",
                "vera",
                "--client",
                "boss",
            ],
        );
        let config = cluster.dir.path().join("managerd.toml");
        std::fs::write(&config, ROLES).expect("write the config");
        let port = free_port();
        let https = format!("https://127.0.0.1:{port}");
        let mut extra = vec!["--config".to_owned(), config.display().to_string()];
        extra.extend(["--listen".to_owned(), https.clone()]);
        extra.extend(pki.flags("manager"));
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        cluster.start_manager_with(&extra);
        wait_for_port(port);
        Secure {
            cluster,
            pki,
            https,
            port,
        }
    }

    /// Runs the CLI over https as client `name`.
    fn herd_as(&self, name: &str, args: &[&str]) -> Output {
        let env = self.pki.client_env(name, &self.https);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.cluster.herd_env(&env, args)
    }

    fn herd_ok_as(&self, name: &str, args: &[&str]) -> String {
        let output = self.herd_as(name, args);
        assert!(
            output.status.success(),
            "herd {args:?} as {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Starts a secure cluster with a local worker, where alice runs
    /// `sleep 60`; returns it with the process id.
    fn with_alices_sleep() -> (Secure, String) {
        let mut secure = Secure::start();
        secure.start_local_worker();
        let id = secure
            .herd_ok_as("alice", &["run", "-d", "--", "sleep", "60"])
            .trim()
            .to_owned();
        (secure, id)
    }

    /// Starts worker `id` with worker w1's certificate, listening on https
    /// on a free port, with `extra` flags; returns its https endpoint.
    fn start_tls_worker(&mut self, id: &str, extra: &[&str]) -> String {
        let https = format!("https://127.0.0.1:{}", free_port());
        let mut flags = vec!["--listen".to_owned(), https.clone()];
        flags.extend(self.pki.flags("worker-w1"));
        flags.extend(extra.iter().map(|flag| (*flag).to_owned()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.cluster.start_worker_with(id, &flags);
        https
    }

    /// Starts worker w1 on the unix socket, with the join token.
    fn start_local_worker(&mut self) {
        self.cluster.start_worker("w1");
        self.cluster
            .wait_worker_state("w1", "READY", Duration::from_secs(10));
    }
}

fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port}");
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the CLI failed with exit code 125 and `expected` in its error.
fn assert_rejected(output: &Output, expected: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(125), "{text}");
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
}

#[test]
fn handshake_rejects_bad_certificates() {
    if !can_run() {
        return;
    }
    let secure = Secure::start();
    let other = Pki::create(
        &secure.cluster.dir.path().join("other"),
        &["--client", "alice"],
    );
    secure.pki.expired_client("old");

    let rejected = [
        ("no certificate", secure.pki.client_config(None)),
        (
            "another CA",
            secure.pki.client_config(Some((&other, "alice"))),
        ),
        (
            "expired",
            secure.pki.client_config(Some((&secure.pki, "old"))),
        ),
    ];
    for (case, config) in rejected {
        let error = probe(secure.port, config).expect_err(case);
        assert!(
            error.contains("alert") || error.contains("closed"),
            "{case}: {error}"
        );
    }
    // The same handshake with a valid certificate gets a reply.
    probe(
        secure.port,
        secure.pki.client_config(Some((&secure.pki, "alice"))),
    )
    .unwrap();

    let foreign = other.client_env("alice", &secure.https);
    let foreign: Vec<(&str, &str)> = foreign
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_rejected(&secure.cluster.herd_env(&foreign, &["ps"]), "TLS");
    // The CLI checks its own certificate first; the probe above shows the
    // manager rejects it too.
    assert_rejected(&secure.herd_as("old", &["ps"]), "is not valid now");
    let log = secure.cluster.log("manager");
    assert!(log.contains("TLS handshake rejected"), "{log}");
    // The manager keeps serving.
    secure.herd_ok_as("alice", &["ps"]);
}

#[test]
fn mutual_tls_runs_a_command() {
    if !can_run() {
        return;
    }
    let mut secure = Secure::start();
    let manager = secure.https.clone();
    secure.start_tls_worker("w1", &["--manager", &manager]);
    secure
        .cluster
        .wait_worker_state("w1", "READY", Duration::from_secs(10));

    let output = secure.herd_as("alice", &["run", "--", "echo", "hi over mutual TLS"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hi over mutual TLS\n",
        "{}",
        stderr(&output)
    );
    assert!(output.status.success());
    let listed = secure.herd_ok_as("alice", &["ps", "-a", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["owner"], "alice", "{listed}");
}

#[test]
fn operators_cannot_touch_each_others_processes() {
    if !can_run() {
        return;
    }
    let (secure, id) = Secure::with_alices_sleep();

    for verb in [
        vec!["status", &id],
        vec!["logs", &id],
        vec!["wait", &id],
        vec!["kill", &id],
    ] {
        let output = secure.herd_as("bob", &verb);
        assert_rejected(&output, "may not");
        assert!(stderr(&output).contains("alice"), "{}", stderr(&output));
    }
    let listed = secure.herd_ok_as("bob", &["ps", "-a", "-q"]);
    assert!(!listed.contains(&id), "bob sees alice's process: {listed}");
    let status = secure.cluster.status(&id);
    assert_eq!(status["state"], "RUNNING", "{status}");

    assert!(secure.herd_ok_as("boss", &["ps", "-q"]).contains(&id));
    secure.herd_ok_as("boss", &["kill", "--grace", "1s", &id]);
    let status = secure
        .cluster
        .wait_status(&id, Duration::from_secs(10), |s| s["state"] == "ABORTED");
    assert_eq!(status["reason"], "TERMINATED_BY_USER", "{status}");
}

#[test]
fn viewers_cannot_start_or_terminate() {
    if !can_run() {
        return;
    }
    let (secure, id) = Secure::with_alices_sleep();
    assert_rejected(
        &secure.herd_as("vera", &["run", "--", "true"]),
        "only admins and operators may start or terminate",
    );
    assert_rejected(&secure.herd_as("vera", &["kill", &id]), "may not");
    assert_rejected(&secure.herd_as("vera", &["status", &id]), "may not");
    secure.herd_ok_as("vera", &["workers"]);
    assert_eq!(secure.cluster.status(&id)["state"], "RUNNING");
    let stored = secure.cluster.herd_ok(&["ps", "-a", "-q"]);
    assert_eq!(
        stored.lines().count(),
        1,
        "only alice's process exists: {stored}"
    );
    secure.herd_ok_as("alice", &["kill", "--grace", "1s", &id]);
}

/// Runs the CLI as `uid` with primary group `uid` and supplementary
/// `groups`, without needing the user in the user database.
fn herd_as_local(cluster: &Cluster, uid: u32, groups: &[u32], args: &[&str]) -> Output {
    let groups = groups.to_vec();
    let mut command = Command::new(binary("herd"));
    command
        .env("HERD_ADDR", cluster.addr())
        .args(args)
        .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(uid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("run herd")
}

#[test]
fn local_users_need_the_socket_group() {
    use std::os::unix::fs::PermissionsExt;
    if !can_run() {
        return;
    }
    const GROUP: u32 = 54_321;
    const USER: u32 = 54_320;
    let mut cluster = Cluster::start_manager_only(LEASE, &["--socket-group", "54321"]);
    // Let other users reach the socket's folder; the socket decides.
    std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    cluster.start_worker("w1");
    cluster.wait_worker_state("w1", "READY", Duration::from_secs(10));

    let outsider = herd_as_local(&cluster, USER, &[], &["ps"]);
    assert_rejected(&outsider, "add your user to the socket's group");

    let member = herd_as_local(
        &cluster,
        USER,
        &[GROUP],
        &["run", "-d", "--id", "local-1", "--", "true"],
    );
    assert!(member.status.success(), "{}", stderr(&member));
    let status = cluster.wait_status("local-1", Duration::from_secs(10), |s| {
        s["state"] == "COMPLETED"
    });
    assert_eq!(status["owner"], format!("uid:{USER}"), "{status}");
    // Another member is another operator and cannot read it.
    let other = herd_as_local(&cluster, USER + 1, &[GROUP], &["status", "local-1"]);
    assert_rejected(&other, "may not");
}

#[test]
fn client_certificates_cannot_act_as_workers() {
    if !can_run() {
        return;
    }
    let mut secure = Secure::start();
    secure.start_local_worker();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = secure.pki.client_files("alice").client_config().unwrap();
    let register = RegisterWorkerRequest {
        id: "w9".into(),
        address: "unix:///nonexistent.sock".into(),
        ..Default::default()
    };

    runtime.block_on(async {
        let endpoint: Endpoint = secure.https.parse().unwrap();
        let channel = endpoint.connect(Some(&tls)).await.unwrap();
        let error = WorkerRegistrationServiceClient::new(channel)
            .register_worker(register.clone())
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error:?}");
        assert!(error.message().contains("only workers"), "{error:?}");

        // Root on the manager's socket is an admin client, not a worker.
        let local: Endpoint = secure.cluster.addr().parse().unwrap();
        let channel = local.connect(None).await.unwrap();
        let error = WorkerRegistrationServiceClient::new(channel)
            .register_worker(register)
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error:?}");

        // Nor may root call a worker's API without the join token.
        let socket = secure.cluster.dir.path().join("w1.sock");
        let worker: Endpoint = format!("unix://{}", socket.display()).parse().unwrap();
        let channel = worker.connect(None).await.unwrap();
        let error = WorkerProcessServiceClient::new(channel)
            .list_processes(WorkerListProcessesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error:?}");
        assert!(error.message().contains("only the manager"), "{error:?}");
    });
    let workers = secure.cluster.herd_ok(&["workers", "-o", "json"]);
    assert!(!workers.contains("w9"), "{workers}");
}

#[test]
fn tls_worker_rejects_client_certificates() {
    if !can_run() {
        return;
    }
    let mut secure = Secure::start();
    let worker_https = secure.start_tls_worker("w1", &[]);
    secure
        .cluster
        .wait_worker_state("w1", "READY", Duration::from_secs(10));
    secure.herd_ok_as("alice", &["run", "--", "true"]);

    let tls = secure.pki.client_files("boss").client_config().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let endpoint: Endpoint = worker_https.parse().unwrap();
        let channel = endpoint.connect(Some(&tls)).await.unwrap();
        let error = WorkerProcessServiceClient::new(channel)
            .list_processes(WorkerListProcessesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied, "{error:?}");
        assert!(error.message().contains("boss"), "{error:?}");
    });
}

#[test]
fn worker_certificate_binds_its_id() {
    if !can_run() {
        return;
    }
    let mut secure = Secure::start();
    let manager = secure.https.clone();
    // Worker w2 with the certificate of w1.
    secure.start_tls_worker("w2", &["--manager", &manager]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !secure.cluster.log("w2").contains("may act only as worker") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            secure.cluster.log("w2")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let workers = secure.cluster.herd_ok(&["workers", "-o", "json"]);
    assert!(!workers.contains("w2"), "{workers}");
}
