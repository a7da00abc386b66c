//! Signed deletion receipts, for the school's records.

use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use axum::extract::State;
use axum::Json;

pub(super) async fn receipts(
    State(st): State<Shared>,
    _: Admin,
) -> AppResult<Json<Vec<serde_json::Value>>> {
    let list = st
        .db(|c| {
            crate::store::receipts::texts(c)?
                .iter()
                .map(|t| serde_json::from_str(t).map_err(|e| AppError::Internal(e.into())))
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(list))
}
