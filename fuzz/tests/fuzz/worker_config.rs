//! Target for the worker's `--label KEY=VALUE` parser,
//! `herd_workerd::config::parse_label`.

use herd_fuzz::strings::{near, text};
use herd_workerd::config::parse_label;
use proptest::prelude::*;
use proptest::sample::select;

#[test]
fn worker_config_parse_label() {
    let label = (
        select(&["zone", "gpu", "", "a=b"][..]),
        select(&["=", "==", ""][..]),
        prop_oneof![
            select(&["a", "", "x=y"][..]).prop_map(str::to_owned),
            text()
        ],
    )
        .prop_map(|(key, equals, value)| format!("{key}{equals}{value}"));
    let strategy = prop_oneof![text(), near(label)];
    herd_fuzz::run("worker_config_parse_label", strategy, |text| {
        match parse_label(&text) {
            Ok((key, value)) => {
                prop_assert!(!key.is_empty());
                prop_assert!(!key.contains('='), "key {:?}", key);
                prop_assert!(!key.contains('\0'), "key {:?}", key);
                prop_assert_eq!(format!("{key}={value}"), text);
            }
            Err(error) => {
                let bad_key = text
                    .split_once('=')
                    .is_none_or(|(key, _)| key.is_empty() || key.contains('\0'));
                prop_assert!(bad_key, "{:?} has a valid key and '='", text);
                let message = format!("{error:#}");
                prop_assert!(message.contains("--label"), "{}", message);
                prop_assert!(message.contains(&format!("{text:?}")), "{}", message);
            }
        }
        Ok(())
    });
}
