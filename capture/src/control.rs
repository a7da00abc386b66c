//! The control API on the device's loopback address: the device screen (a page and its event
//! stream) and the CLI drive the recorder through it (the record button calls the daemon
//! directly).
//!
//! ```text
//! GET  /                                         the device screen (index.html, screen.js, screen.css)
//! GET  /v1/events                                server-sent events: `status` at once on every change
//!                                                and each second, `levels` ten times a second
//! GET  /v1/preview.jpg                           the camera preview while recording (memory only)
//! POST /v1/record/start {"code": "2468"}         start a recording (409 if one is running); by
//!                      {"teacher": "jsmith"}     username only with demo_mode
//!                      {"booked": true}          the booked lesson whose slot is running
//! POST /v1/record/stop                           stop it (EOS: the last partial segment is kept)
//! POST /v1/record/pause, /v1/record/resume       privacy pause: nothing is recorded meanwhile
//! GET  /v1/status                                state, teacher, elapsed, levels, spool, server
//! GET  /metrics                                  the same as Prometheus text
//! ```
//! It listens on loopback only (enforced by the config) and answers only requests addressed to
//! that address, from pages of that address: on the appliance the only local users are the
//! kiosk page and the button, and no other page a browser opens can drive the recorder.

use crate::daemon::{ApiError, Daemon, StartRequest};
use crate::recorder::Who;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

/// Answers only requests addressed to the control address itself, so a web page that rebinds
/// its own name to 127.0.0.1 (DNS rebinding) cannot drive the recorder.
async fn same_host(
    State(d): State<Arc<Daemon>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let addr = d.config.control_addr;
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let allowed = [addr.to_string(), format!("localhost:{}", addr.port())];
    if !allowed.iter().any(|a| a == host) {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("the control API answers only requests to {addr}"),
        )
        .into_response();
    }
    // A page from anywhere else (another local port, a file) may not drive the recorder, even
    // if it finds a way to send its request without a preflight.
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok());
    // Nor read from it (the preview, the status): a browser says where a request comes from.
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site" || v == "same-site");
    if cross_site
        || (req.method() != Method::GET
            && origin.is_some_and(|o| !allowed.iter().any(|a| o == format!("http://{a}"))))
    {
        return ApiError(
            StatusCode::FORBIDDEN,
            "the control API takes commands only from the device's own screen".into(),
        )
        .into_response();
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // Nothing here may be framed by another page (a click on Stop under someone else's page).
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

pub fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route(
            "/v1/record/start",
            post(
                |State(d): State<Arc<Daemon>>, Json(req): Json<StartRequest>| async move {
                    let who = match (req.teacher, req.code, req.booked) {
                        (Some(t), None, false) => Some(Who::Username(t)),
                        (None, Some(c), false) => Some(Who::Code(c)),
                        (None, None, true) => None,
                        _ => {
                            return Err(ApiError(
                                StatusCode::BAD_REQUEST,
                                "give a teacher, a code, or \"booked\": true".into(),
                            ))
                        }
                    };
                    blocking(move || match who {
                        Some(who) => d.start(&who),
                        None => d.start_booked(),
                    })
                    .await
                    .map(|r| Json(serde_json::json!({ "recording": r })))
                },
            ),
        )
        .route(
            "/v1/record/stop",
            // A JSON body is required, so a web page cannot stop a lesson with a plain form post.
            post(
                |State(d): State<Arc<Daemon>>, Json(_): Json<serde_json::Value>| async move {
                    blocking(move || d.stop()).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/record/pause",
            post(
                |State(d): State<Arc<Daemon>>, Json(_): Json<serde_json::Value>| async move {
                    blocking(move || d.set_paused(true)).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/record/resume",
            post(
                |State(d): State<Arc<Daemon>>, Json(_): Json<serde_json::Value>| async move {
                    blocking(move || d.set_paused(false)).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/status",
            get(|State(d): State<Arc<Daemon>>| async move {
                blocking(move || Ok(Json(d.status()))).await
            }),
        )
        .route(
            "/metrics",
            get(|State(d): State<Arc<Daemon>>| async move {
                blocking(move || Ok(d.metrics())).await
            }),
        )
        .route("/v1/events", get(events))
        .route("/v1/preview.jpg", get(preview))
        .route("/", get(|| async { asset("text/html; charset=utf-8", SCREEN_HTML) }))
        .route(
            "/screen.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCREEN_JS) }),
        )
        .route(
            "/screen.css",
            get(|| async { asset("text/css; charset=utf-8", SCREEN_CSS) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset("image/svg+xml", SCREEN_ICON) }),
        )
        .layer(axum::middleware::from_fn_with_state(d.clone(), same_host))
        .with_state(d)
}

/// The device screen: plain HTML, CSS and an ES module, built into the binary.
const SCREEN_HTML: &str = include_str!("../screen/index.html");
const SCREEN_JS: &str = include_str!("../screen/screen.js");
const SCREEN_CSS: &str = include_str!("../screen/screen.css");
const SCREEN_ICON: &str = include_str!("../screen/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The screen's event stream: the whole status at once whenever the state changes (and each
/// second, for the clock), and the microphones' levels whenever `level` reports (10 a second).
async fn events(
    State(d): State<Arc<Daemon>>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // A kiosk needs one stream; a few allow a reload while the old one closes.
    let slot = EventSlot::take(&d).ok_or_else(|| {
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many screens are listening; close one".into(),
        )
    })?;
    let (state, levels) = (d.changes.subscribe(), d.level_changes.subscribe());
    // The whole status at least once a second, however often the levels arrive in between.
    let every = Duration::from_secs(1);
    let stream = futures_util::stream::unfold(
        (d, state, levels, None::<tokio::time::Instant>, slot),
        move |(d, mut state, mut levels, last_full, slot)| async move {
            let due = last_full.map_or_else(tokio::time::Instant::now, |t| t + every);
            let full = last_full.is_none()
                || tokio::select! {
                    r = state.changed() => r.is_ok(),
                    r = levels.changed() => r.is_err() || tokio::time::Instant::now() >= due,
                    () = tokio::time::sleep_until(due) => true,
                };
            if d.shutdown.load(Ordering::Acquire) {
                return None;
            }
            state.mark_unchanged();
            levels.mark_unchanged();
            let (event, last_full) = if full {
                let d2 = d.clone();
                let status = tokio::task::spawn_blocking(move || d2.status())
                    .await
                    .ok()?;
                let event = Event::default().event("status").json_data(&status).ok()?;
                (event, Some(tokio::time::Instant::now()))
            } else {
                let levels = d.live().map(|l| l.levels()).unwrap_or_default();
                let event = Event::default()
                    .event("levels")
                    .json_data(serde_json::json!({ "levels": levels }))
                    .ok()?;
                (event, last_full)
            };
            Some((Ok(event), (d, state, levels, last_full, slot)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Most event streams open at once.
const MAX_EVENT_STREAMS: usize = 4;

/// One of the [`MAX_EVENT_STREAMS`], given back when its stream ends.
struct EventSlot(Arc<Daemon>);

impl EventSlot {
    fn take(d: &Arc<Daemon>) -> Option<EventSlot> {
        d.event_streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_EVENT_STREAMS).then_some(n + 1)
            })
            .ok()
            .map(|_| EventSlot(d.clone()))
    }
}

impl Drop for EventSlot {
    fn drop(&mut self) {
        self.0.event_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The latest preview frame of the running recording, and a request to keep making them. Made
/// in memory by the pipeline's preview branch, never written to disk; 204 until there is one.
async fn preview(State(d): State<Arc<Daemon>>) -> Response {
    let Some(live) = d.live() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    live.want_preview();
    match live.preview() {
        Some(jpeg) => (
            [(header::CONTENT_TYPE, "image/jpeg")],
            jpeg.as_ref().clone(),
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
