//! Targets for `herd_proto::names`: signals, `KEY=VALUE` arguments (labels
//! and environment) and process or worker ids.

use herd_fuzz::strings::{near, text};
use herd_proto::names::{
    KeyValueError, MAX_ID_LENGTH, SignalError, is_valid_id, parse_key_value, parse_signal,
};
use proptest::prelude::*;
use proptest::sample::select;

/// Linux's standard signal names without `SIG`, numbered as on x86 and arm
/// (signal(7)).
const SIGNALS: &[(&str, i32)] = &[
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

/// Generates a signal name in any case with or without `SIG`, or a number
/// with an optional sign and leading zeros.
fn signal_text() -> impl Strategy<Value = String> {
    let name = (
        select(&["", "SIG", "sig", "Sig"][..]),
        select(SIGNALS),
        any::<bool>(),
    )
        .prop_map(|(prefix, (name, _), lower)| {
            let name = if lower {
                name.to_ascii_lowercase()
            } else {
                name.to_owned()
            };
            format!("{prefix}{name}")
        });
    let number = (select(&["", "+", "-", "0", "00"][..]), -5..70i64)
        .prop_map(|(prefix, number)| format!("{prefix}{number}"));
    prop_oneof![name, number, any::<i64>().prop_map(|n| n.to_string())]
}

/// Returns the signal that `text` names, by the rules `parse_signal`
/// documents.
fn expected_signal(text: &str) -> Option<i32> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let number: i32 = digits.parse().ok()?;
        return (1..=64).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(candidate, _)| *candidate == name)
        .map(|(_, number)| *number)
}

#[test]
fn names_parse_signal() {
    let strategy = prop_oneof![text(), near(signal_text())];
    herd_fuzz::run("names_parse_signal", strategy, |text| {
        let parsed = parse_signal(&text);
        if let Err(error) = &parsed {
            prop_assert_eq!(error, &SignalError(text.clone()));
        }
        prop_assert_eq!(parsed.ok(), expected_signal(&text), "{:?}", text);
        Ok(())
    });
}

#[test]
fn names_parse_key_value() {
    let key_value = (text(), select(&["=", "==", ""][..]), text())
        .prop_map(|(key, equals, value)| format!("{key}{equals}{value}"));
    let flag = select(&["--label", "--env"][..]).prop_map(str::to_owned);
    let strategy = (
        prop_oneof![flag, text()],
        prop_oneof![text(), near(key_value)],
    );
    herd_fuzz::run("names_parse_key_value", strategy, |(flag, text)| {
        match parse_key_value(&flag, &text) {
            Ok((key, value)) => {
                prop_assert!(!key.is_empty());
                prop_assert!(!key.contains('='), "key {:?}", key);
                prop_assert!(!key.contains('\0'), "key {:?}", key);
                prop_assert_eq!(format!("{key}={value}"), text.clone());
            }
            Err(error) => {
                let bad_key = text
                    .split_once('=')
                    .is_none_or(|(key, _)| key.is_empty() || key.contains('\0'));
                prop_assert!(bad_key, "{:?} has a valid key and '='", text);
                let message = error.to_string();
                prop_assert_eq!(
                    error,
                    KeyValueError {
                        flag: flag.clone(),
                        text: text.clone()
                    }
                );
                prop_assert!(message.contains(&flag), "{}", message);
                prop_assert!(message.contains(&format!("{text:?}")), "{}", message);
            }
        }
        Ok(())
    });
}

/// Reports whether `id` is 1-64 bytes of ASCII letters, digits, '.', '_' or
/// '-', not starting with '.' or '-', as `is_valid_id` documents.
fn expected_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes.iter().all(allowed)
        && !matches!(bytes[0], b'.' | b'-')
}

#[test]
fn names_is_valid_id() {
    let id_like = "[a-zA-Z0-9._-]{0,70}";
    let strategy = prop_oneof![text(), near(id_like)];
    herd_fuzz::run("names_is_valid_id", strategy, |id| {
        let valid = is_valid_id(&id);
        prop_assert_eq!(valid, expected_valid_id(&id), "{:?}", id);
        if valid {
            // Ids name files and cgroups, so one must be a single path
            // component that is neither "." nor "..".
            prop_assert!(id.len() <= MAX_ID_LENGTH);
            prop_assert!(!id.contains(['/', '\0']));
            prop_assert!(id != "." && id != "..");
        }
        Ok(())
    });
}
