//! The retention policy, the recordings list (metadata only) and holds.

use crate::domain::people::User;
use crate::domain::retention::Policy;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::store::retention;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

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

#[derive(Serialize)]
pub(super) struct RecordingRow {
    id: String,
    owner: String,
    device: String,
    created_at: i64,
    delete_after: Option<i64>,
    hold_reason: Option<String>,
}

pub(super) async fn recordings(
    State(st): State<Shared>,
    _: Admin,
) -> AppResult<Json<Vec<RecordingRow>>> {
    let list = st
        .db(|c| {
            let policy = retention::load_policy(c)?;
            let mut stmt = c.prepare(
                "SELECT r.id, u.display_name, d.name, r.created_at, r.hold_reason
                 FROM recordings r JOIN users u ON u.id = r.owner_id JOIN devices d ON d.id = r.device_id
                 ORDER BY r.created_at DESC",
            )?;
            let rows: Vec<(String, String, String, i64, Option<String>)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, owner, device, created_at, hold_reason)| {
                    let row = retention::row(c, &id)?;
                    Ok(RecordingRow {
                        delete_after: crate::domain::retention::delete_after(&policy, &row).map(|(at, _)| at),
                        id,
                        owner,
                        device,
                        created_at,
                        hold_reason,
                    })
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(list))
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
