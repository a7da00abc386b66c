//! The retention policy, the recordings list (metadata only) and holds.

use crate::domain::people::User;
use crate::domain::retention::Policy;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::store::{recordings, retention};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

pub(super) async fn policy(State(st): State<Shared>, _: Admin) -> AppResult<Json<Policy>> {
    Ok(Json(st.db(|c| Ok(retention::load_policy(c)?)).await?))
}

pub(super) async fn set_policy(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(p): Json<Policy>,
) -> AppResult<Json<Policy>> {
    p.validate().map_err(AppError::BadRequest)?;
    let audit_key = st.audit_key.clone();
    st.db(move |c| {
        retention::save_policy(c, &p)?;
        let text = serde_json::to_string(&p).map_err(|e| AppError::Internal(e.into()))?;
        crate::store::audit::record(c, &audit_key, &admin.audit_id, "retention-policy", &text)?;
        Ok(())
    })
    .await?;
    Ok(Json(p))
}

pub(super) async fn recordings(
    State(st): State<Shared>,
    _: Admin,
) -> AppResult<Json<Vec<recordings::AdminRow>>> {
    Ok(Json(st.db(|c| Ok(recordings::for_admin(c)?)).await?))
}

#[derive(Deserialize)]
pub(super) struct HoldForm {
    reason: String,
}

pub(super) async fn set_hold(
    st: Shared,
    admin: User,
    id: String,
    reason: Option<String>,
) -> AppResult<()> {
    let audit_key = st.audit_key.clone();
    let found = st
        .db(move |c| {
            Ok(retention::set_hold(
                c,
                &audit_key,
                &admin.audit_id,
                &id,
                reason.as_deref(),
            )?)
        })
        .await?;
    if !found {
        return Err(AppError::NotFound);
    }
    Ok(())
}

pub(super) async fn hold(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Json(form): Json<HoldForm>,
) -> AppResult<Json<serde_json::Value>> {
    let reason = form.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::BadRequest(
            "give a reason for the hold (up to 500 characters)".into(),
        ));
    }
    set_hold(st, admin, id, Some(reason)).await?;
    Ok(Json(serde_json::json!({ "held": true })))
}

pub(super) async fn release(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    set_hold(st, admin, id, None).await?;
    Ok(Json(serde_json::json!({ "held": false })))
}
