//! The server's loops: the things that run by themselves while it serves (the sweep, the key
//! cache's forgetting, the server certificate's renewal, the devices' bookings). Each takes the shared state and calls
//! down into the operations; `serve` starts them beside the listeners, and nothing imports this
//! module but the console.

use crate::domain::clock;
use crate::http::state::Shared;
use crate::ops::sweep;
use clock::now;

/// The sweeper in the server: once at start, then every `every`.
pub async fn sweep_periodically(st: Shared, every: std::time::Duration) {
    loop {
        let s = st.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<sweep::Swept> {
            sweep::sweep(&s.db, &s.vault, s.blobs.as_ref(), &s.audit_key, now())
        })
        .await;
        st.metrics.swept(matches!(result, Ok(Ok(_))));
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

/// Drops the vault's recently unwrapped keys once they are a minute old, also while nobody
/// watches anything.
pub async fn forget_keys_periodically(st: Shared) {
    // Often enough that a key is gone within a minute of being unwrapped, also on an idle server
    // (its lifetime plus this interval is 60 s).
    let mut every = tokio::time::interval(crate::store::vault::FORGET_EVERY);
    loop {
        every.tick().await;
        let _ = st
            .vault(|v| {
                v.forget_expired();
                Ok(())
            })
            .await;
    }
}

/// Checks the server certificate every 6 hours (start has just done so) and, once it is renewed,
/// serves the new one on both listeners to every new connection.
pub async fn renew_periodically(st: Shared, served: crate::http::Served) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
    every.tick().await;
    loop {
        every.tick().await;
        let s = st.clone();
        let renewed = tokio::task::spawn_blocking(move || {
            let hostnames = &s.config.hostnames;
            if crate::store::tls::renew_if_due(&s.ca, hostnames, clock::now())? {
                crate::store::tls::load(&s.ca).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
        match renewed {
            Ok(Some(tls)) => {
                served.web.reload_from_config(tls.server_config);
                served.device.reload_from_config(tls.device_config);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "cannot renew the server certificate; trying again in 6 hours"
            ),
        }
    }
}

/// Sends every connected device its bookings again every hour: a channel stays open for weeks,
/// and a device keeps only the coming seven days (and a teacher who left has no key to send).
pub async fn push_bookings_periodically(st: Shared) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    every.tick().await;
    loop {
        every.tick().await;
        for device in st.channels.open_devices() {
            if let Ok(list) = crate::http::routes::bookings::for_device(&st, device).await {
                st.channels.push_bookings(device, list);
            }
        }
    }
}
