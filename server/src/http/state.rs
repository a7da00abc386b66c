//! Shared state and request extractors (who is asking: a session, a signed-in person, a device
//! by its certificate, the client's address). The routers, middleware and listeners that use
//! them are in [`crate::http`].

use crate::config::Config;
use crate::domain::clock;
use crate::domain::people::{User, UserId};
use crate::http::error::{AppError, AppResult};
use crate::http::limits::FailureWindow;
use crate::store::accounts::{self};
use crate::store::blobs::BlobStore;
use crate::store::devices::{self, Device};
use crate::store::tls::SchoolCa;
use crate::store::vault::Vault;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use rusqlite::Connection;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The session cookie. `__Host-` makes the browser refuse it unless it is Secure, host-only and
/// for path `/`.
pub const SESSION_COOKIE: &str = "__Host-lessonlens";

pub struct AppState {
    pub config: Config,
    /// One connection, one writer: SQLite serialises writes anyway, and a mutex makes it explicit.
    pub db: Mutex<Connection>,
    pub vault: Mutex<Vault>,
    pub blobs: Box<dyn BlobStore>,
    /// Wrong device codes per device: 5 in 5 minutes.
    pub code_failures: FailureWindow<i64>,
    /// Failed sign-ins per account and address (5 in 15 minutes; see `http::routes::web::account_key`)
    /// and per address (20 in 15 minutes).
    pub login_failures_account: FailureWindow<String>,
    pub login_failures_address: FailureWindow<IpAddr>,
    /// Failed sign-ins per account from every address together (20 in 15 minutes), which a
    /// browser that signed in to the account before is not held to (see `http::routes::web`).
    pub login_failures_everywhere: FailureWindow<String>,
    /// Signs the known-browser cookie (derived from the master key).
    pub known_browser_key: zeroize::Zeroizing<[u8; 32]>,
    /// The devices' live channels, and the commands waiting for an answer.
    pub channels: Arc<crate::http::channels::Channels>,
    /// The school's time zone (timetables, weekly bookings).
    pub tz: jiff::tz::TimeZone,
    /// Password checks running at once (Argon2 takes ~19 MiB each).
    pub password_checks: tokio::sync::Semaphore,
    /// Seals the audit log's hash chain (derived from the master key).
    pub audit_key: zeroize::Zeroizing<[u8; 32]>,
    /// Issues device certificates.
    pub ca: SchoolCa,
    /// The account that holds lessons recorded offline until they are claimed (made at start,
    /// see [`accounts::ensure_unassigned`]).
    pub unassigned: UserId,
    /// Wrong codes when claiming an offline lesson, per account: 5 in 15 minutes.
    pub claim_failures: FailureWindow<UserId>,
    /// Failed device enrollments per address: 10 in 15 minutes.
    pub enroll_failures: FailureWindow<IpAddr>,
    /// Failed invitation links per address: 10 in 15 minutes.
    pub invite_failures: FailureWindow<IpAddr>,
    /// Device codes a teacher chose that another teacher has, per account: 5 in 15 minutes, so
    /// nobody can try codes to find a colleague's. Signing in does not reset it.
    pub code_taken: FailureWindow<UserId>,
    /// The counters `/metrics` shows.
    pub metrics: Arc<crate::domain::metrics::Metrics>,
}

impl AppState {
    pub fn new(
        config: Config,
        db: Connection,
        vault: Vault,
        blobs: Box<dyn BlobStore>,
        ca: SchoolCa,
        unassigned: UserId,
    ) -> AppState {
        let audit_key = vault.audit_key();
        let known_browser_key = vault.known_browser_key();
        let metrics: Arc<crate::domain::metrics::Metrics> = Default::default();
        // Every blob store error is counted, whichever route or job meets it.
        let blobs = crate::store::blobs::counted(blobs, metrics.clone());
        AppState {
            metrics,
            audit_key,
            known_browser_key,
            channels: Default::default(),
            tz: config.time_zone().unwrap_or(jiff::tz::TimeZone::UTC),
            config,
            db: Mutex::new(db),
            vault: Mutex::new(vault),
            blobs,
            code_failures: FailureWindow::new(5, 300),
            login_failures_account: FailureWindow::new(5, 900),
            login_failures_address: FailureWindow::new(20, 900),
            login_failures_everywhere: FailureWindow::new(20, 900),
            password_checks: tokio::sync::Semaphore::new(4),
            ca,
            unassigned,
            enroll_failures: FailureWindow::new(10, 900),
            invite_failures: FailureWindow::new(10, 900),
            claim_failures: FailureWindow::new(5, 900),
            code_taken: FailureWindow::new(5, 900),
        }
    }
}

impl AppState {
    /// The server's state over the opened stores, after the start-up repairs: a teacher without
    /// a key gets one, older devices' claim hashes become keyed tags, the TLS material is made
    /// or renewed if due, and the files of deletions a crash interrupted are removed.
    pub fn start(o: crate::store::Opened) -> anyhow::Result<(Shared, crate::store::tls::Tls)> {
        // A teacher left without a key (the key is made after the account's commit, in another
        // file) gets one now, so a device can always record for them. Not someone leaving: their
        // key may have been shredded on purpose.
        for id in crate::store::accounts::staying_teachers(&o.conn)? {
            if o.vault.public_key(id)?.is_none() {
                tracing::warn!(user = %id, "a teacher had no key; making one");
                o.vault.create_key(id, crate::domain::clock::now())?;
            }
        }
        // Claim hashes from older devices, kept before this version, become tags under the master key.
        let tagged = crate::store::recordings::tag_claim_hashes(&o.conn, &o.vault)?;
        if tagged > 0 {
            tracing::info!(
                tagged,
                "replaced older devices' claim hashes with keyed tags"
            );
        }
        let (tls, ca) = crate::store::tls::load_or_create(
            &o.config.tls_dir(),
            &o.config.hostnames,
            crate::domain::clock::now(),
            o.vault.tls_seal(),
        )?;
        let blobs = crate::store::blobs::open(&o.config)?;
        let swept = crate::store::deletion::sweep_blobs(&o.conn, blobs.as_ref())?;
        if swept > 0 {
            tracing::info!(
                swept,
                "finished removing the files of interrupted deletions"
            );
        }
        let state = Arc::new(AppState::new(
            o.config,
            o.conn,
            o.vault,
            blobs,
            ca,
            o.unassigned,
        ));
        Ok((state, tls))
    }
}

/// The address a request really comes from (after trusted proxies), set by the network guard (`crate::http`).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// The client's address. `forwarded` holds every `X-Forwarded-For` value in order. Walking from
/// the right, each hop is believed only while the hop that reported it is a trusted proxy; an
/// entry that does not parse stops the walk at the last address that was believed.
pub fn client_ip(peer: IpAddr, forwarded: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |a: &IpAddr| trusted.iter().any(|n| n.contains(a));
    let mut current = peer;
    for entry in forwarded.iter().rev().flat_map(|h| h.rsplit(',')) {
        if !is_trusted(&current) {
            break;
        }
        match entry.trim().parse::<IpAddr>() {
            Ok(a) => current = a,
            Err(_) => break,
        }
    }
    current
}

pub type Shared = Arc<AppState>;

impl AppState {
    /// Runs blocking database work off the async runtime.
    pub async fn db<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let st = self.clone();
        tokio::task::spawn_blocking(move || f(&*st.lock_db()?))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
    }

    pub async fn vault<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Vault) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        let st = self.clone();
        tokio::task::spawn_blocking(move || f(&*st.lock_vault()?))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
    }

    /// The database, for work already on a blocking thread.
    pub fn lock_db(&self) -> AppResult<std::sync::MutexGuard<'_, Connection>> {
        Ok(self
            .db
            .lock()
            .map_err(|_| anyhow::anyhow!("database lock poisoned"))?)
    }

    /// The key vault, for work already on a blocking thread. Never taken while holding
    /// [`Self::lock_db`]'s guard.
    pub fn lock_vault(&self) -> AppResult<std::sync::MutexGuard<'_, Vault>> {
        Ok(self
            .vault
            .lock()
            .map_err(|_| anyhow::anyhow!("vault lock poisoned"))?)
    }
}

pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie called `name`, if the request has it.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whoever holds a live session, including one that may only set up a second factor.
pub struct AnySession {
    pub user: User,
    pub setup_only: bool,
    pub token: zeroize::Zeroizing<String>,
}

impl FromRequestParts<Shared> for AnySession {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let token = zeroize::Zeroizing::new(
            session_token(&parts.headers).ok_or(AppError::Unauthenticated)?,
        );
        let t = token.clone();
        let (user, setup_only) = state
            .db(move |c| Ok(accounts::session_user(c, &t)?))
            .await?
            .ok_or(AppError::Unauthenticated)?;
        Ok(AnySession {
            user,
            setup_only,
            token,
        })
    }
}

/// The signed-in person, from the session cookie. A session that may only set up a second
/// factor is refused (403) everywhere else.
pub struct CurrentUser(pub User);

impl FromRequestParts<Shared> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let s = AnySession::from_request_parts(parts, state).await?;
        if s.setup_only {
            return Err(AppError::Forbidden(
                "your school requires two-step sign-in for your account: set it up first",
            ));
        }
        Ok(CurrentUser(s.user))
    }
}

/// A signed-in admin; anyone else signed in gets 403.
pub struct Admin(pub User);

impl FromRequestParts<Shared> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, st).await?;
        if !user.has(crate::domain::people::Role::Admin) {
            return Err(AppError::Forbidden("only admins can do that"));
        }
        Ok(Admin(user))
    }
}

/// The SHA-256 of the client certificate a device presented on the device listener (put there by
/// that listener's acceptor in `crate::http`); the TLS layer has already checked that it chains
/// to the school CA and is within its dates.
#[derive(Clone, Copy)]
pub struct PeerCert(pub [u8; 32]);

/// A classroom device, from its client certificate. Checked on every request, so revoking a
/// device refuses it at once, even on a connection it already holds.
pub struct DeviceAuth(pub Device);

impl FromRequestParts<Shared> for DeviceAuth {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let PeerCert(sha) = *parts
            .extensions
            .get::<PeerCert>()
            .ok_or(AppError::Unauthenticated)?;
        let device = state
            .db(move |c| Ok(devices::by_cert(c, &sha, clock::now())?))
            .await?;
        device.map(DeviceAuth).ok_or(AppError::DeviceNotCurrent)
    }
}
