//! Local users and groups, from the system's user database (NSS).

use nix::unistd::{Gid, Uid, User};

/// Looks up local users and their groups.
#[derive(Debug, Clone, Copy, Default)]
pub struct Groups;

impl Groups {
    /// Returns the name of user `uid`, if it has one.
    pub fn user_name(self, uid: u32) -> Option<String> {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|user| user.name)
    }

    /// Reports whether user `uid`, whose connection runs with primary
    /// group `gid`, is a member of `group` in the user database.
    pub fn member(self, uid: u32, gid: u32, group: u32) -> bool {
        let Some(name) = self.user_name(uid) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(name) else {
            return false;
        };
        nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
            .is_ok_and(|groups| groups.contains(&Gid::from_raw(group)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_a_name() {
        assert_eq!(Groups.user_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn root_belongs_to_its_primary_group() {
        assert!(Groups.member(0, 0, 0));
        assert!(
            !Groups.member(4_000_000, 0, 0),
            "a nameless uid has no groups"
        );
    }
}
