//! Who may do what on the manager. Every call passes [`ManagerGate`],
//! which names the caller and checks its role against the method; the
//! handlers then ask [`Caller`] about the one process a call touches.
//! Together they are the only place access is decided.
//!
//! Identities: a local user on the unix socket is `uid:N`; a TLS client is
//! its certificate's common name; a worker proves itself with a worker
//! certificate or the join token.

mod local;
mod role;

use std::collections::HashMap;
use std::fmt;

use herd_proto::peer::{Gate, JoinToken, Peer};
use herd_proto::v1::ProcessStatus;
use tonic::Status;
use tonic::codegen::http;

pub use local::Groups;
pub use role::Role;

/// The manager's access settings, from its config file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Roles by identity: a certificate name, a user name or `uid:N`.
    pub roles: HashMap<String, Role>,
    /// Role of local users with no entry in `roles`.
    pub local_role: Role,
    /// Local users in this group are admins, as root is.
    pub admin_group: Option<u32>,
    /// Viewers read every process, not only their own.
    pub viewers_see_all: bool,
    /// The secret workers present on transports without certificates.
    pub join_token: JoinToken,
}

#[cfg(test)]
impl Policy {
    fn join_token_bytes(&self) -> &[u8] {
        self.join_token.as_bytes()
    }
}

/// A caller the gate admitted, left in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The identity processes record as their owner.
    pub identity: String,
    pub role: Role,
    /// The certificate's name, when a certificate proved the identity.
    pub certificate: Option<String>,
    sees_all: bool,
}

/// The access a method needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Starting commands: admins and operators.
    Start,
    /// Terminating commands: admins, and operators for their own.
    Terminate,
    /// Reading processes and workers: every client role.
    Read,
    /// Registering and heartbeats: workers only.
    Worker,
    /// Health checks and reflection: any identity.
    Anyone,
}

/// Maps a gRPC path to what its method needs. Unknown methods need a
/// client role, and tonic returns UNIMPLEMENTED for them.
fn need_of(path: &str) -> Need {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or_default();
    match (service, method) {
        ("herd.v1.ProcessManagementService", "ExecuteDistributedCommand") => Need::Start,
        ("herd.v1.ProcessManagementService", "TerminateProcess") => Need::Terminate,
        ("herd.v1.WorkerRegistrationService", _) => Need::Worker,
        ("grpc.health.v1.Health", _) | ("grpc.reflection.v1.ServerReflection", _) => Need::Anyone,
        _ => Need::Read,
    }
}

/// The manager's [`Gate`].
#[derive(Debug)]
pub struct ManagerGate {
    policy: Policy,
    groups: Groups,
}

impl ManagerGate {
    pub fn new(policy: Policy) -> ManagerGate {
        ManagerGate {
            policy,
            groups: Groups,
        }
    }

    /// Names the caller and its role. A worker is recognised by the join
    /// token or a certificate with the worker role.
    fn identify(&self, peer: &Peer, headers: &http::HeaderMap) -> Result<Caller, Status> {
        if headers.contains_key(herd_proto::peer::TOKEN_HEADER) {
            if !self.policy.join_token.presented_in(headers) {
                return Err(Status::unauthenticated(
                    "the join token is wrong: copy the manager's join-token file to the worker",
                ));
            }
            return Ok(self.caller(format!("worker via join token ({peer})"), Role::Worker));
        }
        match peer {
            Peer::Local { uid, gid } => Ok(self.local(*uid, *gid)),
            Peer::Certificate { name } if name == crate::certs::MANAGER_NAME => {
                Err(Status::permission_denied(format!(
                    "{name:?} is the manager's certificate, not a client's: use a client \
                     certificate (herd-managerd certs --client NAME)"
                )))
            }
            Peer::Certificate { name } => match self.policy.roles.get(name) {
                Some(role) => Ok(Caller {
                    certificate: Some(name.clone()),
                    ..self.caller(name.clone(), *role)
                }),
                None => Err(Status::permission_denied(format!(
                    "certificate {name:?} has no role: add `{name} = \"operator\"` (or admin, \
                     viewer, worker) under [roles] in the manager's config"
                ))),
            },
            Peer::Anonymous => Err(Status::unauthenticated(
                "plaintext TCP carries no identity: connect over the unix socket, or over \
                 https:// with a client certificate",
            )),
        }
    }

    fn local(&self, uid: u32, gid: u32) -> Caller {
        let identity = format!("uid:{uid}");
        let admin = uid == 0
            || self
                .policy
                .admin_group
                .is_some_and(|group| gid == group || self.groups.member(uid, gid, group));
        if admin {
            return self.caller(identity, Role::Admin);
        }
        let named = self.policy.roles.get(&identity).or_else(|| {
            self.groups
                .user_name(uid)
                .and_then(|name| self.policy.roles.get(&name))
        });
        // The worker role is for certificates; a local worker uses the
        // join token.
        let role = match named {
            Some(role) if *role != Role::Worker => *role,
            _ => self.policy.local_role,
        };
        self.caller(identity, role)
    }

    fn caller(&self, identity: String, role: Role) -> Caller {
        Caller {
            identity,
            role,
            certificate: None,
            sees_all: role == Role::Admin || (role == Role::Viewer && self.policy.viewers_see_all),
        }
    }
}

impl Gate for ManagerGate {
    fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<(), Status> {
        let peer = Peer::of(extensions)?;
        let caller = self.identify(&peer, headers)?;
        let need = need_of(path);
        if let Err(status) = caller.allowed(need, path) {
            tracing::warn!(caller = %caller, path, "call rejected");
            return Err(status);
        }
        extensions.insert(caller);
        Ok(())
    }
}

impl Caller {
    fn allowed(&self, need: Need, path: &str) -> Result<(), Status> {
        let allowed = match need {
            Need::Anyone => true,
            Need::Worker => self.role == Role::Worker,
            Need::Read => self.role != Role::Worker,
            Need::Start | Need::Terminate => matches!(self.role, Role::Admin | Role::Operator),
        };
        if allowed {
            return Ok(());
        }
        let rule = match need {
            Need::Worker => {
                "only workers, with a worker certificate or the join token, may call it"
            }
            Need::Read => "workers may not call the client API",
            Need::Start | Need::Terminate => {
                "only admins and operators may start or terminate commands"
            }
            Need::Anyone => unreachable!("every identity may call health and reflection"),
        };
        Err(Status::permission_denied(format!(
            "{self} may not call {path}: {rule}"
        )))
    }

    /// Checks that a worker may act as worker `id`: one with a certificate
    /// only as the id its certificate names.
    pub fn may_be_worker(&self, id: &str) -> Result<(), Status> {
        match &self.certificate {
            Some(name) if name != id => Err(Status::permission_denied(format!(
                "certificate {name:?} may act only as worker {name:?}, not {id:?}: start the \
                 worker with --id {name} or issue it a certificate for {id}"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks the address a worker registers: one proven by a certificate
    /// must serve over https, because the manager sends the join token to
    /// every other kind of address.
    pub fn may_register_at(&self, address: &str) -> Result<(), Status> {
        if self.certificate.is_some() && !address.starts_with("https://") {
            return Err(Status::permission_denied(format!(
                "worker {self} registered {address:?}: a worker with a certificate must \
                 listen on https://, with --listen https://HOST:PORT"
            )));
        }
        Ok(())
    }

    /// Reports whether the caller may see `process` at all.
    pub fn sees(&self, process: &ProcessStatus) -> bool {
        self.sees_all || process.owner == self.identity
    }

    /// Checks that the caller may read, follow or wait on `process`.
    pub fn may_read(&self, process: &ProcessStatus) -> Result<(), Status> {
        if self.sees(process) {
            return Ok(());
        }
        Err(self.not_owner(process, "read"))
    }

    /// Checks that the caller may terminate or signal `process`.
    pub fn may_terminate(&self, process: &ProcessStatus) -> Result<(), Status> {
        let allowed = match self.role {
            Role::Admin => true,
            Role::Operator => process.owner == self.identity,
            Role::Viewer | Role::Worker => false,
        };
        if allowed {
            return Ok(());
        }
        Err(self.not_owner(process, "terminate"))
    }

    fn not_owner(&self, process: &ProcessStatus, action: &str) -> Status {
        Status::permission_denied(format!(
            "{self} may not {action} process {}: it belongs to {}, and only its owner and \
             admins may",
            process.id,
            if process.owner.is_empty() {
                "nobody"
            } else {
                &process.owner
            }
        ))
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.identity, self.role)
    }
}

/// Returns the caller the gate left in `request`.
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call carries no checked identity"))
}

#[cfg(test)]
mod tests;
