//! Shared state, request extractors, the two routers and their HTTPS listeners: the web app, and
//! the device API behind mutual TLS.

use crate::accounts::{self, User};
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::devices::{self, Device};
use crate::error::{AppError, AppResult};
use crate::limits::FailureWindow;
use crate::routes;
use crate::tls::SchoolCa;
use crate::vault::Vault;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tower_layer::Layer;

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
    /// Failed sign-ins per account and address (5 in 15 minutes; see `routes::web::account_key`)
    /// and per address (20 in 15 minutes).
    pub login_failures_account: FailureWindow<String>,
    pub login_failures_address: FailureWindow<IpAddr>,
    /// Password checks running at once (Argon2 takes ~19 MiB each).
    pub password_checks: tokio::sync::Semaphore,
    /// Seals the audit log's hash chain (derived from the master key).
    pub audit_key: zeroize::Zeroizing<[u8; 32]>,
    /// Issues device certificates.
    pub ca: SchoolCa,
    /// The account that holds lessons recorded offline until they are claimed (made at start,
    /// see [`accounts::ensure_unassigned`]).
    pub unassigned: i64,
    /// Wrong codes when claiming an offline lesson, per account: 5 in 15 minutes.
    pub claim_failures: FailureWindow<i64>,
    /// Failed device enrollments per address: 10 in 15 minutes.
    pub enroll_failures: FailureWindow<IpAddr>,
    /// Failed invitation links per address: 10 in 15 minutes.
    pub invite_failures: FailureWindow<IpAddr>,
    /// Device codes a teacher chose that another teacher has, per account: 5 in 15 minutes, so
    /// nobody can try codes to find a colleague's. Signing in does not reset it.
    pub code_taken: FailureWindow<i64>,
}

impl AppState {
    pub fn new(
        config: Config,
        db: Connection,
        vault: Vault,
        blobs: Box<dyn BlobStore>,
        ca: SchoolCa,
        unassigned: i64,
    ) -> AppState {
        let audit_key = vault.audit_key();
        AppState {
            audit_key,
            config,
            db: Mutex::new(db),
            vault: Mutex::new(vault),
            blobs,
            code_failures: FailureWindow::new(5, 300),
            login_failures_account: FailureWindow::new(5, 900),
            login_failures_address: FailureWindow::new(20, 900),
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

/// The address a request really comes from (after trusted proxies), set by [`network_guard`].
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

/// Refuses every request from outside the school's networks before any handler runs.
async fn network_guard(
    axum::extract::State(st): axum::extract::State<Shared>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    mut req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = client_ip(peer.ip(), &forwarded, &st.config.trusted_proxies);
    if !st.config.allowed_networks.iter().any(|n| n.contains(&ip)) {
        tracing::warn!(%ip, "refused a request from outside the allowed networks");
        return Err(AppError::Forbidden(
            "this server only answers requests from the school's networks",
        ));
    }
    req.extensions_mut().insert(ClientIp(ip));
    Ok(next.run(req).await)
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
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
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

/// The SHA-256 of the client certificate a device presented on the device listener (put there by
/// [`PeerCertAcceptor`]); the TLS layer has already checked that it chains to the school CA and
/// is within its dates.
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
            .db(move |c| Ok(devices::by_cert(c, &sha, accounts::now())?))
            .await?;
        device.map(DeviceAuth).ok_or(AppError::DeviceNotCurrent)
    }
}

/// Refuses cross-site state-changing requests from browsers (on top of SameSite=Strict cookies):
/// a request that says it comes from another site, or from another origin, is turned away.
async fn csrf_guard(req: Request, next: Next) -> Result<Response, AppError> {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let h = req.headers();
        if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            if site != "same-origin" && site != "none" {
                return Err(AppError::Forbidden("cross-site request refused"));
            }
        }
        if let (Some(origin), Some(host)) = (
            h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            h.get(header::HOST).and_then(|v| v.to_str().ok()),
        ) {
            if origin.strip_prefix("https://") != Some(host) {
                return Err(AppError::Forbidden("cross-origin request refused"));
            }
        }
    }
    Ok(next.run(req).await)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    // hls.js feeds MediaSource through blob: URLs (media-src) and runs without a worker, so no
    // blob: scripts are allowed; nothing else is loaded from anywhere but here.
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
         worker-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(h, "strict-transport-security", "max-age=31536000");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    res
}

/// The page for an address the web listener does not serve. It uses the app's stylesheet and no
/// script, so the CSP holds.
const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Page not found - lessonlens</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
<body><main><h1>Page not found</h1><p>This address is not part of lessonlens. Lessons, sharing \
and settings are all in the app.</p><p><a class=\"button\" href=\"/\">Go to lessonlens</a></p>\
</main></body></html>\n";

/// An unknown address: a page for people, the API's JSON error for `/api/`.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return AppError::NotFound.into_response();
    }
    (
        axum::http::StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        NOT_FOUND_PAGE,
    )
        .into_response()
}

/// Every error the API answers is the documented JSON body (`{"error": ...}`), also axum's own
/// rejections (a path or query parameter that does not parse, a body that is not JSON, a method
/// the address does not take, a body over the limit), which come as plain text or empty.
async fn json_errors(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    // axum's own rejections of a body (no JSON content type, JSON of the wrong shape) are bad
    // requests like any other; the API's own 415 and 422 answers are JSON and never get here.
    let status = match status {
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE
        | axum::http::StatusCode::UNPROCESSABLE_ENTITY => axum::http::StatusCode::BAD_REQUEST,
        other => other,
    };
    let error = match (text.is_empty(), status) {
        (false, _) => text,
        (true, axum::http::StatusCode::METHOD_NOT_ALLOWED) => {
            "this address does not take that method (see /api/openapi.json)".to_string()
        }
        (true, _) => status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    let mut out = (
        status,
        axum::Json(lessonlens_proto::wire::ErrorBody { error }),
    )
        .into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The web listener's router: the web app and its API.
pub fn router(state: Shared) -> Router {
    routes::web_router()
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(csrf_guard))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            network_guard,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// The device listener's router: the device API and nothing else.
pub fn device_router(state: Shared) -> Router {
    let max = state.config.max_segment_bytes as usize;
    routes::device_router(max)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            network_guard,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Completes the TLS handshake, then hands the service the SHA-256 of the client's certificate.
#[derive(Clone)]
struct PeerCertAcceptor(RustlsAcceptor);

impl<I, S> Accept<I, S> for PeerCertAcceptor
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = tokio_rustls::server::TlsStream<I>;
    type Service = axum::middleware::AddExtension<S, PeerCert>;
    type Future =
        futures_util::future::BoxFuture<'static, std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            let (stream, service) = inner.accept(stream, service).await?;
            // The verifier requires a certificate, so a finished handshake always has one.
            let sha = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Sha256::digest(c).into())
                .ok_or_else(|| std::io::Error::other("no client certificate"))?;
            Ok((stream, axum::Extension(PeerCert(sha)).layer(service)))
        })
    }
}

/// Drops the vault's recently unwrapped keys once they are a minute old, also while nobody
/// watches anything.
async fn forget_keys_periodically(st: Shared) {
    // Often enough that a key is gone within a minute of being unwrapped, also on an idle server
    // (its lifetime plus this interval is 60 s).
    let mut every = tokio::time::interval(crate::vault::FORGET_EVERY);
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

/// The two listeners, bound before the server starts serving.
pub struct Listeners {
    pub web: std::net::TcpListener,
    pub device: std::net::TcpListener,
}

/// Checks the server certificate every 6 hours (start has just done so) and, once it is renewed,
/// serves the new one on both listeners to every new connection.
async fn renew_periodically(st: Shared, web: RustlsConfig, device: RustlsConfig) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(6 * 3600));
    every.tick().await;
    loop {
        every.tick().await;
        let s = st.clone();
        let renewed = tokio::task::spawn_blocking(move || {
            let hostnames = &s.config.hostnames;
            if crate::tls::renew_if_due(&s.ca, hostnames, crate::accounts::now())? {
                crate::tls::load(&s.ca).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r);
        match renewed {
            Ok(Some(tls)) => {
                web.reload_from_config(tls.server_config);
                device.reload_from_config(tls.device_config);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "cannot renew the server certificate; trying again in 6 hours"
            ),
        }
    }
}

/// Serves the web app and the device API until `shutdown` completes.
pub async fn run(
    listeners: Listeners,
    state: Shared,
    tls: &crate::tls::Tls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    listeners.web.set_nonblocking(true)?;
    listeners.device.set_nonblocking(true)?;
    let web_tls = RustlsConfig::from_config(tls.server_config.clone());
    let device_tls = RustlsConfig::from_config(tls.device_config.clone());
    tokio::spawn(renew_periodically(
        state.clone(),
        web_tls.clone(),
        device_tls.clone(),
    ));
    tokio::spawn(forget_keys_periodically(state.clone()));
    use crate::slow_clients::{limit_http, PerAddress, HANDSHAKE_TIMEOUT};
    let mut web = axum_server::from_tcp(listeners.web)
        .acceptor(PerAddress::new(
            RustlsAcceptor::new(web_tls).handshake_timeout(HANDSHAKE_TIMEOUT),
        ))
        .handle(handle.clone());
    limit_http(web.http_builder());
    let web = web
        .serve(router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>());
    let device_acceptor = PerAddress::new(PeerCertAcceptor(
        RustlsAcceptor::new(device_tls).handshake_timeout(HANDSHAKE_TIMEOUT),
    ));
    let mut device = axum_server::from_tcp(listeners.device)
        .acceptor(device_acceptor)
        .handle(handle);
    limit_http(device.http_builder());
    let device = device
        .serve(device_router(state).into_make_service_with_connect_info::<std::net::SocketAddr>());
    tokio::try_join!(web, device)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: ipnet::IpNet = "10.0.0.5/32".parse().unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let peer = ip("10.0.0.5");
        let outsider = ip("203.0.113.9");
        // Not a trusted proxy: the header is ignored, whatever it says.
        assert_eq!(client_ip(outsider, &["10.1.2.3"], &[proxy]), outsider);
        // A trusted proxy: the hop it reports, and no further (that hop is not trusted).
        assert_eq!(
            client_ip(peer, &["198.51.100.7, 10.1.2.3"], &[proxy]),
            ip("10.1.2.3")
        );
        // Several header lines: the proxy's own line is the last one.
        assert_eq!(
            client_ip(peer, &["10.9.9.9", "192.168.1.20"], &[proxy]),
            ip("192.168.1.20")
        );
        // Garbage stops the walk at the last believed address.
        assert_eq!(client_ip(peer, &["garbage"], &[proxy]), peer);
        assert_eq!(client_ip(peer, &[], &[]), peer);
    }
}
