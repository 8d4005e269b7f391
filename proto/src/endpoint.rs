//! Endpoints (`unix:///path`, `http://host:port`, `https://host:port`) and
//! client channels to them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::rustls::ClientConfig;
use tonic::transport::{Channel, Uri};

/// The address a daemon listens on or a client connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix domain socket at an absolute path.
    Unix(PathBuf),
    /// Plaintext TCP to `host:port`, for tests and trusted loopback only.
    Http(String),
    /// TCP with mutual TLS to `host:port`.
    Https(String),
}

/// Errors from parsing an endpoint or connecting to it.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "invalid endpoint {0:?}: expected unix:///absolute/path, http://host:port \
         or https://host:port"
    )]
    Invalid(String),
    #[error("invalid endpoint {0:?}: the unix socket path must be absolute")]
    RelativeSocket(String),
    #[error(
        "invalid endpoint {0:?}: the host must be a name, an IPv4 address or an IPv6 \
         address in brackets, as in https://[::1]:50051"
    )]
    InvalidHost(String),
    #[error("invalid endpoint {0:?}: missing port, as in http://127.0.0.1:50051")]
    MissingPort(String),
    #[error("invalid endpoint {0:?}: the port must be a number from 1 to 65535")]
    InvalidPort(String),
    #[error("endpoint {0} uses mutual TLS: give a CA, a certificate and a key")]
    TlsRequired(Endpoint),
    #[error("failed to connect to {endpoint}")]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: tonic::transport::Error,
    },
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if let Some(path) = value.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(EndpointError::RelativeSocket(value.to_owned()));
            }
            if path.contains('\0') {
                return Err(EndpointError::Invalid(value.to_owned()));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let (scheme, authority) = value
            .split_once("://")
            .ok_or_else(|| EndpointError::Invalid(value.to_owned()))?;
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(EndpointError::Invalid(value.to_owned()));
        }
        if !matches!(scheme, "http" | "https") {
            return Err(EndpointError::Invalid(value.to_owned()));
        }
        match port_of(authority) {
            Port::Valid if !valid_host(authority) => {
                return Err(EndpointError::InvalidHost(value.to_owned()));
            }
            Port::Valid => {}
            Port::Missing => return Err(EndpointError::MissingPort(value.to_owned())),
            Port::Invalid => return Err(EndpointError::InvalidPort(value.to_owned())),
        }
        match scheme {
            "http" => Ok(Endpoint::Http(authority.to_owned())),
            "https" => Ok(Endpoint::Https(authority.to_owned())),
            _ => Err(EndpointError::Invalid(value.to_owned())),
        }
    }
}

/// Checks the host of `host:port`: a bracketed IPv6 address, or a DNS
/// name or IPv4 address of ASCII letters, digits, '-', '.' and '_'.
fn valid_host(authority: &str) -> bool {
    let Some((host, _)) = authority.rsplit_once(':') else {
        return false;
    };
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

enum Port {
    Valid,
    Missing,
    Invalid,
}

/// Checks that `authority` ends in `:PORT` with a port from 1 to 65535,
/// allowing bracketed IPv6 hosts such as `[::1]:50051`.
fn port_of(authority: &str) -> Port {
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Port::Missing;
    };
    if host.is_empty() || (host.contains(':') && !host.ends_with(']')) {
        // A bare IPv6 address such as ::1 has colons but no port.
        return Port::Missing;
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Port::Valid,
        _ => Port::Invalid,
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Http(authority) => write!(f, "http://{authority}"),
            Endpoint::Https(authority) => write!(f, "https://{authority}"),
        }
    }
}

impl Endpoint {
    /// Opens a channel, connecting at once so that an unreachable endpoint
    /// fails here. `tls` is required for `https://` and ignored otherwise.
    pub async fn connect(&self, tls: Option<&Arc<ClientConfig>>) -> Result<Channel, EndpointError> {
        let result = self
            .builder()?
            .connect_with_connector(self.connector(tls)?)
            .await;
        result.map_err(|source| EndpointError::Connect {
            endpoint: self.clone(),
            source,
        })
    }

    /// Opens a channel that connects on first use and reconnects after a
    /// failure, for long-lived peers such as the manager's view of a worker.
    pub fn connect_lazy(&self, tls: Option<&Arc<ClientConfig>>) -> Result<Channel, EndpointError> {
        Ok(self
            .builder()?
            .connect_with_connector_lazy(self.connector(tls)?))
    }

    /// Returns the tonic endpoint. Its URI only names the HTTP/2 authority;
    /// the connector decides where and how to connect.
    fn builder(&self) -> Result<tonic::transport::Endpoint, EndpointError> {
        let uri = match self {
            Endpoint::Unix(_) => "http://localhost".to_owned(),
            Endpoint::Http(authority) | Endpoint::Https(authority) => format!("http://{authority}"),
        };
        tonic::transport::Endpoint::from_shared(uri)
            .map_err(|_| EndpointError::Invalid(self.to_string()))
    }

    fn connector(&self, tls: Option<&Arc<ClientConfig>>) -> Result<Connector, EndpointError> {
        let tls = match (self, tls) {
            (Endpoint::Https(_), None) => return Err(EndpointError::TlsRequired(self.clone())),
            (Endpoint::Https(_), Some(config)) => Some(config.clone()),
            _ => None,
        };
        Ok(Connector {
            endpoint: self.clone(),
            tls,
        })
    }
}

/// Opens the byte stream under a channel: a unix socket, TCP, or TLS over
/// TCP.
#[derive(Debug, Clone)]
struct Connector {
    endpoint: Endpoint,
    tls: Option<Arc<ClientConfig>>,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

/// The connected stream of any endpoint kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Connecting {
        let endpoint = self.endpoint.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let stream = match (&endpoint, tls) {
                (Endpoint::Unix(path), _) => Stream::Unix(UnixStream::connect(path).await?),
                (Endpoint::Http(authority), _) => Stream::Tcp(TcpStream::connect(authority).await?),
                (Endpoint::Https(authority), Some(config)) => {
                    Stream::Tls(Box::new(crate::tls::connect(authority, config).await?))
                }
                (Endpoint::Https(_), None) => {
                    return Err(io::Error::other("https needs TLS settings"));
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            "unix:///run/herd/managerd.sock"
                .parse::<Endpoint>()
                .unwrap(),
            Endpoint::Unix("/run/herd/managerd.sock".into())
        );
        assert_eq!(
            "http://127.0.0.1:50051".parse::<Endpoint>().unwrap(),
            Endpoint::Http("127.0.0.1:50051".into())
        );
        assert_eq!(
            "https://[::1]:50051/".parse::<Endpoint>().unwrap(),
            Endpoint::Https("[::1]:50051".into())
        );
    }

    #[test]
    fn rejects_bad_endpoints() {
        for bad in [
            "",
            "localhost:50051",
            "unix://relative.sock",
            "http://",
            "http://host",
            "http://host:0",
            "http://host:99999",
            "http://host:1/path",
            "ftp://host:21",
            "http://::1:80",
            "http://a b:1",
            "http://[:1",
            "http://h]:1",
            "http://\0:1",
            "https://é:1",
            "unix:///a\0b",
        ] {
            let error = bad.parse::<Endpoint>().unwrap_err();
            assert!(
                error.to_string().contains(&format!("{bad:?}")),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn port_errors_say_which() {
        let missing = "http://host".parse::<Endpoint>().unwrap_err();
        assert!(matches!(missing, EndpointError::MissingPort(_)));
        for bad in ["http://host:0", "http://host:99999", "http://host:x"] {
            let error = bad.parse::<Endpoint>().unwrap_err();
            assert!(matches!(error, EndpointError::InvalidPort(_)), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["unix:///tmp/a.sock", "http://localhost:1", "https://h:2"] {
            assert_eq!(text.parse::<Endpoint>().unwrap().to_string(), text);
        }
    }
}
