//! Targets for the worker's `--rlimit NAME=SOFT[:HARD]` settings,
//! `herd_workerd::rlimits::parse` and `resolve`.

use std::collections::BTreeMap;

use herd_fuzz::strings::{near, text};
use herd_workerd::rlimits::{parse, resolve};
use proptest::collection::btree_map;
use proptest::prelude::*;
use proptest::sample::select;

/// The rlimit names the worker documents, as `ulimit` and systemd name them.
const NAMES: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `u64::MAX`, which setrlimit reads as RLIM_INFINITY.
const INFINITY: u64 = u64::MAX;

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(NAMES).prop_map(str::to_owned),
        1 => near(select(NAMES).prop_map(str::to_owned)),
    ]
}

/// Generates one limit: a number, `unlimited`, `infinity` or something near
/// them.
fn limit_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..5000u64).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        select(
            &[
                "unlimited",
                "infinity",
                "18446744073709551616",
                "+1",
                "-1",
                "",
                "1k"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

fn value_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        limit_text(),
        (limit_text(), limit_text()).prop_map(|(soft, hard)| format!("{soft}:{hard}")),
    ];
    prop_oneof![4 => near(value), 1 => text()]
}

/// Parses one documented limit: plain decimal digits or a word for no
/// limit.
fn plain_limit(text: &str) -> Option<u64> {
    match text {
        "unlimited" | "infinity" => Some(INFINITY),
        _ if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        _ => None,
    }
}

#[test]
fn rlimits_parse() {
    let strategy = (prop_oneof![4 => name(), 1 => text()], value_text());
    herd_fuzz::run("rlimits_parse", strategy, |(name, value)| {
        let parsed = parse(&name, &value);
        match &parsed {
            Ok(limit) => {
                prop_assert!(NAMES.contains(&name.as_str()), "{:?}", name);
                prop_assert!(limit.soft <= limit.hard, "{:?}", limit);
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.contains(&format!("{name:?}")), "{}", message);
                if NAMES.contains(&name.as_str()) {
                    prop_assert!(message.contains(&format!("{value:?}")), "{}", message);
                }
            }
        }
        if NAMES.contains(&name.as_str())
            && let Some((soft, hard)) = value.split_once(':')
        {
            let expected = plain_limit(soft)
                .zip(plain_limit(hard))
                .filter(|(soft, hard)| soft <= hard);
            let found = parsed.as_ref().ok().map(|limit| (limit.soft, limit.hard));
            prop_assert_eq!(found, expected, "{}={}", name, value);
        }
        Ok(())
    });
}

#[test]
fn rlimits_resolve() {
    let settings = btree_map(name(), value_text(), 0..4);
    herd_fuzz::run("rlimits_resolve", settings, |settings| {
        let resolved = resolve(&settings);
        let all_parse = settings
            .iter()
            .all(|(name, value)| parse(name, value).is_ok());
        prop_assert_eq!(resolved.is_ok(), all_parse);
        let Ok(limits) = resolved else {
            return Ok(());
        };

        // The defaults, core=0:0 and nofile=1024, apply unless overridden.
        let mut expected: BTreeMap<&str, &str> =
            BTreeMap::from([("core", "0:0"), ("nofile", "1024")]);
        for (name, value) in &settings {
            expected.insert(name, value);
        }
        prop_assert_eq!(limits.len(), expected.len());
        for (name, value) in expected {
            let limit = parse(name, value).unwrap();
            prop_assert!(
                limits.contains(&limit),
                "{}={} missing from {:?}",
                name,
                value,
                limits
            );
        }
        Ok(())
    });
}
