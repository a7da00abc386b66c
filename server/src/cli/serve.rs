//! `lessonlens-server serve`: the web and device listeners, and the sweeper.

use super::Opened;
use anyhow::Context;
use lessonlens_server::http::state::AppState;
use lessonlens_server::jobs;

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(o: Opened) -> anyhow::Result<()> {
    let (state, tls) = AppState::start(o)?;
    let bind = |a: std::net::SocketAddr| {
        std::net::TcpListener::bind(a).with_context(|| format!("cannot listen on {a} (in use?)"))
    };
    let listeners = lessonlens_server::http::Listeners {
        web: bind(state.config.listen)?,
        device: bind(state.config.device_listen)?,
    };
    let addr = listeners.web.local_addr()?;
    let device_addr = listeners.device.local_addr()?;
    let fingerprint = state.ca.fingerprint.clone();
    // Machine-readable lines on stdout: tests and scripts read the addresses and the fingerprint.
    println!("listening on https://{addr}");
    println!("device API (mutual TLS) on https://{device_addr}");
    println!("school CA fingerprint (SHA-256) {fingerprint}");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
                tracing::info!("shutting down");
            };
            let every = std::time::Duration::from_secs(
                u64::from(state.config.sweep_interval_minutes.max(1)) * 60,
            );
            let served = lessonlens_server::http::Served::new(&tls);
            tokio::spawn(jobs::sweep_periodically(state.clone(), every));
            tokio::spawn(jobs::renew_periodically(state.clone(), served.clone()));
            tokio::spawn(jobs::forget_keys_periodically(state.clone()));
            tokio::spawn(jobs::push_bookings_periodically(state.clone()));
            lessonlens_server::http::run(listeners, state, served, shutdown).await
        })
}
