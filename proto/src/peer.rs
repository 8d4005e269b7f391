//! Who is calling: the identity a transport proves, the join token that
//! workers and the manager share, and the gate every daemon puts in front
//! of all its services so each call is checked in one place.

use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::metadata::AsciiMetadataValue;
use tonic::server::NamedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};
use tonic::{Request, Status};

/// The metadata key that carries the join token.
pub const TOKEN_HEADER: &str = "x-herd-join-token";

/// Bytes of randomness in a generated join token.
const TOKEN_BYTES: usize = 32;

/// The caller's identity as the transport proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A local process on the unix socket, by its credentials.
    Local { uid: u32, gid: u32 },
    /// A TLS client, by the common name of its verified certificate.
    Certificate { name: String },
    /// Plaintext TCP, which proves nothing.
    Anonymous,
}

impl Peer {
    /// Reads the caller's identity from a request's connection info.
    /// Fails only for a TLS peer whose certificate names no valid identity.
    pub fn of(extensions: &http::Extensions) -> Result<Peer, Status> {
        if let Some(info) = extensions.get::<UdsConnectInfo>() {
            return Ok(match info.peer_cred {
                Some(cred) => Peer::Local {
                    uid: cred.uid(),
                    gid: cred.gid(),
                },
                None => Peer::Anonymous,
            });
        }
        if let Some(info) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
            let chain = info.peer_certs().unwrap_or_default();
            let name = crate::tls::peer_name(&chain)
                .map_err(|error| Status::unauthenticated(error.to_string()))?;
            return Ok(Peer::Certificate { name });
        }
        Ok(Peer::Anonymous)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Local { uid, .. } => write!(f, "uid:{uid}"),
            Peer::Certificate { name } => f.write_str(name),
            Peer::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// The secret the manager and its workers share, for calls on transports
/// without certificates (unix sockets and plaintext TCP).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken(String);

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinToken(<redacted>)")
    }
}

impl JoinToken {
    /// Reads the token from `path`, the first line with whitespace trimmed.
    pub fn load(path: &Path) -> io::Result<JoinToken> {
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a join token is at least 16 printable ASCII characters",
            ));
        }
        Ok(JoinToken(token.to_owned()))
    }

    /// Reads the token at `path`, first writing a new random one with mode
    /// 0600 when the file does not exist.
    pub fn load_or_create(path: &Path) -> io::Result<JoinToken> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let token: String = (0..TOKEN_BYTES)
            .map(|_| format!("{:02x}", rand_byte()))
            .collect();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(format!("{token}\n").as_bytes())?;
                file.sync_all()?;
                Ok(JoinToken(token))
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => JoinToken::load(path),
            Err(error) => Err(error),
        }
    }

    /// Compares with a presented token in time that does not depend on
    /// where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    /// Returns the token's text, to send to a peer.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Reports whether `headers` carry this token.
    pub fn presented_in(&self, headers: &http::HeaderMap) -> bool {
        headers
            .get(TOKEN_HEADER)
            .is_some_and(|value| self.matches(value.as_bytes()))
    }
}

fn rand_byte() -> u8 {
    let mut byte = [0u8; 1];
    // getrandom(2) blocks only until the kernel's pool is first seeded.
    // SAFETY: the buffer is valid for one byte.
    let filled = unsafe { libc::getrandom(byte.as_mut_ptr().cast(), 1, 0) };
    assert_eq!(filled, 1, "getrandom failed");
    byte[0]
}

/// Adds the join token, if any, to every call a client makes.
#[derive(Debug, Clone, Default)]
pub struct AttachToken(Option<AsciiMetadataValue>);

impl AttachToken {
    pub fn new(token: Option<&JoinToken>) -> AttachToken {
        AttachToken(token.and_then(|token| token.0.parse().ok()))
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(TOKEN_HEADER, token.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the join token.
pub type TokenChannel = tonic::service::interceptor::InterceptedService<Channel, AttachToken>;

/// A daemon's access rule: admits or rejects each call by its gRPC path
/// (`/package.Service/Method`), and may leave what it learned about the
/// caller in the request's extensions for the handler.
pub trait Gate: Send + Sync + fmt::Debug + 'static {
    fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<(), Status>;
}

/// A service behind a [`Gate`].
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    gate: Arc<dyn Gate>,
}

impl<S: Clone> Clone for Guarded<S> {
    fn clone(&self) -> Self {
        Guarded {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<S> Guarded<S> {
    pub fn new(inner: S, gate: Arc<dyn Gate>) -> Guarded<S> {
        Guarded { inner, gate }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<Body>> for Guarded<S>
where
    S: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let admitted = self
            .gate
            .admit(parts.uri.path(), &parts.headers, &mut parts.extensions);
        match admitted {
            Ok(()) => Box::pin(self.inner.call(http::Request::from_parts(parts, body))),
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let token = JoinToken("0123456789abcdef".into());
        assert!(token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b"0123456789abcdeF"));
        assert!(!token.matches(b"0123456789abcde"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn created_tokens_are_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("join-token");
        let first = JoinToken::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(JoinToken::load_or_create(&path).unwrap(), first);
        assert_eq!(first.0.len(), 2 * TOKEN_BYTES);
    }

    #[test]
    fn short_tokens_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("join-token");
        std::fs::write(&path, "short\n").unwrap();
        let error = JoinToken::load(&path).unwrap_err();
        assert!(error.to_string().contains("16"), "{error}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = JoinToken("0123456789abcdef".into());
        assert!(!format!("{token:?}").contains("0123"));
    }
}
