//! One error type for the HTTP layer and its single mapping to status codes. The text a person sees
//! is kept apart from the cause that is logged: internal detail never reaches a response body.

use crate::ops::claim::ClaimError;
use crate::ops::ingest::IngestError;
use crate::ops::offboarding::OffboardError;
use crate::store::devices::DeviceError;
use crate::store::tls::IssueError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lessonlens_proto::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error("sign in first")]
    Unauthenticated,
    #[error("this device's certificate is revoked or replaced; an admin can give it a new enrollment code")]
    DeviceNotCurrent,
    #[error("{0}")]
    Forbidden(&'static str),
    /// Also used when the caller may not know that the thing exists.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    TooManyRequests(&'static str),
    #[error("too many failed sign-ins; try again in {0} minute(s)")]
    TooManyRequestsFor(i64),
    #[error("this account has had many failed sign-ins from other computers, so it takes sign-ins only from browsers that have signed in to it before; use one of those, try again in {0} minute(s), or use your recovery code; tell your school's IT team if this goes on")]
    TooManyRequestsElsewhere(i64),
    /// The blob storage failed (disk full, object store unreachable); worth trying again.
    #[error("{0}")]
    Unavailable(&'static str),
    /// Something the request needs is not there just now (a room's device that is offline).
    #[error("{0}")]
    UnavailableBecause(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated | AppError::DeviceNotCurrent => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests(_)
            | AppError::TooManyRequestsFor(_)
            | AppError::TooManyRequestsElsewhere(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::UnavailableBecause(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        // Both leave nothing half-done: a device keeps its segment and sends it again.
        let unavailable = if e.kind() == std::io::ErrorKind::StorageFull {
            "the server's disk is full; nothing was lost, try again later, and tell the IT admin"
        } else if e
            .get_ref()
            .is_some_and(|inner| inner.is::<crate::store::blobs::Unavailable>())
        {
            "the school's storage cannot be reached just now; nothing was lost, try again later, \
             and tell the IT admin if it goes on"
        } else {
            return AppError::Internal(e.into());
        };
        tracing::error!(error = %e, "blob storage failed");
        AppError::Unavailable(unavailable)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(cause) = &self {
            tracing::error!(error = %format!("{cause:#}"), "request failed");
        }
        let body = match &self {
            AppError::Internal(_) => "internal error; the server log has the details".to_string(),
            other => other.to_string(),
        };
        (self.status(), Json(ErrorBody { error: body })).into_response()
    }
}

pub type AppResult<T> = Result<T, AppError>;

// The store's and the operations' errors, as a person sees them.

impl From<DeviceError> for AppError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::Db(e) => e.into(),
            DeviceError::BadCode => AppError::Forbidden(
                "that enrollment code is wrong, used or expired; ask an admin for a new one",
            ),
            DeviceError::BadName => AppError::BadRequest(e.to_string()),
            other => AppError::Conflict(other.to_string()),
        }
    }
}

impl From<IssueError> for AppError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::BadCsr(_) => AppError::BadRequest(e.to_string()),
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<OffboardError> for AppError {
    fn from(e: OffboardError) -> Self {
        match e {
            OffboardError::Db(e) => e.into(),
            other => AppError::Conflict(other.to_string()),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(m) => AppError::Unprocessable(m),
            IngestError::OtherDevice => AppError::Forbidden(crate::ops::ingest::OTHER_DEVICE),
            IngestError::Conflict(m) => AppError::Conflict(m),
            IngestError::TooManyRecordings => {
                AppError::TooManyRequests(crate::ops::ingest::TOO_MANY_RECORDINGS)
            }
            IngestError::Store(e) => e.into(),
            IngestError::Db(e) => e.into(),
            IngestError::Other(e) => AppError::Internal(e),
        }
    }
}

impl From<ClaimError> for AppError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::NotYourCode => AppError::Forbidden(crate::ops::claim::NOT_YOUR_CODE),
            ClaimError::NotStartedWithYourCode => {
                AppError::Forbidden(crate::ops::claim::NOT_STARTED_WITH_YOUR_CODE)
            }
            ClaimError::NotFound => AppError::NotFound,
            ClaimError::Taken => AppError::Conflict(e.to_string()),
            ClaimError::Store(e) => e.into(),
            ClaimError::Db(e) => e.into(),
            ClaimError::Other(e) => AppError::Internal(e),
        }
    }
}
