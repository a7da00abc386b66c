//! The server's loops: the things that run by themselves while it serves. Each takes the shared
//! state and calls down into the operations; nothing below the HTTP layer imports this module.

use crate::accounts::now;
use crate::app::Shared;
use crate::retention;

/// The sweeper in the server: once at start, then every `every`.
pub async fn sweep_periodically(st: Shared, every: std::time::Duration) {
    loop {
        let s = st.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<retention::Swept> {
            retention::sweep(&s.db, &s.vault, s.blobs.as_ref(), &s.audit_key, now())
        })
        .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "retention sweep failed; it runs again later")
            }
            Err(e) => tracing::error!(error = %e, "retention sweep panicked"),
        }
        tokio::time::sleep(every).await;
    }
}
