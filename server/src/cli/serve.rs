//! `lessonlens-server serve`: the web and device listeners, and the sweeper.

use super::Opened;
use anyhow::Context;
use lessonlens_server::domain::clock;
use lessonlens_server::http::state::AppState;
use lessonlens_server::store::accounts;
use lessonlens_server::store::tls;
use std::sync::Arc;

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(o: Opened) -> anyhow::Result<()> {
    // A teacher left without a key (the key is made after the account's commit, in another
    // file) gets one now, so a device can always record for them. Not someone leaving: their
    // key may have been shredded on purpose.
    for id in accounts::staying_teachers(&o.conn)? {
        if o.vault.public_key(id)?.is_none() {
            tracing::warn!(user = id, "a teacher had no key; making one");
            o.vault.create_key(id, clock::now())?;
        }
    }
    // Claim hashes from older devices, kept before this version, become tags under the master key.
    let tagged = lessonlens_server::store::recordings::tag_claim_hashes(&o.conn, &o.vault)?;
    if tagged > 0 {
        tracing::info!(
            tagged,
            "replaced older devices' claim hashes with keyed tags"
        );
    }
    let (tls, ca) = tls::load_or_create(
        &o.config.tls_dir(),
        &o.config.hostnames,
        clock::now(),
        o.vault.tls_seal(),
    )?;
    let bind = |a: std::net::SocketAddr| {
        std::net::TcpListener::bind(a).with_context(|| format!("cannot listen on {a} (in use?)"))
    };
    let listeners = lessonlens_server::http::Listeners {
        web: bind(o.config.listen)?,
        device: bind(o.config.device_listen)?,
    };
    let addr = listeners.web.local_addr()?;
    let device_addr = listeners.device.local_addr()?;
    let blobs = lessonlens_server::store::blobs::open(&o.config)?;
    // Finish removing the files of deletions a crash interrupted.
    let swept = lessonlens_server::store::deletion::sweep_blobs(&o.conn, blobs.as_ref())?;
    if swept > 0 {
        tracing::info!(
            swept,
            "finished removing the files of interrupted deletions"
        );
    }
    let fingerprint = ca.fingerprint.clone();
    let state = Arc::new(AppState::new(
        o.config,
        o.conn,
        o.vault,
        blobs,
        ca,
        o.unassigned,
    ));
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
            tokio::spawn(lessonlens_server::jobs::sweep_periodically(
                state.clone(),
                every,
            ));
            lessonlens_server::http::run(listeners, state, &tls, shutdown).await
        })
}
