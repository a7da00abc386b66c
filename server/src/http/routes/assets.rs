//! The web app's files, served from `web_dir`. Only the files named here are served, so no request
//! path can reach anything else on disk. Also the API's OpenAPI description (`server/openapi.json`).

use super::Route;
use crate::http::error::{AppError, AppResult};
use crate::http::state::Shared;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    // The app's modules (web/js/), one per view plus the small shared ones.
    (
        "/js/account.js",
        "js/account.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/js/admin.js",
        "js/admin.js",
        "text/javascript; charset=utf-8",
    ),
    ("/js/api.js", "js/api.js", "text/javascript; charset=utf-8"),
    ("/js/dom.js", "js/dom.js", "text/javascript; charset=utf-8"),
    (
        "/js/format.js",
        "js/format.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/js/library.js",
        "js/library.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/js/recording.js",
        "js/recording.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/js/rooms.js",
        "js/rooms.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/js/state.js",
        "js/state.js",
        "text/javascript; charset=utf-8",
    ),
    (
        "/js/talk.js",
        "js/talk.js",
        "text/javascript; charset=utf-8",
    ),
    ("/style.css", "style.css", "text/css; charset=utf-8"),
    ("/favicon.svg", "favicon.svg", "image/svg+xml"),
    (
        "/vendor/hls.min.js",
        "node_modules/hls.js/dist/hls.min.js",
        "text/javascript; charset=utf-8",
    ),
];

/// The OpenAPI description of the HTTP API, kept in the repository beside this crate.
pub const OPENAPI: &str = include_str!("../../../openapi.json");

pub fn routes() -> Vec<Route> {
    let mut routes: Vec<Route> = ASSETS
        .iter()
        .map(|&(route, file, ctype)| {
            (
                "GET",
                route,
                get(move |State(st): State<Shared>| serve(st, file, ctype)),
            )
        })
        .collect();
    routes.push((
        "GET",
        "/api/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
    ));
    routes
}

async fn serve(st: Shared, file: &'static str, ctype: &'static str) -> AppResult<Response> {
    let path = st.config.web_dir.join(file);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "cannot read web asset {} ({e}); is web_dir right and `npm ci` run in it?",
            path.display()
        ))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}
