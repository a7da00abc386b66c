//! Who may see a recording. The owner may, and so may a coach the owner shared it with (by name,
//! or through a group of coaches they are in), for as long as the share (and the membership)
//! lasts and the owner's account is enabled (a teacher who is leaving makes their
//! recordings unplayable at once). Nobody else may, admins included: to everyone else a recording
//! does not exist, so the answer is "not found" rather than "forbidden".

use crate::domain::people::{Role, User, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Owner,
    /// A coach the recording is shared with: may watch, comment and reply.
    SharedCoach,
}

impl Access {
    pub fn is_owner(self) -> bool {
        self == Access::Owner
    }
}

/// What the store knows of a recording for one person: its owner, whether the owner's account
/// is disabled, and whether it is shared with this person (by name, or through a group they
/// were in when it was shared).
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub owner: UserId,
    pub owner_disabled: bool,
    pub shared_with_them: bool,
}

/// The decision: `None` means the recording does not exist for `user`.
pub fn decide(user: &User, facts: Option<Facts>) -> Option<Access> {
    match facts? {
        Facts {
            owner_disabled: true,
            ..
        } => None,
        Facts { owner, .. } if owner == user.id => Some(Access::Owner),
        Facts {
            shared_with_them: true,
            ..
        } if user.has(Role::Coach) => Some(Access::SharedCoach),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UserId;

    fn user(id: i64, role: Role) -> User {
        User {
            id: UserId(id),
            username: format!("u{id}"),
            display_name: format!("U{id}"),
            roles: vec![role],
            audit_id: format!("a{id}"),
        }
    }

    #[test]
    fn owners_and_shared_coaches_only_while_the_owner_is_enabled() {
        let facts = |owner_disabled, shared_with_them| {
            Some(Facts {
                owner: UserId(1),
                owner_disabled,
                shared_with_them,
            })
        };
        let (owner, coach) = (user(1, Role::Teacher), user(2, Role::Coach));
        let (admin, teacher) = (user(3, Role::Admin), user(4, Role::Teacher));
        assert_eq!(decide(&owner, facts(false, false)), Some(Access::Owner));
        assert_eq!(
            decide(&coach, facts(false, true)),
            Some(Access::SharedCoach)
        );
        assert_eq!(decide(&coach, facts(false, false)), None);
        assert_eq!(decide(&coach, facts(true, true)), None, "a leaving owner");
        assert_eq!(decide(&owner, facts(true, false)), None);
        assert_eq!(decide(&admin, facts(false, true)), None, "admins never");
        assert_eq!(
            decide(&teacher, facts(false, true)),
            None,
            "shared, but not a coach"
        );
        assert_eq!(decide(&owner, None), None);
    }
}
