//! The timetable import: the MIS's lessons (room, day, start, end, teacher) become weekly
//! bookings for a number of weeks. Without `apply` it only says what it would book and which
//! lines are bad (an unknown room or teacher, a clash with a booking or another line); a file
//! with bad lines books nothing unless `skip_bad_lines` is set.

use crate::domain::clock;
use crate::domain::people::Role;
use crate::domain::roster::LineError;
use crate::domain::timetable::{self, Lesson};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::store::{accounts, bookings, devices};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub(super) struct TimetableForm {
    /// The MIS's timetable export, as text.
    csv: String,
    /// The first day (YYYY-MM-DD, the school's time zone); today when left out.
    #[serde(default)]
    from: Option<String>,
    /// How many weeks from then.
    weeks: u32,
    #[serde(default)]
    apply: bool,
    #[serde(default)]
    skip_bad_lines: bool,
}

/// A lesson of the file as it would be booked.
#[derive(Serialize)]
pub(super) struct Planned {
    #[serde(flatten)]
    lesson: Lesson,
    /// How many weekly bookings it makes.
    bookings: usize,
}

/// Checks each planned lesson against the rooms, the teachers and the bookings there are (those
/// of earlier lines included: each good lesson is booked in `tx` as it is found, and the caller
/// commits or rolls back); a lesson that fails goes to `errors` with its line.
fn book_each(
    tx: &rusqlite::Connection,
    planned: Vec<(Lesson, Vec<(i64, i64)>)>,
    errors: &mut Vec<LineError>,
    now: i64,
) -> AppResult<Vec<(Lesson, usize, i64)>> {
    let rooms = devices::list(tx)?;
    let mut good = Vec::new();
    for (lesson, slots) in planned {
        let line = lesson.line;
        let room = rooms.iter().find(|d| d.name == lesson.room && !d.revoked);
        let teacher = accounts::find_user(tx, &lesson.teacher.to_ascii_lowercase())?
            .filter(|u| u.has(Role::Teacher));
        let (device, teacher) = match (room, teacher) {
            (None, _) => {
                errors.push(LineError {
                    line,
                    message: format!("there is no room {:?}", lesson.room),
                });
                continue;
            }
            (_, None) => {
                errors.push(LineError {
                    line,
                    message: format!("{:?} is not a teacher here", lesson.teacher),
                });
                continue;
            }
            (Some(room), Some(teacher)) => (room.id, teacher.id),
        };
        let mut clash = false;
        for (s, e) in &slots {
            clash |= bookings::overlapping(tx, device, *s, *e)?.is_some();
        }
        if clash {
            errors.push(LineError {
                line,
                message: format!(
                    "{} is already booked at some of these times ({} {}-{})",
                    lesson.room, lesson.day, lesson.start, lesson.end
                ),
            });
            continue;
        }
        let series = uuid::Uuid::new_v4().to_string();
        bookings::insert(tx, device, teacher, &slots, &series, now)?;
        good.push((lesson, slots.len(), device));
    }
    Ok(good)
}

pub(super) async fn import(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(form): Json<TimetableForm>,
) -> AppResult<Json<serde_json::Value>> {
    if !(1..=timetable::MOST_WEEKS).contains(&form.weeks) {
        return Err(AppError::BadRequest(format!(
            "weeks must be between 1 and {}",
            timetable::MOST_WEEKS
        )));
    }
    let today = timetable::today(&st.tz, clock::now())
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no date today")))?;
    let first = match &form.from {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map_err(|_| AppError::BadRequest(format!("{d:?} is not a date (YYYY-MM-DD)")))?,
        None => today,
    };
    if first < today || first > today.saturating_add(jiff::Span::new().days(366)) {
        return Err(AppError::BadRequest(
            "the first day is between today and a year from now".into(),
        ));
    }
    let (lessons, mut errors) = timetable::parse(&form.csv);
    let planned: Vec<(Lesson, Vec<(i64, i64)>)> = lessons
        .into_iter()
        .map(|l| {
            let slots = timetable::slots(&st.tz, &l, first, form.weeks);
            (l, slots)
        })
        .collect();
    let now = clock::now();
    let (apply, skip) = (form.apply, form.skip_bad_lines);
    let (planned, errors, touched) = st
        .db(move |c| {
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let good = book_each(&tx, planned, &mut errors, now)?;
            errors.sort_by_key(|e| e.line);
            let touched: Vec<i64> = good.iter().map(|(_, _, device)| *device).collect();
            if apply && !errors.is_empty() && !skip {
                return Err(AppError::Unprocessable(format!(
                    "{} bad line(s): nothing was booked. Fix the file, or choose to skip the bad lines",
                    errors.len()
                )));
            }
            // A preview books nothing: the transaction is dropped, which rolls it back.
            if apply {
                tx.commit()?;
            }
            let planned: Vec<Planned> = good
                .into_iter()
                .map(|(lesson, bookings, _)| Planned { bookings, lesson })
                .collect();
            Ok((planned, errors, touched))
        })
        .await?;
    let applied = apply && (errors.is_empty() || skip);
    if applied {
        let (key, who) = (st.audit_key.clone(), admin.audit_id.clone());
        let target = format!("{} lesson(s) x{} week(s)", planned.len(), form.weeks);
        st.db(move |c| {
            Ok(crate::store::audit::record(
                c,
                &key,
                &who,
                "timetable-import",
                &target,
            )?)
        })
        .await?;
        let mut touched = touched;
        touched.sort();
        touched.dedup();
        for device in touched {
            if let Ok(list) = super::super::bookings::for_device(&st, device).await {
                st.channels.push_bookings(device, list);
            }
        }
    }
    Ok(Json(serde_json::json!({
        "lessons": planned,
        "errors": errors,
        "applied": applied,
    })))
}
