//! Target for the worker's `--default-user` and `Command.user` parser,
//! `herd_workerd::sandbox::identity::resolve`.

use herd_fuzz::strings::{near, text};
use herd_workerd::sandbox::identity::{IdentityError, resolve};
use proptest::prelude::*;
use proptest::sample::select;

/// Generates a uid or gid as text: small, at the `u32` edges, signed or
/// padded.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..70_000u32).prop_map(|id| id.to_string()),
        any::<u32>().prop_map(|id| id.to_string()),
        select(
            &[
                "4294967295",
                "4294967294",
                "4294967296",
                "+1",
                "-1",
                "007",
                ""
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

/// Generates `NAME`, `UID` or `UID:GID`, with names that most Linux hosts
/// have.
fn user_text() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&["root", "nobody", "daemon", "bin", "ROOT", "no-such-user"][..])
            .prop_map(str::to_owned),
        id_text(),
        (id_text(), id_text()).prop_map(|(uid, gid)| format!("{uid}:{gid}")),
    ]
}

/// Parses a plain decimal uid or gid, as `resolve` documents them.
fn plain_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|id| *id != u32::MAX)
}

#[test]
fn identity_resolve() {
    let strategy = prop_oneof![text(), near(user_text())];
    herd_fuzz::run("identity_resolve", strategy, |user| {
        let resolved = resolve(&user);
        if let Ok(identity) = &resolved {
            // (uid_t)-1 makes setresuid keep the current id, which is root.
            prop_assert!(identity.uid != u32::MAX, "{:?}", identity);
            prop_assert!(identity.gid != u32::MAX, "{:?}", identity);
        }
        if let Some((uid, gid)) = user.split_once(':') {
            let expected = plain_id(uid).zip(plain_id(gid));
            let found = resolved
                .as_ref()
                .ok()
                .map(|identity| (identity.uid, identity.gid));
            prop_assert_eq!(found, expected, "{:?}", user);
        } else if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
            let found = resolved.as_ref().ok().map(|identity| identity.uid);
            prop_assert_eq!(found, plain_id(&user), "{:?}", user);
        }
        if let Err(error) = &resolved {
            prop_assert!(
                matches!(error, IdentityError::Invalid(text) | IdentityError::UnknownUser(text) if *text == user),
                "{:?}",
                error
            );
            let message = error.to_string();
            prop_assert!(message.contains(&format!("{user:?}")), "{}", message);
        }
        Ok(())
    });
}
