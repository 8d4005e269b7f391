//! The init's report to the worker on how the command ended.

use serde::{Deserialize, Serialize};

/// One JSON line written by the init to its report pipe before it exits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InitReport {
    /// The command exited with `code`.
    Exited { code: i32 },
    /// The command was killed by `signal`.
    Signaled { signal: i32 },
    /// The command never started. `code` follows the shell: 127 for a
    /// missing program, 126 for one that cannot be run.
    SpawnFailed { code: i32, message: String },
}

impl InitReport {
    /// Parses the report the init wrote; `None` when it wrote nothing valid,
    /// as when it was killed.
    pub fn parse(bytes: &[u8]) -> Option<InitReport> {
        let line = bytes.split(|byte| *byte == b'\n').next()?;
        serde_json::from_slice(line).ok()
    }

    /// Returns the init's exit status for this report: the command's code,
    /// or 128 + N for signal N, as a shell does.
    pub fn exit_code(&self) -> i32 {
        match self {
            InitReport::Exited { code } | InitReport::SpawnFailed { code, .. } => *code,
            InitReport::Signaled { signal } => 128 + signal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let reports = [
            InitReport::Exited { code: 3 },
            InitReport::Signaled { signal: 9 },
            InitReport::SpawnFailed {
                code: 127,
                message: "nope: command not found".into(),
            },
        ];
        for report in reports {
            let mut line = serde_json::to_vec(&report).unwrap();
            line.push(b'\n');
            assert_eq!(InitReport::parse(&line), Some(report));
        }
    }

    #[test]
    fn garbage_is_no_report() {
        assert_eq!(InitReport::parse(b""), None);
        assert_eq!(InitReport::parse(b"{\"kind\":\"other\"}"), None);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(InitReport::Signaled { signal: 15 }.exit_code(), 143);
        assert_eq!(InitReport::Exited { code: 0 }.exit_code(), 0);
    }
}
