//! Sign-in and the viewer's own recordings.

use super::Route;
use crate::accounts::{self, User};
use crate::app::{session_token, ClientIp, CurrentUser, Shared, SESSION_COOKIE};
use crate::error::{AppError, AppResult};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use lessonlens_proto::wire::RecordingSummary;
use lessonlens_proto::{Manifest, SegmentIndex};
use rusqlite::Connection;
use serde::Deserialize;
use std::collections::BTreeSet;

pub fn routes() -> Vec<Route> {
    vec![
        ("POST", "/api/login", post(login)),
        ("POST", "/api/logout", post(logout)),
        ("GET", "/api/me", get(me)),
        ("GET", "/api/recordings", get(my_recordings)),
    ]
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: zeroize::Zeroizing<String>,
}

fn me_json(u: &User) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "roles": u.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    })
}

async fn login(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Json(form): Json<LoginForm>,
) -> AppResult<Response> {
    let hours = st.config.session_hours;
    let username = form.username.trim().to_ascii_lowercase();
    let now = accounts::now();
    // Every attempt counts against the account and the address before the password is checked,
    // so parallel guesses cannot slip past the limits; a success is taken back afterwards.
    let refused = |secs: i64| {
        tracing::warn!(%ip, "sign-in refused: too many failures");
        AppError::TooManyRequestsFor((secs + 59) / 60)
    };
    st.login_failures_address
        .attempt(&ip, now)
        .map_err(refused)?;
    if let Err(secs) = st.login_failures_account.attempt(&username, now) {
        st.login_failures_address.forgive_last(&ip);
        return Err(refused(secs));
    }
    let (user, hash) = st
        .db(move |c| Ok(accounts::login_candidate(c, &username)?))
        .await?;
    // Argon2 is deliberately slow and uses ~19 MiB: run a few at a time, without the database.
    let password = form.password;
    let _slot = st
        .password_checks
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let ok = tokio::task::spawn_blocking(move || accounts::password_matches(&hash, &password))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let audit_key = st.audit_key.clone();
    let (user, token) = st
        .db(move |c| match user.filter(|_| ok) {
            Some(user) => {
                let token = accounts::create_session(c, user.id, hours)?;
                crate::audit::record(c, &audit_key, &user.audit_id, "login", "")?;
                Ok((user, token))
            }
            None => {
                // The typed username is not recorded: it is often a password typed in the wrong box.
                crate::audit::record(c, &audit_key, "unknown", "login-failed", "")?;
                Err(AppError::BadRequest("wrong username or password".into()))
            }
        })
        .await?;
    st.login_failures_account.clear(&user.username);
    st.login_failures_address.forgive_last(&ip);
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        token.as_str(),
        u64::from(hours) * 3600
    );
    let mut res = Json(me_json(&user)).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| AppError::Internal(e.into()))?,
    );
    Ok(res)
}

async fn logout(State(st): State<Shared>, headers: HeaderMap) -> AppResult<Response> {
    if let Some(token) = session_token(&headers) {
        st.db(move |c| Ok(accounts::end_session(c, &token)?))
            .await?;
    }
    let mut res = Json(serde_json::json!({"signed_out": true})).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-lessonlens=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(res)
}

async fn me(CurrentUser(user): CurrentUser) -> Json<serde_json::Value> {
    Json(me_json(&user))
}

/// A recording's summary: status is "recording" until the manifest arrives, then "complete" when
/// every segment is present after a clean stop, else "incomplete" with the missing indices.
pub fn summary(c: &Connection, id: &str) -> rusqlite::Result<RecordingSummary> {
    let (created_at, device, manifest, clean_stop): (i64, String, Option<String>, Option<bool>) = c.query_row(
        "SELECT r.created_at, d.name, r.manifest, r.clean_stop FROM recordings r JOIN devices d ON d.id = r.device_id WHERE r.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut stmt =
        c.prepare("SELECT idx, duration_us, sha256 FROM segments WHERE recording_id = ?1")?;
    let rows: Vec<(SegmentIndex, i64, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let present: BTreeSet<SegmentIndex> = rows.iter().map(|(i, _, _)| *i).collect();
    let duration_us: i64 = rows.iter().map(|(_, d, _)| d).sum();
    let manifest = manifest.and_then(|m| Manifest::parse(m.as_bytes()).ok());
    let (status, missing, mismatched) = match manifest {
        None => ("recording", Vec::new(), Vec::new()),
        Some(m) => {
            let missing = m.missing_from(&present);
            // A stored segment whose hash is not the one the device listed was altered or swapped.
            let mismatched: Vec<SegmentIndex> = rows
                .iter()
                .filter(|(i, _, sha)| m.segments.iter().any(|s| s.index == *i && s.sha256 != *sha))
                .map(|(i, _, _)| *i)
                .collect();
            let complete = missing.is_empty() && mismatched.is_empty() && clean_stop == Some(true);
            (
                if complete { "complete" } else { "incomplete" },
                missing,
                mismatched,
            )
        }
    };
    Ok(RecordingSummary {
        id: id
            .parse()
            .map_err(|e: uuid::Error| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
        created_at,
        device,
        segments: rows.iter().filter(|(i, d, _)| *i > 0 && *d > 0).count() as u32,
        duration_seconds: duration_us as f64 / 1e6,
        status: status.into(),
        missing,
        mismatched,
    })
}

/// A recording as a library lists it.
#[derive(serde::Serialize)]
pub struct LibraryItem {
    #[serde(flatten)]
    pub summary: RecordingSummary,
    /// The teacher whose lesson it is (display name).
    pub owner: String,
    pub is_owner: bool,
    /// The coaches it is shared with (display names); empty for anyone but the owner.
    pub shared_with: Vec<String>,
    /// When the retention policy deletes it (Unix time); `None` while an admin holds it.
    pub delete_after: Option<i64>,
    pub held: bool,
}

async fn my_recordings(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<LibraryItem>>> {
    let list = st
        .db(move |c| {
            let mut stmt = c.prepare(
                "SELECT id FROM recordings WHERE owner_id = ?1 ORDER BY created_at DESC",
            )?;
            let ids: Vec<String> = stmt
                .query_map([user.id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids
                .iter()
                .map(|id| super::review::library_item(c, id, crate::access::Access::Owner))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(Json(list))
}
