//! Targets for `herd_proto::units`: durations (`500ms`, `1.5s`) and sizes
//! (`64m`, `1Gi`).

use std::time::Duration;

use herd_fuzz::strings::{near, text};
use herd_proto::units::{UnitError, format_duration, parse_duration, parse_size};
use proptest::prelude::*;
use proptest::sample::select;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Duration units and their length in nanoseconds.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ms", 1_000_000),
    ("s", NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("h", 3600 * NANOS_PER_SECOND),
];

/// Size suffixes: a letter and its power of 1024 as a shift.
const SIZE_PREFIXES: &[(&str, u32)] = &[
    ("", 0),
    ("k", 10),
    ("K", 10),
    ("m", 20),
    ("M", 20),
    ("g", 30),
    ("G", 30),
    ("t", 40),
    ("T", 40),
];

/// The parts of a generated duration: whole digits, fraction digits after
/// an optional `.`, and the unit.
#[derive(Debug, Clone)]
struct DurationParts {
    whole: String,
    fraction: Option<String>,
    unit: String,
}

impl DurationParts {
    fn text(&self) -> String {
        match &self.fraction {
            Some(fraction) => format!("{}.{fraction}{}", self.whole, self.unit),
            None => format!("{}{}", self.whole, self.unit),
        }
    }

    /// Returns the duration the text stands for, rounded down to whole
    /// nanoseconds, or `None` when it is invalid or does not fit a
    /// `Duration`.
    fn expected(&self) -> Option<Duration> {
        let unit_nanos = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == self.unit)
            .map(|(_, nanos)| *nanos)?;
        let fraction = self.fraction.as_deref().unwrap_or("");
        if self.whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let whole: u128 = if self.whole.is_empty() {
            0
        } else {
            self.whole.parse().ok()?
        };
        let fraction_nanos = if fraction.is_empty() {
            0
        } else {
            let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
            fraction.parse::<u128>().ok()? * unit_nanos / scale
        };
        let nanos = whole.checked_mul(unit_nanos)?.checked_add(fraction_nanos)?;
        let seconds = u64::try_from(nanos / NANOS_PER_SECOND).ok()?;
        let subsecond = u32::try_from(nanos % NANOS_PER_SECOND).ok()?;
        Some(Duration::new(seconds, subsecond))
    }
}

fn duration_parts() -> impl Strategy<Value = DurationParts> {
    let whole = prop_oneof![
        "[0-9]{0,3}",
        "[0-9]{1,22}",
        any::<u64>().prop_map(|n| n.to_string()),
    ];
    let fraction = proptest::option::of("[0-9]{0,12}");
    let unit = prop_oneof![
        4 => select(DURATION_UNITS).prop_map(|(name, _)| name.to_string()),
        1 => select(&["", "us", "ns", "d", "S", "H", "sec", " s", "e3s", "s ", "mss"][..])
            .prop_map(str::to_owned),
    ];
    (whole, fraction, unit).prop_map(|(whole, fraction, unit)| DurationParts {
        whole,
        fraction,
        unit,
    })
}

#[test]
fn units_parse_duration() {
    let strategy = prop_oneof![
        text(),
        near(duration_parts().prop_map(|parts| parts.text())),
    ];
    herd_fuzz::run("units_parse_duration", strategy, |text| {
        match parse_duration(&text) {
            Ok(duration) => {
                let formatted = format_duration(duration);
                prop_assert_eq!(
                    parse_duration(&formatted),
                    Ok(duration),
                    "formatted as {:?}",
                    formatted
                );
            }
            Err(error) => prop_assert_eq!(error, UnitError::Duration(text.clone())),
        }
        Ok(())
    });
}

#[test]
fn units_parse_duration_value() {
    herd_fuzz::run("units_parse_duration_value", duration_parts(), |parts| {
        let text = parts.text();
        match parts.expected() {
            Some(expected) => prop_assert_eq!(parse_duration(&text), Ok(expected), "{:?}", text),
            None => prop_assert!(parse_duration(&text).is_err(), "{:?} parsed", text),
        }
        Ok(())
    });
}

#[test]
fn units_format_duration() {
    let strategy = prop_oneof![
        (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        (0..100_000u64, 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        any::<u64>().prop_map(Duration::from_millis),
        (0..10_000_000u64).prop_map(Duration::from_millis),
        (0..1_000u64).prop_map(|minutes| Duration::from_secs(minutes * 60)),
        Just(Duration::MAX),
        Just(Duration::ZERO),
    ];
    herd_fuzz::run("units_format_duration", strategy, |duration| {
        let formatted = format_duration(duration);
        prop_assert_eq!(
            parse_duration(&formatted),
            Ok(duration),
            "formatted as {:?}",
            formatted
        );
        Ok(())
    });
}

/// Generates digits for a size, some too many for a `u64`.
fn size_number() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,4}",
        "[0-9]{0,22}",
        any::<u64>().prop_map(|n| n.to_string()),
    ]
}

/// Generates a size suffix: a prefix, an optional `i` and an optional `b`
/// or `B`.
fn size_suffix() -> impl Strategy<Value = String> {
    (
        select(SIZE_PREFIXES),
        select(&["", "i"][..]),
        select(&["", "b", "B"][..]),
    )
        .prop_map(|((prefix, _), i, b)| format!("{prefix}{i}{b}"))
}

/// Returns the size that `number` and `suffix` stand for, or `None` when
/// they are invalid or the size does not fit a `u64`.
fn expected_size(number: &str, suffix: &str) -> Option<u64> {
    let number: u64 = number.parse().ok()?;
    let suffix = suffix.strip_suffix(['b', 'B']).unwrap_or(suffix);
    let (prefix, binary) = match suffix.strip_suffix('i') {
        Some(prefix) => (prefix, true),
        None => (suffix, false),
    };
    let shift = SIZE_PREFIXES
        .iter()
        .find(|(name, _)| *name == prefix)
        .map(|(_, shift)| *shift)?;
    if binary && shift == 0 {
        return None;
    }
    number.checked_mul(1 << shift)
}

#[test]
fn units_parse_size() {
    let near_valid = (size_number(), prop_oneof![size_suffix(), text()])
        .prop_map(|(number, suffix)| format!("{number}{suffix}"));
    let strategy = prop_oneof![
        text().prop_map(|text| (text, None)),
        near(near_valid).prop_map(|text| (text, None)),
        (size_number(), size_suffix())
            .prop_map(|(number, suffix)| (format!("{number}{suffix}"), Some(suffix))),
    ];
    herd_fuzz::run("units_parse_size", strategy, |(text, suffix)| {
        let parsed = parse_size(&text);
        if let Err(error) = &parsed {
            prop_assert_eq!(error, &UnitError::Size(text.clone()));
        }
        if let Some(suffix) = suffix {
            let number = &text[..text.len() - suffix.len()];
            prop_assert_eq!(parsed.ok(), expected_size(number, &suffix), "{:?}", text);
        }
        Ok(())
    });
}
