//! The access check every recording route makes: the store's facts, the domain's rule
//! ([`crate::domain::access`]), and the answer a refused person gets ("not found").

use crate::domain::access::{decide, Access};
use crate::domain::people::{User, UserId};
use crate::http::error::{AppError, AppResult};
use rusqlite::Connection;

pub fn recording(c: &Connection, user: &User, rec: &str) -> AppResult<Access> {
    recording_and_owner(c, user, rec).map(|(access, _)| access)
}

/// [`recording`], with the owner's id (whose key opens the recording).
pub fn recording_and_owner(c: &Connection, user: &User, rec: &str) -> AppResult<(Access, UserId)> {
    let facts = crate::store::access::facts(c, user.id, rec)?;
    let access = decide(user, facts).ok_or(AppError::NotFound)?;
    let owner = facts.map(|f| f.owner).ok_or(AppError::NotFound)?;
    Ok((access, owner))
}

/// Like [`recording`], but only the owner passes; a coach with a share learns that the action is
/// the owner's, anyone else that there is nothing here.
pub fn owner_only(c: &Connection, user: &User, rec: &str) -> AppResult<()> {
    match recording(c, user, rec)? {
        Access::Owner => Ok(()),
        Access::SharedCoach => Err(AppError::Forbidden(
            "only the teacher who recorded this lesson can do that",
        )),
    }
}
