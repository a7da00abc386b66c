//! `lessonlens-capture run`: the long-running service. It binds the control API (the device
//! screen, the CLI), starts the [`Daemon`] and serves until SIGTERM/SIGINT, then stops a running
//! recording with EOS (keeping it) and gives the uploader a few seconds.

use crate::config::Config;
use crate::daemon::Daemon;
use anyhow::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs the service until `shutdown` is set.
pub fn run(config: Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.control_addr).with_context(|| {
        format!(
            "cannot listen on {} for the control API (in use?)",
            config.control_addr
        )
    })?;
    listener.set_nonblocking(true)?;
    let (d, workers) = Daemon::open(config, shutdown.clone())?;
    println!("control API on http://{}", listener.local_addr()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let wait = async move {
            while !shutdown.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, crate::control::router(d.clone()))
            .with_graceful_shutdown(wait)
            .await
    })?;
    tracing::info!("shutting down");
    d.finish(workers);
    Ok(())
}
