//! Rooms: every classroom device's state at a glance, and starting, pausing, resuming and stopping
//! a lesson from the web app over the device's channel ([`crate::http::channels`]).
//!
//! A teacher starts a lesson only for themselves (sealed to their key, as if they had typed their
//! code). The teacher whose lesson is running may pause, resume and stop it; an admin may stop any
//! lesson (a safeguarding need) but never start one. Teachers see only "busy" for a lesson that is
//! not theirs; admins see whose it is. Every command is audited, whether it ran or not.

use super::Route;
use crate::domain::people::{Role, User, UserId};
use crate::http::channels::SendError;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::store::{accounts, devices};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Json;
use lessonlens_proto::wire::{RemoteAction, RemoteCommand, TeacherKey};
use lessonlens_proto::KeyFingerprint;
use serde::Serialize;

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/rooms", get(list)),
        ("POST", "/api/rooms/{name}/{action}", post(command)),
    ]
}

/// A room as the web app shows it.
#[derive(Serialize)]
struct Room {
    name: String,
    /// "idle", "booked" (a booked slot nobody has started yet), "starting", "recording",
    /// "paused", "stopping" or "offline"; for a teacher, a lesson that is not theirs is "busy".
    state: String,
    /// Since when it has not been connected (when it was last seen), if it is offline.
    offline_since: Option<i64>,
    /// The running lesson is the asker's.
    yours: bool,
    /// Whose lesson is running: shown to admins, and to the teacher whose it is.
    teacher: Option<String>,
}

/// A device, whose lesson it is recording (from its last report), if any, and the booking
/// running now (its teacher, and their display name), if any.
struct Current {
    device: devices::DeviceInfo,
    teacher: Option<User>,
    booked: Option<(UserId, String)>,
}

fn may_see_rooms(user: &User) -> AppResult<()> {
    if user.has(Role::Teacher) || user.has(Role::Admin) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only teachers (to record) and admins see the rooms",
        ))
    }
}

/// Every enrolled device that is not revoked, with whose lesson it is recording.
async fn rooms(st: &Shared) -> AppResult<Vec<Current>> {
    let list: Vec<devices::DeviceInfo> = st
        .db(|c| Ok(devices::list(c)?))
        .await?
        .into_iter()
        .filter(|d| !d.revoked)
        .collect();
    let owners: Vec<Option<UserId>> = {
        let fingerprints: Vec<Option<KeyFingerprint>> = list
            .iter()
            .map(|d| {
                let hex = d.report.as_ref()?.recipient.as_deref()?;
                let bytes: [u8; 16] = hex::decode(hex).ok()?.try_into().ok()?;
                Some(KeyFingerprint(bytes))
            })
            .collect();
        st.vault(move |v| {
            fingerprints
                .iter()
                .map(|f| match f {
                    Some(f) => Ok(v.owner_of(f)?),
                    None => Ok(None),
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .await?
    };
    let ids: Vec<i64> = list.iter().map(|d| d.id).collect();
    let now = crate::domain::clock::now();
    let (users, booked) = st
        .db(move |c| {
            let users = owners
                .iter()
                .map(|o| match o {
                    Some(id) => Ok(accounts::by_id(c, *id)?),
                    None => Ok(None),
                })
                .collect::<AppResult<Vec<_>>>()?;
            let booked = ids
                .iter()
                .map(|d| Ok(crate::store::bookings::now_in(c, *d, now)?))
                .collect::<AppResult<Vec<_>>>()?;
            Ok((users, booked))
        })
        .await?;
    Ok(list
        .into_iter()
        .zip(users)
        .zip(booked)
        .map(|((device, teacher), booked)| Current {
            device,
            teacher,
            booked,
        })
        .collect())
}

/// Every room's state now, as the asker may see it.
async fn list(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<Room>>> {
    may_see_rooms(&user)?;
    let admin = user.has(Role::Admin);
    let rooms = rooms(&st).await?;
    Ok(Json(
        rooms
            .into_iter()
            .map(|r| {
                let online = st.channels.connected_since(r.device.id).is_some();
                let state = match (&r.device.report, online) {
                    (_, false) => "offline".to_string(),
                    (Some(report), true) => report.state.clone(),
                    (None, true) => "idle".to_string(),
                };
                // A booked slot that nobody has started yet.
                let state = match (&r.booked, state.as_str()) {
                    (Some(_), "idle") => "booked".to_string(),
                    _ => state,
                };
                let yours = r.teacher.as_ref().is_some_and(|t| t.id == user.id);
                let busy = !matches!(state.as_str(), "idle" | "offline" | "booked");
                let booked = state == "booked";
                Room {
                    name: r.device.name,
                    state: if busy && !yours && !admin {
                        "busy".into()
                    } else {
                        state
                    },
                    offline_since: (!online).then_some(r.device.last_seen).flatten(),
                    yours,
                    teacher: if booked {
                        // Whose booking it is: for admins; teachers see that it is booked.
                        r.booked.filter(|_| admin).map(|(_, name)| name)
                    } else {
                        r.teacher
                            .filter(|_| busy && (yours || admin))
                            .map(|t| t.display_name)
                    },
                }
            })
            .collect(),
    ))
}

/// Start, pause, resume or stop the lesson in room `name`.
async fn command(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path((name, action)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    let action = match action.as_str() {
        "start" => RemoteAction::Start,
        "pause" => RemoteAction::Pause,
        "resume" => RemoteAction::Resume,
        "stop" => RemoteAction::Stop,
        _ => return Err(AppError::NotFound),
    };
    may_see_rooms(&user)?;
    let room = rooms(&st)
        .await?
        .into_iter()
        .find(|r| r.device.name == name)
        .ok_or(AppError::NotFound)?;
    let verb = match action {
        RemoteAction::Start => "start",
        RemoteAction::Pause => "pause",
        RemoteAction::Resume => "resume",
        RemoteAction::Stop => "stop",
    };
    let teacher = match allowed(&st, &user, &room, action).await {
        Ok(teacher) => teacher,
        Err(e) => {
            audit(
                &st,
                user.audit_id.clone(),
                format!("remote-{verb}-refused"),
                name,
            )
            .await?;
            return Err(e);
        }
    };
    let command = RemoteCommand {
        id: uuid::Uuid::new_v4().to_string(),
        action,
        teacher,
        by: user.display_name.clone(),
        sent_at: crate::domain::clock::now(),
    };
    // Sent and audited in a task of its own: a browser that goes away meanwhile does not take the
    // audit entry with it.
    let (st2, device, room_name, who) = (
        st.clone(),
        room.device.id,
        room.device.name.clone(),
        user.audit_id.clone(),
    );
    let sent = tokio::spawn(async move {
        let sent = st2.channels.send(device, command).await;
        let (audit_action, target) = match &sent {
            Ok(outcome) => (
                format!("remote-{verb}"),
                match outcome.recording {
                    Some(rec) => format!("{room_name} {rec}"),
                    None => room_name,
                },
            ),
            Err(_) => (format!("remote-{verb}-failed"), room_name),
        };
        audit(&st2, who, audit_action, target).await?;
        Ok::<_, AppError>(sent)
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))??;
    match sent {
        Ok(outcome) => Ok(Json(serde_json::json!({
            "room": name,
            "done": verb,
            "recording": outcome.recording,
        }))),
        Err(e @ (SendError::Offline | SendError::NoAnswer | SendError::Busy)) => {
            Err(AppError::UnavailableBecause(e.to_string()))
        }
        Err(SendError::Refused(why)) => Err(AppError::Conflict(format!(
            "the room's device did not {verb}: {why}"
        ))),
    }
}

/// Whether `user` may send `action` to `room` now, and for a start, the key to seal it to. A
/// start into a lesson that is running is refused here, saying nothing of that lesson.
async fn allowed(
    st: &Shared,
    user: &User,
    room: &Current,
    action: RemoteAction,
) -> AppResult<Option<TeacherKey>> {
    let name = &room.device.name;
    let yours = room.teacher.as_ref().is_some_and(|t| t.id == user.id);
    let running = room
        .device
        .report
        .as_ref()
        .is_some_and(|r| !matches!(r.state.as_str(), "idle"));
    match action {
        RemoteAction::Start if !user.has(Role::Teacher) => Err(AppError::Forbidden(
            "only a teacher starts a lesson, for themselves",
        )),
        RemoteAction::Start if room.booked.as_ref().is_some_and(|(t, _)| *t != user.id) => Err(
            AppError::Conflict(format!("{name} is booked for another teacher's lesson now")),
        ),
        RemoteAction::Start if running && st.channels.connected_since(room.device.id).is_some() => {
            Err(AppError::Conflict(format!(
                "{name} is recording another lesson now"
            )))
        }
        RemoteAction::Start => {
            let id = user.id;
            let key = st
                .vault(move |v| Ok(v.public_key(id)?))
                .await?
                .ok_or(AppError::Conflict(
                    "your account has no key to seal lessons to; ask an admin".into(),
                ))?;
            Ok(Some(TeacherKey {
                username: user.username.clone(),
                public_key: key.to_hex(),
                display_name: user.display_name.clone(),
            }))
        }
        RemoteAction::Stop if yours || user.has(Role::Admin) => Ok(None),
        _ if yours => Ok(None),
        _ => Err(AppError::Forbidden(
            "only the teacher whose lesson it is can do that (and an admin can stop it)",
        )),
    }
}

/// Audits a remote command (`action`, e.g. "remote-start-refused") on `target` by `who`.
async fn audit(st: &Shared, who: String, action: String, target: String) -> AppResult<()> {
    let key = st.audit_key.clone();
    st.db(move |c| {
        Ok(crate::store::audit::record(
            c, &key, &who, &action, &target,
        )?)
    })
    .await
}
