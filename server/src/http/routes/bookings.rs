//! Booking a room for a lesson: a teacher books a slot for themselves, once or every week for a
//! number of weeks. When a booked slot starts, the room's device does not record by itself: it
//! asks for a tap or a press of its button, then records sealed to the booked teacher, and stops
//! at the slot's end. Each device keeps the coming week's bookings (with the teachers' public
//! keys), sent over its channel, so a booked lesson records while the server is out of reach.

use super::Route;
use crate::domain::clock::{self, DAY};
use crate::domain::people::{Role, User};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::store::{bookings, devices};
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::Json;
use lessonlens_proto::wire::{Booking, TeacherKey};
use serde::Deserialize;

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/bookings", get(list)),
        ("POST", "/api/bookings", post(book)),
        ("DELETE", "/api/bookings/{id}", delete(cancel)),
    ]
}

use crate::domain::timetable::{LONGEST_MINUTES, MOST_BOOKINGS_PER_ROOM, MOST_WEEKS};

/// How far ahead a device keeps bookings.
const KEPT_AHEAD: i64 = 7 * DAY;

/// The coming week's bookings of `device`, with the teachers' keys, as its device keeps them.
pub async fn for_device(st: &Shared, device: i64) -> AppResult<Vec<Booking>> {
    let now = clock::now();
    let rows = st
        .db(move |c| {
            let rows = bookings::upcoming(c, device, now, now + KEPT_AHEAD)?;
            rows.into_iter()
                .map(|(id, starts_at, ends_at, teacher)| {
                    let user = crate::store::accounts::by_id(c, teacher)?;
                    Ok((id, starts_at, ends_at, teacher, user))
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    st.vault(move |v| {
        let mut out = Vec::new();
        for (id, starts_at, ends_at, teacher, user) in rows {
            // A teacher who left (or is leaving) has no key any more: their bookings lapse.
            let (Some(user), Some(key)) = (user, v.public_key(teacher)?) else {
                continue;
            };
            out.push(Booking {
                id,
                starts_at,
                ends_at,
                teacher: TeacherKey {
                    username: user.username,
                    public_key: key.to_hex(),
                    display_name: user.display_name,
                },
            });
        }
        Ok(out)
    })
    .await
}

/// Sends `device` its bookings again after a change.
async fn push(st: &Shared, device: i64) {
    if let Ok(list) = for_device(st, device).await {
        st.channels.push_bookings(device, list);
    }
}

#[derive(Deserialize)]
struct NewBooking {
    room: String,
    /// Unix seconds.
    starts_at: i64,
    ends_at: i64,
    /// How many weeks in a row (1: once).
    #[serde(default = "one")]
    weeks: u32,
}

fn one() -> u32 {
    1
}

/// A teacher books a room for themselves.
async fn book(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Json(new): Json<NewBooking>,
) -> AppResult<Json<serde_json::Value>> {
    if !user.has(Role::Teacher) {
        return Err(AppError::Forbidden(
            "only teachers book rooms, for their lessons",
        ));
    }
    let now = clock::now();
    let length = new.ends_at - new.starts_at;
    if !(1..=LONGEST_MINUTES * 60).contains(&length) {
        return Err(AppError::BadRequest(
            "a booking ends after it starts, and lasts at most 4 hours".into(),
        ));
    }
    if new.starts_at < now - 60 || new.starts_at > now + 366 * DAY {
        return Err(AppError::BadRequest(
            "a booking's first lesson starts between now and a year from now".into(),
        ));
    }
    if !(1..=MOST_WEEKS).contains(&new.weeks) {
        return Err(AppError::BadRequest(format!(
            "a weekly booking repeats for 1 to {MOST_WEEKS} weeks"
        )));
    }
    // Every week at the same time of day in the school's time zone.
    let slots = crate::domain::timetable::weekly(&st.tz, new.starts_at, new.ends_at, new.weeks);
    let teacher = user.id;
    let room = new.room.clone();
    let tz = st.tz.clone();
    let (device, ids) = st
        .db(move |c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let device = devices::list(&tx)?
                .into_iter()
                .find(|d| d.name == room && !d.revoked)
                .ok_or(AppError::NotFound)?;
            if bookings::held_by(&tx, device.id, teacher, now)? + slots.len() as i64
                > MOST_BOOKINGS_PER_ROOM
            {
                return Err(AppError::Conflict(format!(
                    "you would hold more than {MOST_BOOKINGS_PER_ROOM} bookings in {room}; cancel some first"
                )));
            }
            for (starts_at, ends_at) in &slots {
                if let Some((s, e)) = bookings::overlapping(&tx, device.id, *starts_at, *ends_at)? {
                    return Err(AppError::Conflict(format!(
                        "{room} is already booked from {} to {}; choose another time or room",
                        crate::domain::timetable::school_time(&tz, s),
                        crate::domain::timetable::school_time(&tz, e)
                    )));
                }
            }
            let series = uuid::Uuid::new_v4().to_string();
            let ids = bookings::insert(&tx, device.id, teacher, &slots, &series, now)?;
            tx.commit()?;
            Ok((device.id, ids))
        })
        .await?;
    audit(&st, &user, "book", &format!("{} x{}", new.room, new.weeks)).await?;
    push(&st, device).await;
    Ok(Json(serde_json::json!({ "booked": ids })))
}

async fn audit(st: &Shared, user: &User, action: &'static str, target: &str) -> AppResult<()> {
    let (key, who, target) = (
        st.audit_key.clone(),
        user.audit_id.clone(),
        target.to_string(),
    );
    st.db(move |c| Ok(crate::store::audit::record(c, &key, &who, action, &target)?))
        .await
}

/// A teacher's own bookings (admins: everyone's) that have not ended more than two weeks ago,
/// with how each went.
async fn list(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<bookings::Listed>>> {
    let whose = if user.has(Role::Admin) {
        None
    } else if user.has(Role::Teacher) {
        Some(user.id)
    } else {
        return Err(AppError::Forbidden("only teachers and admins see bookings"));
    };
    let since = clock::now() - 14 * DAY;
    Ok(Json(
        st.db(move |c| Ok(bookings::list(c, whose, since)?)).await?,
    ))
}

/// Cancels one booking: the teacher's own, or any for an admin.
async fn cancel(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Json<serde_json::Value>> {
    let admin = user.has(Role::Admin);
    let me = user.id;
    let device = st
        .db(move |c| {
            let (device, teacher) = bookings::find(c, id)?.ok_or(AppError::NotFound)?;
            if teacher != me && !admin {
                return Err(AppError::NotFound);
            }
            bookings::delete(c, id)?;
            Ok(device)
        })
        .await?;
    audit(&st, &user, "unbook", &id.to_string()).await?;
    push(&st, device).await;
    Ok(Json(serde_json::json!({ "cancelled": id })))
}
