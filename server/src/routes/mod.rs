//! HTTP routes, one file per group.
//!
//! - [`device`]: the device API (`/api/device/v1/...`): teacher keys, segment and manifest upload.
//! - [`web`]: sign-in and the viewer's recording list (`/api/...`).
//! - [`playback`]: HLS playlist and on-the-fly decryption of segments.
//! - [`review`]: the recording page: sharing, comments, who watched, deletion.
//! - [`admin`]: people, retention, holds, receipts and the audit log, for admins.
//! - [`assets`]: the web app's files.

pub mod admin;
pub mod assets;
pub mod device;
pub mod playback;
pub mod review;
pub mod web;

use crate::app::Shared;
use axum::routing::MethodRouter;
use axum::Router;

/// One route: its method (for the route table), its path and its handler.
pub type Route = (&'static str, &'static str, MethodRouter<Shared>);

fn all(max_segment_bytes: usize) -> Vec<Route> {
    let mut routes = device::routes(max_segment_bytes);
    routes.extend(web::routes());
    routes.extend(playback::routes());
    routes.extend(review::routes());
    routes.extend(admin::routes());
    routes.extend(assets::routes());
    routes
}

/// Every route the server answers, as (method, path). The authorization matrix test is built
/// from this, so a route added without an entry there fails the test.
pub fn table() -> Vec<(&'static str, &'static str)> {
    all(1).into_iter().map(|(m, p, _)| (m, p)).collect()
}

pub fn router(max_segment_bytes: usize) -> Router<Shared> {
    all(max_segment_bytes)
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
}
