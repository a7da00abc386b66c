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

pub(super) async fn import(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(form): Json<TimetableForm>,
) -> AppResult<Json<serde_json::Value>> {
    if !(1..=40).contains(&form.weeks) {
        return Err(AppError::BadRequest(
            "weeks must be between 1 and 40".into(),
        ));
    }
    let first = match &form.from {
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map_err(|_| AppError::BadRequest(format!("{d:?} is not a date (YYYY-MM-DD)")))?,
        None => timetable::today(&st.tz, clock::now())
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no date today")))?,
    };
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
            let rooms = devices::list(&tx)?;
            let mut good = Vec::new();
            let mut taken: Vec<(i64, i64, i64)> = Vec::new();
            for (lesson, slots) in planned {
                let line = lesson.line;
                let room = rooms.iter().find(|d| d.name == lesson.room && !d.revoked);
                let teacher = accounts::find_user(&tx, &lesson.teacher.to_ascii_lowercase())?
                    .filter(|u| u.has(Role::Teacher));
                let found = match (room, teacher) {
                    (None, _) => Err(format!("there is no room {:?}", lesson.room)),
                    (_, None) => Err(format!("{:?} is not a teacher here", lesson.teacher)),
                    (Some(room), Some(teacher)) => Ok((room.id, teacher.id)),
                };
                let found = match found {
                    Ok((device, teacher)) => {
                        let mut clash = false;
                        for (s, e) in &slots {
                            clash |= bookings::overlapping(&tx, device, *s, *e)?.is_some()
                                || taken.iter().any(|(d, ts, te)| *d == device && ts < e && te > s);
                        }
                        if clash {
                            Err(format!(
                                "{} is already booked at some of these times ({} {}-{})",
                                lesson.room, lesson.day, lesson.start, lesson.end
                            ))
                        } else {
                            Ok((device, teacher))
                        }
                    }
                    Err(e) => Err(e),
                };
                match found {
                    Err(message) => errors.push(LineError { line, message }),
                    Ok((device, teacher)) => {
                        taken.extend(slots.iter().map(|(s, e)| (device, *s, *e)));
                        good.push((lesson, slots, device, teacher));
                    }
                }
            }
            errors.sort_by_key(|e| e.line);
            let mut touched = Vec::new();
            if apply {
                if !errors.is_empty() && !skip {
                    return Err(AppError::Unprocessable(format!(
                        "{} bad line(s): nothing was booked. Fix the file, or choose to skip the bad lines",
                        errors.len()
                    )));
                }
                for (_, slots, device, teacher) in &good {
                    let series = uuid::Uuid::new_v4().to_string();
                    bookings::insert(&tx, *device, *teacher, slots, &series, now)?;
                    touched.push(*device);
                }
                tx.commit()?;
            }
            let planned: Vec<Planned> = good
                .into_iter()
                .map(|(lesson, slots, _, _)| Planned {
                    bookings: slots.len(),
                    lesson,
                })
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
