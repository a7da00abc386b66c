//! Classroom devices: the list with each one's last report, enrollment codes and revocation.

use crate::domain::clock;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::store::devices;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

pub(super) async fn devices_list(
    State(st): State<Shared>,
    _: Admin,
) -> AppResult<Json<Vec<devices::DeviceInfo>>> {
    Ok(Json(st.db(|c| Ok(devices::list(c)?)).await?))
}

#[derive(Deserialize)]
pub(super) struct NewDevice {
    name: String,
}

/// A one-time code that enrols a device (new, or one enrolling again), valid for 10 minutes.
pub(super) async fn enrollment_code(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(req): Json<NewDevice>,
) -> AppResult<Json<serde_json::Value>> {
    let now = clock::now();
    let name = req.name.clone();
    let key = st.audit_key.clone();
    let code = st
        .db(move |c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let code = devices::create_code(&tx, &name, now)?;
            crate::store::audit::append(&tx, &key, &admin.audit_id, "device-enroll-code", &name)?;
            tx.commit()?;
            Ok(code)
        })
        .await?;
    Ok(Json(serde_json::json!({
        "device": req.name,
        "code": &*code,
        "expires_at": now + devices::CODE_SECONDS,
        "ca_sha256": st.ca.fingerprint,
    })))
}

pub(super) async fn revoke_device(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let key = st.audit_key.clone();
    let id = st
        .db(move |c| {
            let id = devices::list(c)?
                .into_iter()
                .find(|d| d.name == name)
                .map(|d| d.id);
            if !devices::revoke(c, &name)? {
                return Err(AppError::NotFound);
            }
            crate::store::audit::record(c, &key, &admin.audit_id, "device-revoke", &name)?;
            Ok(id)
        })
        .await?;
    // Its channel closes at once: nothing more (bookings, commands) reaches it.
    if let Some(id) = id {
        st.channels.disconnect(id);
    }
    Ok(Json(serde_json::json!({ "revoked": true })))
}
