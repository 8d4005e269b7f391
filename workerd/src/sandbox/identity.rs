//! Resolving the user a command runs as from the host's user database,
//! done by the worker before the sandbox starts.

use nix::unistd::{Gid, Uid, User};

/// The identity a command runs as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// The user's home folder, or `/` when the user has no entry.
    pub home: String,
}

/// Errors resolving a user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error(
        "user {0:?} not found in the worker's user database; use a known name or a numeric uid"
    )]
    UnknownUser(String),
    #[error("invalid user {0:?}: expected NAME, UID or UID:GID")]
    Invalid(String),
}

/// Resolves `NAME`, `UID` or `UID:GID`. A numeric uid without an entry in
/// the user database gets the gid of the same number, never root's group.
pub fn resolve(user: &str) -> Result<Identity, IdentityError> {
    if let Some((uid, gid)) = user.split_once(':') {
        let uid = parse_id(uid, user)?;
        let gid = parse_id(gid, user)?;
        let home = lookup_uid(uid).map_or_else(|| "/".to_owned(), |entry| entry.home);
        return Ok(Identity { uid, gid, home });
    }
    if user.chars().all(|c| c.is_ascii_digit()) && !user.is_empty() {
        let uid = parse_id(user, user)?;
        return Ok(lookup_uid(uid).unwrap_or(Identity {
            uid,
            gid: uid,
            home: "/".to_owned(),
        }));
    }
    let entry = User::from_name(user)
        .ok()
        .flatten()
        .ok_or_else(|| IdentityError::UnknownUser(user.to_owned()))?;
    Ok(identity_of(&entry))
}

/// Parses a uid or gid of decimal digits only, because `str::parse` would
/// also take a leading `+`. 4294967295 is (uid_t)-1, which setresuid reads
/// as "leave unchanged", so it would keep the init's root.
fn parse_id(text: &str, user: &str) -> Result<u32, IdentityError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u32>() {
        Ok(id) if digits_only && id != u32::MAX => Ok(id),
        _ => Err(IdentityError::Invalid(user.to_owned())),
    }
}

fn lookup_uid(uid: u32) -> Option<Identity> {
    let entry = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    Some(identity_of(&entry))
}

fn identity_of(entry: &User) -> Identity {
    Identity {
        uid: entry.uid.as_raw(),
        gid: Gid::as_raw(entry.gid),
        home: entry.dir.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_by_name_and_number() {
        let by_name = resolve("root").unwrap();
        assert_eq!((by_name.uid, by_name.gid), (0, 0));
        assert_eq!(resolve("0").unwrap(), by_name);
    }

    #[test]
    fn unknown_numeric_uid_gets_its_own_gid() {
        let identity = resolve("4000001").unwrap();
        assert_eq!((identity.uid, identity.gid), (4_000_001, 4_000_001));
        assert_eq!(identity.home, "/");
    }

    #[test]
    fn uid_and_gid_pair_is_taken_as_given() {
        let identity = resolve("1234:5678").unwrap();
        assert_eq!((identity.uid, identity.gid), (1234, 5678));
    }

    #[test]
    fn bad_users_are_rejected() {
        assert_eq!(
            resolve("no-such-user-herd"),
            Err(IdentityError::UnknownUser("no-such-user-herd".into()))
        );
        assert_eq!(resolve("1:x"), Err(IdentityError::Invalid("1:x".into())));
        for signed in ["0:+1", "+1:0", "+1:+1", "1:-0"] {
            assert_eq!(resolve(signed), Err(IdentityError::Invalid(signed.into())));
        }
        for unchanged in ["4294967295", "1:4294967295", "4294967296"] {
            assert_eq!(
                resolve(unchanged),
                Err(IdentityError::Invalid(unchanged.into()))
            );
        }
    }
}
