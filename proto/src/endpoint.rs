//! Endpoints (`unix:///path`, `http://host:port`, `https://host:port`) and
//! client channels to them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
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
    #[error("invalid endpoint {0:?}: missing port, as in http://127.0.0.1:50051")]
    MissingPort(String),
    #[error("invalid endpoint {0:?}: the port must be a number from 1 to 65535")]
    InvalidPort(String),
    #[error("endpoint {0}: https needs TLS settings, which this build does not support yet")]
    TlsUnsupported(Endpoint),
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
    /// fails here.
    pub async fn connect(&self) -> Result<Channel, EndpointError> {
        let result = match self {
            Endpoint::Unix(path) => {
                let path = path.clone();
                unix_placeholder()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move { UnixStream::connect(path).await.map(TokioIo::new) }
                    }))
                    .await
            }
            Endpoint::Http(_) => self.tonic_endpoint()?.connect().await,
            Endpoint::Https(_) => return Err(EndpointError::TlsUnsupported(self.clone())),
        };
        result.map_err(|source| EndpointError::Connect {
            endpoint: self.clone(),
            source,
        })
    }

    /// Opens a channel that connects on first use and reconnects after a
    /// failure, for long-lived peers such as the manager's view of a worker.
    pub fn connect_lazy(&self) -> Result<Channel, EndpointError> {
        match self {
            Endpoint::Unix(path) => {
                let path = path.clone();
                Ok(
                    unix_placeholder().connect_with_connector_lazy(tower::service_fn(
                        move |_: Uri| {
                            let path = path.clone();
                            async move { UnixStream::connect(path).await.map(TokioIo::new) }
                        },
                    )),
                )
            }
            Endpoint::Http(_) => Ok(self.tonic_endpoint()?.connect_lazy()),
            Endpoint::Https(_) => Err(EndpointError::TlsUnsupported(self.clone())),
        }
    }

    fn tonic_endpoint(&self) -> Result<tonic::transport::Endpoint, EndpointError> {
        tonic::transport::Endpoint::from_shared(self.to_string())
            .map_err(|_| EndpointError::Invalid(self.to_string()))
    }
}

/// Returns the URI tonic needs for a channel whose connector ignores it.
fn unix_placeholder() -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_static("http://[::1]:50051")
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
        ] {
            let error = bad.parse::<Endpoint>().unwrap_err();
            assert!(error.to_string().contains(bad), "{bad:?}: {error}");
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
