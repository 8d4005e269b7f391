//! Target for `herd_proto::endpoint::Endpoint`'s `FromStr`.

use herd_fuzz::strings::{near, text};
use herd_proto::endpoint::Endpoint;
use proptest::prelude::*;
use proptest::sample::select;

/// Generates a scheme, `://`, a host, an optional port and an optional
/// path, each part valid or not.
fn endpoint_text() -> impl Strategy<Value = String> {
    let scheme = select(&["http", "https", "unix", "HTTP", "ftp", "", "http:"][..]);
    let host = prop_oneof![
        3 => select(&["127.0.0.1", "localhost", "[::1]", "::1", "[::1", "h]", "", "a b", "@", "/"][..])
            .prop_map(str::to_owned),
        1 => text(),
    ];
    let port = prop_oneof![
        3 => select(&["", ":50051", ":1", ":65535", ":0", ":65536", ":+1", ":-1", ":", "::1"][..])
            .prop_map(str::to_owned),
        1 => any::<u32>().prop_map(|port| format!(":{port}")),
    ];
    let path = select(&["", "/", "//", "/x", "/run/herd.sock", "relative.sock"][..]);
    (scheme, host, port, path).prop_map(|(scheme, host, port, path)| {
        if scheme == "unix" {
            format!("unix://{path}{host}")
        } else {
            format!("{scheme}://{host}{port}{path}")
        }
    })
}

#[test]
fn endpoint_from_str() {
    let strategy = prop_oneof![text(), near(endpoint_text())];
    herd_fuzz::run("endpoint_from_str", strategy, |text| {
        match text.parse::<Endpoint>() {
            Ok(endpoint) => {
                let shown = endpoint.to_string();
                prop_assert_eq!(
                    shown.parse::<Endpoint>().ok(),
                    Some(endpoint.clone()),
                    "displayed as {:?}",
                    shown
                );
                match &endpoint {
                    Endpoint::Unix(path) => prop_assert!(path.is_absolute()),
                    Endpoint::Http(authority) | Endpoint::Https(authority) => {
                        check_authority(authority)?
                    }
                }
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(
                    message.contains(&format!("{text:?}")),
                    "the error does not name the input: {}",
                    message
                );
            }
        }
        Ok(())
    });
}

/// Checks that an accepted authority has a valid host (a bracketed IPv6
/// address, or ASCII letters, digits, '-', '.' and '_') and a port from 1
/// to 65535.
fn check_authority(authority: &str) -> Result<(), TestCaseError> {
    prop_assert!(!authority.contains('/'), "{:?}", authority);
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(TestCaseError::fail(format!("{authority:?} has no port")));
    };
    prop_assert!(!host.is_empty(), "{:?} has no host", authority);
    let valid_host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')),
    };
    prop_assert!(valid_host, "{:?} has an invalid host", authority);
    let port: u16 = port
        .parse()
        .map_err(|_| TestCaseError::fail(format!("{authority:?} has an invalid port")))?;
    prop_assert!(port != 0, "{:?} has port 0", authority);
    Ok(())
}
