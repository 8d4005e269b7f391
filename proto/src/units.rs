//! Parsers for the durations (`500ms`, `3s`, `2m`) and sizes (`64m`, `1Gi`)
//! that flags and config files take.

use std::time::Duration;

/// Errors from parsing a duration or a size.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("invalid duration {0:?}: expected a number with a unit, as in 500ms, 3s, 2m or 1h")]
    Duration(String),
    #[error(
        "invalid size {0:?}: expected bytes or a number with k, m, g (powers of 1024) \
         or Ki, Mi, Gi, as in 64m or 1Gi"
    )]
    Size(String),
}

/// Parses a duration such as `500ms`, `3s`, `1.5s`, `2m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let invalid = || UnitError::Duration(text.to_owned());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(invalid()),
    };
    Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| invalid())
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1000 != 0 {
        format!("{millis}ms")
    } else if millis % 60_000 != 0 || millis == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{}m", millis / 60_000)
    }
}

/// Parses a size in bytes: a plain number, or a number followed by `k`, `m`,
/// `g`, `t` (any case, powers of 1024, as docker and systemd read them) or by
/// `Ki`, `Mi`, `Gi`, `Ti`. A trailing `b` or `B` is allowed.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let invalid = || UnitError::Size(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.strip_suffix(['b', 'B']).unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return Err(invalid()),
    };
    number.checked_mul(1 << shift).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let cases = [
            ("500ms", 500),
            ("3s", 3000),
            ("1.5s", 1500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0s", 0),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_reject_bad_input() {
        for bad in ["", "3", "s", "-1s", "3 s", "1.2.3s", "10d", "1e400s", "ms"] {
            assert_eq!(parse_duration(bad), Err(UnitError::Duration(bad.into())));
        }
    }

    #[test]
    fn durations_format_round_trip() {
        for text in ["500ms", "3s", "2m", "0s", "1500ms", "90s"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(format_duration(duration), text);
        }
    }

    #[test]
    fn sizes_parse() {
        let cases = [
            ("1024", 1024),
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("64Mi", 64 << 20),
            ("64MiB", 64 << 20),
            ("512k", 512 << 10),
            ("1Gi", 1 << 30),
            ("2g", 2 << 30),
            ("1t", 1 << 40),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn sizes_reject_bad_input() {
        for bad in [
            "",
            "m",
            "-1m",
            "1.5g",
            "64x",
            "64 m",
            "99999999999999999999",
            "20000000T",
        ] {
            assert_eq!(parse_size(bad), Err(UnitError::Size(bad.into())));
        }
    }
}
