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

const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// Fraction digits read. Later ones are ignored because together they are
/// worth less than 1e-18 of a unit, under 0.004 ns even for hours.
const MAX_FRACTION_DIGITS: usize = 18;

/// Parses a duration such as `500ms`, `3s`, `1.5s`, `2m` or `1h`. The
/// number is read exactly, without floating point, and rounded down to
/// whole nanoseconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let invalid = || UnitError::Duration(text.to_owned());
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let unit_nanos = match unit {
        "ms" => NANOS_PER_MILLI,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3600 * NANOS_PER_SECOND,
        _ => return Err(invalid()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(invalid());
    }
    let nanos = decimal_nanos(whole, fraction, unit_nanos).ok_or_else(invalid)?;
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| invalid())?;
    let subsecond_nanos = (nanos % NANOS_PER_SECOND) as u32;
    Ok(Duration::new(seconds, subsecond_nanos))
}

/// Returns `whole.fraction` units of `unit_nanos` each in nanoseconds,
/// rounded down, or `None` when it overflows. Both parts are ASCII digits.
fn decimal_nanos(whole: &str, fraction: &str, unit_nanos: u128) -> Option<u128> {
    let whole: u128 = match whole {
        "" => 0,
        digits => digits.parse().ok()?,
    };
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let fraction_nanos = match fraction {
        "" => 0,
        digits => {
            // Below 1e18 times at most 3.6e12 ns, so this cannot overflow.
            let scale = 10u128.pow(digits.len() as u32);
            digits.parse::<u128>().ok()? * unit_nanos / scale
        }
    };
    whole.checked_mul(unit_nanos)?.checked_add(fraction_nanos)
}

/// Formats a duration the way [`parse_duration`] reads it: whole minutes as
/// `2m`, whole seconds as `90s`, whole milliseconds as `1500ms` and finer
/// ones with a fraction, as in `1.5ms`. Parsing the text returns the same
/// duration.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let millis = nanos / NANOS_PER_MILLI;
    let sub_milli_nanos = nanos % NANOS_PER_MILLI;
    if sub_milli_nanos != 0 {
        let fraction = format!("{sub_milli_nanos:06}");
        format!("{millis}.{}ms", fraction.trim_end_matches('0'))
    } else if millis % 1000 != 0 {
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
    let prefix = match unit.strip_suffix('i') {
        // An `i` marks a binary prefix, so it needs one before it.
        Some("") => return Err(invalid()),
        Some(prefix) => prefix,
        None => unit,
    };
    let shift = match prefix {
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
    fn durations_parse_exactly() {
        // Through f64, 17000000.1 minutes came out 119 ns too long.
        assert_eq!(
            parse_duration("17000000.1m"),
            Ok(Duration::from_secs(1_020_000_006))
        );
        assert_eq!(parse_duration("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(parse_duration("0.0000005ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        let max = "18446744073709551615.999999999s";
        assert_eq!(parse_duration(max), Ok(Duration::MAX));
        for too_long in ["18446744073709551616s", "307445734561825861m"] {
            assert_eq!(
                parse_duration(too_long),
                Err(UnitError::Duration(too_long.into()))
            );
        }
    }

    #[test]
    fn durations_format_below_a_millisecond() {
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0.000001ms");
        for duration in [
            Duration::from_nanos(1),
            Duration::new(3, 1),
            // Formatted as 18446744073709551615999ms, which f64 parsing
            // rejected as too long.
            Duration::new(u64::MAX, 999_000_000),
            Duration::MAX,
        ] {
            let text = format_duration(duration);
            assert_eq!(parse_duration(&text), Ok(duration), "{text}");
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
            // An `i` without k, m, g or t before it.
            "0i",
            "64i",
            "64iB",
        ] {
            assert_eq!(parse_size(bad), Err(UnitError::Size(bad.into())));
        }
    }
}
