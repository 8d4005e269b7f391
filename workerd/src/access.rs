//! Who may call the worker, and how the worker proves itself to the
//! manager: the join token on unix sockets and plaintext TCP, certificates
//! over TLS.

use std::path::PathBuf;
use std::sync::Mutex;

use herd_proto::peer::{Gate, JoinToken, Peer, TOKEN_HEADER};
use tonic::Status;
use tonic::codegen::http;

/// The join token, read from its file when first needed: at the first
/// start of a host the manager may create it after the worker starts.
#[derive(Debug)]
pub struct TokenSource {
    path: PathBuf,
    loaded: Mutex<Option<JoinToken>>,
}

impl TokenSource {
    pub fn new(path: PathBuf) -> TokenSource {
        TokenSource {
            path,
            loaded: Mutex::default(),
        }
    }

    /// Returns the token, reading the file if it was not read yet.
    pub fn get(&self) -> anyhow::Result<JoinToken> {
        let mut loaded = self.loaded.lock().expect("token lock poisoned");
        if let Some(token) = &*loaded {
            return Ok(token.clone());
        }
        let token = JoinToken::load(&self.path).map_err(|error| {
            anyhow::anyhow!(
                "failed to read the join token {}: {error}; copy the manager's join-token \
                 file there, or set join_token_file",
                self.path.display()
            )
        })?;
        *loaded = Some(token.clone());
        Ok(token)
    }
}

/// Admits the manager only: a call with the join token, or over TLS with
/// the manager's certificate. Health checks and reflection are open to
/// anyone who can connect.
#[derive(Debug)]
pub struct WorkerGate {
    pub token: std::sync::Arc<TokenSource>,
    /// The common name of the manager's certificate.
    pub manager_name: String,
}

impl Gate for WorkerGate {
    fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<(), Status> {
        if path.starts_with("/grpc.health.v1.Health/")
            || path.starts_with("/grpc.reflection.v1.ServerReflection/")
        {
            return Ok(());
        }
        let peer = Peer::of(extensions)?;
        if matches!(&peer, Peer::Certificate { name } if *name == self.manager_name) {
            return Ok(());
        }
        if headers.contains_key(TOKEN_HEADER) {
            let token = self.token.get().map_err(|error| {
                tracing::error!(error = %error, "cannot check a call's join token");
                Status::unauthenticated(format!("{error:#}"))
            })?;
            if token.presented_in(headers) {
                return Ok(());
            }
            tracing::warn!(path, "call rejected: wrong join token");
            return Err(Status::unauthenticated("the join token is wrong"));
        }
        tracing::warn!(%peer, path, "call rejected: not the manager");
        Err(Status::permission_denied(format!(
            "{peer} may not call {path}: only the manager may call the worker API, with the \
             join token or a certificate named {:?}",
            self.manager_name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXECUTE: &str = "/herd.v1.WorkerProcessService/ExecuteCommand";

    fn gate() -> (tempfile::TempDir, WorkerGate) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("join-token");
        JoinToken::load_or_create(&path).unwrap();
        let gate = WorkerGate {
            token: std::sync::Arc::new(TokenSource::new(path)),
            manager_name: "herd-managerd".into(),
        };
        (dir, gate)
    }

    fn token_headers(gate: &WorkerGate, text: Option<&str>) -> http::HeaderMap {
        let token = gate.token.get().unwrap();
        let text = text.unwrap_or_else(|| std::str::from_utf8(token.as_bytes()).unwrap());
        let mut headers = http::HeaderMap::new();
        headers.insert(TOKEN_HEADER, text.parse().unwrap());
        headers
    }

    fn local_root() -> http::Extensions {
        http::Extensions::new()
    }

    #[test]
    fn token_admits_and_wrong_token_fails() {
        let (_dir, gate) = gate();
        let good = token_headers(&gate, None);
        assert!(gate.admit(EXECUTE, &good, &mut local_root()).is_ok());
        let bad = token_headers(&gate, Some("0000000000000000"));
        let error = gate.admit(EXECUTE, &bad, &mut local_root()).unwrap_err();
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn non_manager_callers_are_rejected() {
        let (_dir, gate) = gate();
        let empty = http::HeaderMap::new();
        let error = gate.admit(EXECUTE, &empty, &mut local_root()).unwrap_err();
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        assert!(
            error.message().contains("herd-managerd"),
            "{}",
            error.message()
        );
        assert!(
            gate.admit("/grpc.health.v1.Health/Check", &empty, &mut local_root())
                .is_ok()
        );
    }

    #[test]
    fn missing_token_file_is_named() {
        let source = TokenSource::new("/nonexistent/join-token".into());
        let error = source.get().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/join-token"), "{error}");
    }
}
