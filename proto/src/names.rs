//! Short names for the API's enums, as the CLI prints them and JSON carries
//! them (`RUNNING`, `OOM_KILLED`), and helpers on the generated types.

use crate::v1::{OutputStream, ProcessState, Reason, WorkerState};

impl ProcessState {
    /// Returns the name without the `PROCESS_STATE_` prefix.
    pub fn short_name(self) -> &'static str {
        strip(self.as_str_name(), "PROCESS_STATE_")
    }

    /// Reports whether the state can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ProcessState::Completed | ProcessState::Failed | ProcessState::Aborted
        )
    }
}

impl Reason {
    /// Returns the name without the `REASON_` prefix, or "" when unset.
    pub fn short_name(self) -> &'static str {
        match self {
            Reason::Unspecified => "",
            other => strip(other.as_str_name(), "REASON_"),
        }
    }
}

impl WorkerState {
    /// Returns the name without the `WORKER_STATE_` prefix.
    pub fn short_name(self) -> &'static str {
        strip(self.as_str_name(), "WORKER_STATE_")
    }
}

impl OutputStream {
    /// Returns `stdout` or `stderr`.
    pub fn short_name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
            OutputStream::Unspecified => "unspecified",
        }
    }
}

fn strip(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// Error for a signal name or number that Linux does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid signal {0:?}: expected a name such as TERM, SIGKILL or HUP, or a number 1-64")]
pub struct SignalError(pub String);

/// Linux's standard signals by name, numbered as on x86, arm and most other
/// architectures (signal(7)). Alpha, mips and sparc number some differently.
const SIGNAL_NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Parses a signal given as a name (`TERM`, `SIGTERM`, any case) or a number.
pub fn parse_signal(text: &str) -> Result<i32, SignalError> {
    if let Ok(number) = text.parse::<i32>() {
        return if (1..=64).contains(&number) {
            Ok(number)
        } else {
            Err(SignalError(text.to_owned()))
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNAL_NAMES
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, number)| *number)
        .ok_or_else(|| SignalError(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_prefixes() {
        assert_eq!(ProcessState::Running.short_name(), "RUNNING");
        assert_eq!(Reason::OomKilled.short_name(), "OOM_KILLED");
        assert_eq!(Reason::Unspecified.short_name(), "");
        assert_eq!(WorkerState::Lost.short_name(), "LOST");
    }

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("sigkill"), Ok(9));
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("0"), Err(SignalError("0".into())));
        assert_eq!(parse_signal("BOGUS"), Err(SignalError("BOGUS".into())));
    }

    #[test]
    fn every_standard_signal_has_its_name() {
        let cases = [
            ("STKFLT", 16),
            ("TTIN", 21),
            ("TTOU", 22),
            ("URG", 23),
            ("XCPU", 24),
            ("XFSZ", 25),
            ("VTALRM", 26),
            ("PROF", 27),
            ("SIGIO", 29),
            ("poll", 29),
            ("PWR", 30),
            ("SYS", 31),
        ];
        for (name, number) in cases {
            assert_eq!(parse_signal(name), Ok(number), "{name}");
        }
    }
}

/// Maximum length of a process or worker id.
pub const MAX_ID_LENGTH: usize = 64;

/// Reports whether `id` is a valid process or worker id: 1-64 ASCII
/// letters, digits, '.', '_' or '-', not starting with '.' or '-'.
pub fn is_valid_id(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (1..=MAX_ID_LENGTH).contains(&id.len())
        && id.chars().all(allowed)
        && !id.starts_with(['.', '-'])
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("w1"));
        assert!(is_valid_id("job_2.retry-1"));
        for bad in ["", ".", "..", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}

/// A `KEY=VALUE` argument without a key or without `=`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {text:?}: expected KEY=VALUE, as in zone=a")]
pub struct KeyValueError {
    pub flag: String,
    pub text: String,
}

/// Splits a `KEY=VALUE` argument of `flag` at its first `=`. The key must
/// be non-empty and free of NUL; the value may be empty.
pub fn parse_key_value<'a>(flag: &str, text: &'a str) -> Result<(&'a str, &'a str), KeyValueError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains('\0') => Ok((key, value)),
        _ => Err(KeyValueError {
            flag: flag.to_owned(),
            text: text.to_owned(),
        }),
    }
}

#[cfg(test)]
mod key_value_tests {
    use super::*;

    #[test]
    fn splits_at_the_first_equals() {
        assert_eq!(parse_key_value("--env", "A=b=c"), Ok(("A", "b=c")));
        assert_eq!(parse_key_value("--env", "A="), Ok(("A", "")));
        for bad in ["", "A", "=b", "a\0b=x"] {
            let error = parse_key_value("--label", bad).unwrap_err();
            assert!(error.to_string().contains("--label"), "{error}");
        }
    }
}
