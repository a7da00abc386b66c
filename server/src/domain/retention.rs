//! Retention: recordings are kept only as long as the school's policy says. The planner
//! ([`plan`], [`delete_after`]) is a pure function of the time, the policy and the rows; the
//! sweep (`ops::sweep`) applies it.

use crate::domain::clock::DAY;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Delete every recording this many days after it was made.
    pub keep_days: u32,
    /// Delete recordings never shared with anyone this many days after they were made.
    pub unshared_days: Option<u32>,
    /// Days between marking a teacher as leaving and deleting everything of theirs.
    pub grace_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_days: 365,
            unshared_days: None,
            grace_days: 7,
        }
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.keep_days) {
            return Err("keep_days must be between 1 and 3650".into());
        }
        if let Some(d) = self.unshared_days {
            if d == 0 || d > self.keep_days {
                return Err("unshared_days must be between 1 and keep_days".into());
            }
        }
        if self.grace_days > 90 {
            return Err("grace_days must be between 0 and 90".into());
        }
        Ok(())
    }
}

/// What the planner needs to know about one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub created_at: i64,
    pub ever_shared: bool,
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Older than `keep_days`.
    Expired,
    /// Never shared, and older than `unshared_days`.
    NeverShared,
}

impl Reason {
    pub fn audit_action(self) -> &'static str {
        match self {
            Reason::Expired => "retention-delete",
            Reason::NeverShared => "retention-delete-unshared",
        }
    }
}

/// When `row` falls due under `policy` (and why), or `None` while it is held.
pub fn delete_after(policy: &Policy, row: &Row) -> Option<(i64, Reason)> {
    if row.held {
        return None;
    }
    let expired = row.created_at + i64::from(policy.keep_days) * DAY;
    let unshared = policy
        .unshared_days
        .filter(|_| !row.ever_shared)
        .map(|d| row.created_at + i64::from(d) * DAY);
    Some(match unshared {
        Some(u) if u < expired => (u, Reason::NeverShared),
        _ => (expired, Reason::Expired),
    })
}

/// The recordings due for deletion at `now`, oldest first.
pub fn plan(now: i64, policy: &Policy, rows: &[Row]) -> Vec<(String, Reason)> {
    let mut due: Vec<(i64, &Row, Reason)> = rows
        .iter()
        .filter_map(|r| delete_after(policy, r).map(|(at, why)| (at, r, why)))
        .filter(|(at, _, _)| *at <= now)
        .collect();
    due.sort_by_key(|(_, r, _)| (r.created_at, r.id.clone()));
    due.into_iter()
        .map(|(_, r, why)| (r.id.clone(), why))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, age_days: i64, ever_shared: bool, held: bool) -> Row {
        Row {
            id: id.into(),
            created_at: 1_000 * DAY - age_days * DAY,
            ever_shared,
            held,
        }
    }

    #[test]
    fn plans_expired_and_unshared_recordings_and_skips_held_ones() {
        let now = 1_000 * DAY;
        let policy = Policy {
            keep_days: 365,
            unshared_days: Some(30),
            grace_days: 7,
        };
        let rows = [
            r("old", 400, true, false),
            r("old-held", 400, true, true),
            r("young-shared", 40, true, false),
            r("young-unshared", 40, false, false),
            r("fresh-unshared", 10, false, false),
            r("exactly-a-year", 365, true, false),
        ];
        assert_eq!(
            plan(now, &policy, &rows),
            vec![
                ("old".to_string(), Reason::Expired),
                ("exactly-a-year".to_string(), Reason::Expired),
                ("young-unshared".to_string(), Reason::NeverShared),
            ]
        );
        // Without the unshared rule only age counts; a day earlier nothing is a year old.
        let plain = Policy {
            unshared_days: None,
            ..policy
        };
        assert_eq!(
            plan(now - DAY, &plain, &rows),
            vec![("old".to_string(), Reason::Expired)]
        );
        assert_eq!(delete_after(&policy, &rows[1]), None, "held");
        assert_eq!(
            delete_after(&policy, &rows[4]),
            Some((rows[4].created_at + 30 * DAY, Reason::NeverShared))
        );
    }

    #[test]
    fn policies_are_validated() {
        assert!(Policy::default().validate().is_ok());
        let bad = [
            Policy {
                keep_days: 0,
                ..Policy::default()
            },
            Policy {
                unshared_days: Some(400),
                ..Policy::default()
            },
            Policy {
                unshared_days: Some(0),
                ..Policy::default()
            },
            Policy {
                grace_days: 365,
                ..Policy::default()
            },
        ];
        for p in bad {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }
}
