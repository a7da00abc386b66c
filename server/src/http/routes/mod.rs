//! HTTP routes, one file per group.
//!
//! - [`device`]: the device API (`/api/device/v1/...`, its own listener): teacher keys, segment
//!   and manifest upload, certificate renewal; and enrollment (`/api/enroll`, on the web listener).
//! - [`web`]: sign-in and the viewer's recording list (`/api/...`).
//! - [`playback`]: HLS playlist and on-the-fly decryption of segments.
//! - [`review`]: the recording page: sharing, comments, who watched, deletion.
//! - [`claim`]: lessons recorded offline, and teachers claiming them.
//! - [`rooms`]: every room's state, and starting and stopping lessons from the web.
//! - [`bookings`]: booking a room for a lesson, once or weekly.
//! - [`admin`]: people, retention, holds, receipts and the audit log, for admins.
//! - [`assets`]: the web app's files.

pub mod admin;
pub mod assets;
pub mod bookings;
pub mod claim;
pub mod device;
pub mod groups;
pub mod health;
pub mod playback;
pub mod review;
pub mod rooms;
pub mod web;

use crate::http::state::Shared;
use axum::routing::MethodRouter;
use axum::Router;

/// One route: its method (for the route table), its path and its handler.
pub type Route = (&'static str, &'static str, MethodRouter<Shared>);

/// Which listener a route is served on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// The web app and its API (server-authenticated TLS, cookie sessions).
    Web,
    /// The device API (mutual TLS: a client certificate from the school CA).
    Device,
}

fn web() -> Vec<Route> {
    let mut routes = device::enroll_routes();
    routes.extend(web::routes());
    routes.extend(playback::routes());
    routes.extend(review::routes());
    routes.extend(groups::routes());
    routes.extend(claim::routes());
    routes.extend(rooms::routes());
    routes.extend(bookings::routes());
    routes.extend(admin::routes());
    routes.extend(assets::routes());
    routes.extend(health::routes());
    routes
}

/// Every route the server answers, as (listener, method, path). The authorization matrix test is
/// built from this, so a route added without an entry there fails the test.
pub fn table() -> Vec<(Listener, &'static str, &'static str)> {
    let on = |l: Listener| move |(m, p, _): Route| (l, m, p);
    let mut t: Vec<_> = web().into_iter().map(on(Listener::Web)).collect();
    t.extend(device::routes(1).into_iter().map(on(Listener::Device)));
    t
}

/// One page of a long list, newest first.
#[derive(serde::Serialize)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// From 0.
    pub page: u32,
    /// Whether there are older entries on a next page.
    pub more: bool,
}

impl<T> Page<T> {
    /// The highest page number a list accepts.
    pub const LAST: u32 = 100_000;

    /// Refuses a page number beyond [`Page::LAST`], before any work.
    pub fn check(page: u32) -> crate::http::error::AppResult<()> {
        if page > Self::LAST {
            return Err(crate::http::error::AppError::BadRequest(format!(
                "page must be at most {}",
                Self::LAST
            )));
        }
        Ok(())
    }

    /// The (limit, offset) to ask the database for page `page` of `size` rows: one row more
    /// than a page, which [`Page::of`] uses to tell whether another page follows.
    pub fn window(page: u32, size: i64) -> (i64, i64) {
        (size + 1, i64::from(page) * size)
    }

    /// The page made of `fetched`, as asked for with [`Page::window`].
    pub fn of(page: u32, size: i64, mut fetched: Vec<T>) -> Page<T> {
        let more = fetched.len() as i64 > size;
        fetched.truncate(size as usize);
        Page {
            rows: fetched,
            page,
            more,
        }
    }
}

/// A request body that is one code a person typed (a device code, a two-step code); wiped when
/// dropped.
#[derive(serde::Deserialize)]
pub struct CodeForm {
    pub code: zeroize::Zeroizing<String>,
}

/// A download: `body` as a file named `filename`, never cached.
pub fn attachment(
    content_type: &'static str,
    filename: &str,
    body: axum::body::Body,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn build(routes: Vec<Route>) -> Router<Shared> {
    routes
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
}

pub fn web_router() -> Router<Shared> {
    build(web())
}

pub fn device_router(max_segment_bytes: usize) -> Router<Shared> {
    build(device::routes(max_segment_bytes))
}

/// Deletes recordings (rows, audit, then files) from a request handler.
pub async fn delete_recordings(
    st: &Shared,
    recs: Vec<String>,
    actor: &str,
    action: &'static str,
) -> crate::http::error::AppResult<crate::store::deletion::Removed> {
    let audit_key = st.audit_key.clone();
    let actor = actor.to_string();
    let removed = st
        .db(move |c| {
            let removed =
                crate::store::deletion::delete_rows(c, &audit_key, &recs, &actor, action)?;
            crate::store::db::forget(c)?;
            Ok(removed)
        })
        .await?;
    remove_listed_files(st).await?;
    Ok(removed)
}

/// [`crate::store::deletion::sweep_blobs`] from a request handler, on a blocking thread, taking the database only
/// between files.
pub async fn remove_listed_files(st: &Shared) -> crate::http::error::AppResult<()> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || {
        crate::store::deletion::sweep_blobs(&st.db, st.blobs.as_ref())
    })
    .await
    .map_err(|e| crate::http::error::AppError::Internal(e.into()))??;
    Ok(())
}

/// Recording ids are UUIDs; anything else names nothing.
pub(crate) fn rec_id(id: &str) -> crate::http::error::AppResult<String> {
    id.parse::<lessonlens_proto::RecordingId>()
        .map(|r| r.to_string())
        .map_err(|_| crate::http::error::AppError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::{table, Listener};
    use std::collections::BTreeSet;

    /// `server/openapi.json` describes exactly the API routes the server has, each on the listener
    /// it is served on.
    #[test]
    fn the_openapi_description_matches_the_route_table() {
        let doc: serde_json::Value = serde_json::from_str(super::assets::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut described = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let device = item.get("servers").is_some();
            for method in item.as_object().unwrap().keys() {
                if method != "servers" {
                    described.insert((device, method.to_uppercase(), path.clone()));
                }
            }
        }
        let served: BTreeSet<_> = table()
            .into_iter()
            .filter(|(_, _, p)| p.starts_with("/api/"))
            .map(|(l, m, p)| (l == Listener::Device, m.to_string(), p.to_string()))
            .collect();
        let missing: Vec<_> = served.difference(&described).collect();
        let extra: Vec<_> = described.difference(&served).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "server/openapi.json is out of date.\nnot described: {missing:?}\ndescribed but not served: {extra:?}"
        );
    }

    /// Issue 14.8: every route that takes a parameter or a body documents 400; those with a
    /// failure limit 429; those that read or write the blob store 503.
    #[test]
    fn the_openapi_description_lists_the_error_statuses() {
        let doc: serde_json::Value = serde_json::from_str(super::assets::OPENAPI).unwrap();
        let limited = [
            ("post", "/api/login"),
            ("post", "/api/recover"),
            ("post", "/api/invite"),
            ("post", "/api/me/recovery-code"),
            ("post", "/api/me/second-factor/confirm"),
            ("post", "/api/unassigned/{id}/claim"),
            ("post", "/api/enroll"),
            ("post", "/api/device/v1/identify"),
            ("put", "/api/device/v1/recordings/{id}/segments/{index}"),
            ("put", "/api/device/v1/recordings/{id}/manifest"),
        ];
        let storage = [
            ("get", "/api/recordings/{id}/init.mp4"),
            ("get", "/api/recordings/{id}/segments/{index}"),
            ("get", "/api/recordings/{id}/poster.jpg"),
            ("get", "/api/recordings/{id}/talk"),
            ("get", "/api/recordings/{id}/download.mp4"),
            ("delete", "/api/recordings/{id}"),
            ("post", "/api/unassigned/{id}/claim"),
            ("get", "/api/me/export"),
            ("put", "/api/device/v1/recordings/{id}/segments/{index}"),
        ];
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "servers" {
                    continue;
                }
                let input = path.contains('{')
                    || op.get("requestBody").is_some()
                    || op["parameters"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
                let key = (method.as_str(), path.as_str());
                let need = [
                    ("400", input),
                    ("429", limited.contains(&key)),
                    ("503", storage.contains(&key)),
                ];
                for (status, needed) in need {
                    if needed && op["responses"].get(status).is_none() {
                        missing.push(format!("{method} {path}: {status}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "server/openapi.json lacks {missing:#?}");
    }
}
