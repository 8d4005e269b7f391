use super::*;

fn token() -> JoinToken {
    let dir = tempfile::tempdir().unwrap();
    JoinToken::load_or_create(&dir.path().join("token")).unwrap()
}

fn gate(viewers_see_all: bool) -> ManagerGate {
    let roles = HashMap::from([
        ("alice".to_owned(), Role::Operator),
        ("vera".to_owned(), Role::Viewer),
        ("boss".to_owned(), Role::Admin),
        ("w1".to_owned(), Role::Worker),
        ("uid:4001".to_owned(), Role::Viewer),
        ("uid:4002".to_owned(), Role::Worker),
    ]);
    ManagerGate::new(Policy {
        roles,
        local_role: Role::Operator,
        admin_group: Some(4100),
        viewers_see_all,
        join_token: token(),
    })
}

fn certificate(name: &str) -> Peer {
    Peer::Certificate { name: name.into() }
}

fn process(owner: &str) -> ProcessStatus {
    ProcessStatus {
        id: "p1".into(),
        owner: owner.into(),
        ..ProcessStatus::default()
    }
}

const RUN: &str = "/herd.v1.ProcessManagementService/ExecuteDistributedCommand";
const KILL: &str = "/herd.v1.ProcessManagementService/TerminateProcess";
const STATUS: &str = "/herd.v1.ProcessManagementService/GetProcessStatus";
const REGISTER: &str = "/herd.v1.WorkerRegistrationService/RegisterWorker";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

fn identify(gate: &ManagerGate, peer: Peer) -> Caller {
    gate.identify(&peer, &http::HeaderMap::new()).unwrap()
}

#[test]
fn local_users_map_to_roles() {
    let gate = gate(false);
    let root = identify(&gate, Peer::Local { uid: 0, gid: 0 });
    assert_eq!((root.identity.as_str(), root.role), ("uid:0", Role::Admin));
    let group_admin = identify(
        &gate,
        Peer::Local {
            uid: 4000,
            gid: 4100,
        },
    );
    assert_eq!(group_admin.role, Role::Admin);
    let listed = identify(
        &gate,
        Peer::Local {
            uid: 4001,
            gid: 4001,
        },
    );
    assert_eq!(listed.role, Role::Viewer);
    let other = identify(
        &gate,
        Peer::Local {
            uid: 4003,
            gid: 4003,
        },
    );
    assert_eq!(
        (other.identity.as_str(), other.role),
        ("uid:4003", Role::Operator)
    );
}

#[test]
fn local_users_never_become_workers_by_role() {
    let caller = identify(
        &gate(false),
        Peer::Local {
            uid: 4002,
            gid: 4002,
        },
    );
    assert_eq!(caller.role, Role::Operator);
    let error = caller.allowed(need_of(REGISTER), REGISTER).unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
}

#[test]
fn certificates_need_a_listed_role() {
    let gate = gate(false);
    assert_eq!(identify(&gate, certificate("alice")).role, Role::Operator);
    let error = gate
        .identify(&certificate("mallory"), &http::HeaderMap::new())
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
    assert!(error.message().contains("[roles]"), "{}", error.message());
}

#[test]
fn plaintext_without_a_token_is_unauthenticated() {
    let error = gate(false)
        .identify(&Peer::Anonymous, &http::HeaderMap::new())
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
}

#[test]
fn join_token_admits_workers() {
    let gate = gate(false);
    let mut headers = http::HeaderMap::new();
    let presented = std::str::from_utf8(gate.policy.join_token_bytes()).unwrap();
    headers.insert(herd_proto::peer::TOKEN_HEADER, presented.parse().unwrap());
    let caller = gate.identify(&Peer::Anonymous, &headers).unwrap();
    assert_eq!(caller.role, Role::Worker);
    assert!(caller.allowed(need_of(REGISTER), REGISTER).is_ok());
    assert!(caller.allowed(need_of(STATUS), STATUS).is_err());

    headers.insert(herd_proto::peer::TOKEN_HEADER, "wrong".parse().unwrap());
    let error = gate.identify(&Peer::Local { uid: 0, gid: 0 }, &headers);
    assert_eq!(error.unwrap_err().code(), tonic::Code::Unauthenticated);
}

#[test]
fn methods_need_their_roles() {
    let gate = gate(false);
    let viewer = identify(&gate, certificate("vera"));
    for path in [RUN, KILL, REGISTER] {
        assert!(viewer.allowed(need_of(path), path).is_err(), "{path}");
    }
    assert!(viewer.allowed(need_of(STATUS), STATUS).is_ok());
    let worker = identify(&gate, certificate("w1"));
    for path in [RUN, KILL, STATUS] {
        let error = worker.allowed(need_of(path), path).unwrap_err();
        assert!(error.message().contains(path), "{}", error.message());
    }
    assert!(worker.allowed(need_of(HEALTH), HEALTH).is_ok());
    let operator = identify(&gate, certificate("alice"));
    assert!(operator.allowed(need_of(REGISTER), REGISTER).is_err());
}

#[test]
fn owners_and_admins_touch_processes() {
    let gate = gate(false);
    let alice = identify(&gate, certificate("alice"));
    let boss = identify(&gate, certificate("boss"));
    let vera = identify(&gate, certificate("vera"));
    let bobs = process("bob");
    let error = alice.may_read(&bobs).unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
    assert!(error.message().contains("bob"), "{}", error.message());
    assert!(alice.may_terminate(&bobs).is_err());
    assert!(alice.may_terminate(&process("alice")).is_ok());
    assert!(boss.may_read(&bobs).is_ok());
    assert!(boss.may_terminate(&bobs).is_ok());
    assert!(vera.may_read(&bobs).is_err());
    assert!(vera.may_terminate(&process("vera")).is_err());
}

#[test]
fn viewers_may_see_all() {
    let vera = identify(&gate(true), certificate("vera"));
    assert!(vera.may_read(&process("bob")).is_ok());
    assert!(vera.may_terminate(&process("bob")).is_err());
}

#[test]
fn worker_certificates_bind_their_id() {
    let gate = gate(false);
    let worker = identify(&gate, certificate("w1"));
    assert!(worker.may_be_worker("w1").is_ok());
    let error = worker.may_be_worker("w2").unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
    let mut headers = http::HeaderMap::new();
    let presented = std::str::from_utf8(gate.policy.join_token_bytes()).unwrap();
    headers.insert(herd_proto::peer::TOKEN_HEADER, presented.parse().unwrap());
    let local = gate
        .identify(&Peer::Local { uid: 0, gid: 0 }, &headers)
        .unwrap();
    assert!(local.may_be_worker("any").is_ok());
}

#[test]
fn certificate_workers_register_https_only() {
    let worker = identify(&gate(false), certificate("w1"));
    assert!(worker.may_register_at("https://127.0.0.1:50052").is_ok());
    let error = worker.may_register_at("unix:///tmp/w1.sock").unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
    assert!(error.message().contains("https://"), "{}", error.message());
}

#[test]
fn manager_certificate_is_not_a_client() {
    let error = gate(false)
        .identify(&certificate("herd-managerd"), &http::HeaderMap::new())
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::PermissionDenied);
}
