//! `/healthz` for whatever watches the server (systemd, a monitoring system, a load balancer),
//! and `/metrics` in Prometheus' text format for the school's monitoring, from the networks in
//! `metrics_networks` only (default: this machine).

use super::Route;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{ClientIp, Shared};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/healthz", get(healthz)),
        ("GET", "/metrics", get(metrics)),
    ]
}

/// 200 when the database answers and the key vault is usable; 503 saying which is not.
async fn healthz(State(st): State<Shared>) -> AppResult<Response> {
    st.db(|c| Ok(crate::store::db::ping(c)?))
        .await
        .map_err(|_| AppError::Unavailable("the database does not answer"))?;
    st.vault(|_| Ok(()))
        .await
        .map_err(|_| AppError::Unavailable("the key vault is not usable"))?;
    Ok(([(header::CACHE_CONTROL, "no-store")], "ok\n").into_response())
}

async fn metrics(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
) -> AppResult<Response> {
    if !st.config.metrics_networks.iter().any(|n| n.contains(&ip)) {
        return Err(AppError::Forbidden(
            "metrics are only for the networks in metrics_networks (by default, this machine)",
        ));
    }
    let s = st.clone();
    let ends = tokio::task::spawn_blocking(move || crate::store::tls::server_cert_ends(&s.ca))
        .await
        .ok()
        .and_then(Result::ok);
    let text = st
        .metrics
        .render(ends.map(|t| t - crate::domain::clock::now()));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}
