//! Resource limits (setrlimit) for commands: names, parsing and defaults.

use std::collections::BTreeMap;

use crate::sandbox::Rlimit;

/// setrlimit resources by the names `ulimit` and systemd's `Limit*=` use.
const RESOURCES: &[(&str, libc::__rlimit_resource_t)] = &[
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

/// Errors from an rlimit setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RlimitError {
    #[error(
        "unknown rlimit {0:?}: use one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack"
    )]
    UnknownName(String),
    #[error(
        "invalid value {value:?} for rlimit {name:?}: expected SOFT or SOFT:HARD, each a number or \"unlimited\", with SOFT at most HARD"
    )]
    InvalidValue { name: String, value: String },
    #[error(
        "invalid value {value:?} for rlimit {name:?}: the soft limit is above the worker's hard limit {hard}; give SOFT:HARD or a lower SOFT"
    )]
    AboveHardLimit {
        name: String,
        value: String,
        hard: u64,
    },
}

fn resource_of(name: &str) -> Result<libc::__rlimit_resource_t, RlimitError> {
    RESOURCES
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, resource)| *resource)
        .ok_or_else(|| RlimitError::UnknownName(name.to_owned()))
}

/// Parses one limit: decimal digits only, because `str::parse` would also
/// take a leading `+`, or `unlimited` or `infinity`.
fn parse_limit(text: &str) -> Option<u64> {
    match text {
        "unlimited" | "infinity" => Some(libc::RLIM_INFINITY),
        digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()
        }
        _ => None,
    }
}

/// Returns the worker's own hard limit for `resource`, which a command's
/// limit may not exceed.
fn current_hard(resource: libc::__rlimit_resource_t) -> u64 {
    let mut value = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: getrlimit writes one rlimit struct.
    unsafe { libc::getrlimit(resource, &mut value) };
    value.rlim_max
}

/// Parses `SOFT` or `SOFT:HARD` for `name`. A lone SOFT keeps the worker's
/// hard limit.
pub fn parse(name: &str, value: &str) -> Result<Rlimit, RlimitError> {
    let resource = resource_of(name)?;
    let invalid = || RlimitError::InvalidValue {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let (soft, hard) = match value.split_once(':') {
        Some((soft, hard)) => (
            parse_limit(soft).ok_or_else(invalid)?,
            parse_limit(hard).ok_or_else(invalid)?,
        ),
        None => {
            let soft = parse_limit(value).ok_or_else(invalid)?;
            let hard = current_hard(resource);
            if soft > hard {
                return Err(RlimitError::AboveHardLimit {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    hard,
                });
            }
            (soft, hard)
        }
    };
    if soft > hard {
        return Err(invalid());
    }
    Ok(Rlimit {
        resource,
        soft,
        hard,
    })
}

/// Returns the limits for commands: no core dumps and 1024 open files
/// (soft), overridden by `settings` (name to `SOFT[:HARD]`).
pub fn resolve(settings: &BTreeMap<String, String>) -> Result<Vec<Rlimit>, RlimitError> {
    let mut chosen: BTreeMap<String, String> = BTreeMap::from([
        ("core".to_owned(), "0:0".to_owned()),
        ("nofile".to_owned(), "1024".to_owned()),
    ]);
    chosen.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    chosen
        .iter()
        .map(|(name, value)| parse(name, value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_disable_core_and_cap_files() {
        let limits = resolve(&BTreeMap::new()).unwrap();
        let core = limits
            .iter()
            .find(|l| l.resource == libc::RLIMIT_CORE)
            .unwrap();
        assert_eq!((core.soft, core.hard), (0, 0));
        let nofile = limits
            .iter()
            .find(|l| l.resource == libc::RLIMIT_NOFILE)
            .unwrap();
        assert_eq!(nofile.soft, 1024);
    }

    #[test]
    fn settings_override_defaults() {
        let settings = BTreeMap::from([("nofile".to_owned(), "64:128".to_owned())]);
        let limits = resolve(&settings).unwrap();
        let nofile = limits
            .iter()
            .find(|l| l.resource == libc::RLIMIT_NOFILE)
            .unwrap();
        assert_eq!((nofile.soft, nofile.hard), (64, 128));
    }

    #[test]
    fn bad_settings_are_rejected() {
        assert_eq!(
            parse("files", "1"),
            Err(RlimitError::UnknownName("files".into()))
        );
        for bad in ["x", "10:5", "", ":", "1:", "+5", "5:+6", "-1", "1k"] {
            assert_eq!(
                parse("nofile", bad),
                Err(RlimitError::InvalidValue {
                    name: "nofile".into(),
                    value: bad.into()
                })
            );
        }
        assert_eq!(
            parse("core", "unlimited:unlimited").unwrap().soft,
            libc::RLIM_INFINITY
        );
    }

    #[test]
    fn errors_name_the_rlimit() {
        let value = "\0x";
        let error = parse("as", value).unwrap_err().to_string();
        assert!(error.contains("\"as\""), "{error}");
        assert!(error.contains(&format!("{value:?}")), "{error}");
    }

    #[test]
    fn soft_above_the_workers_hard_limit_is_rejected() {
        let hard = current_hard(libc::RLIMIT_NOFILE);
        if hard == libc::RLIM_INFINITY {
            return;
        }
        let value = (hard + 1).to_string();
        assert_eq!(
            parse("nofile", &value),
            Err(RlimitError::AboveHardLimit {
                name: "nofile".into(),
                value,
                hard
            })
        );
    }
}
