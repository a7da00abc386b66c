//! The HTTP layer's frame: the middleware (network allow-list, CSRF, security headers, JSON
//! errors, the page for unknown addresses), the two routers (the web app; the device API behind
//! mutual TLS) built from [`routes`], and the HTTPS listeners that serve them. Below it: the
//! shared state and extractors ([`state`]), the one error type and its status mapping
//! ([`error`]), the failure counters that slow guessing ([`limits`]) and the connection limits
//! ([`slow_clients`]).

pub mod access;
pub mod channels;
pub mod error;
pub mod limits;
pub mod routes;
pub mod slow_clients;
pub mod state;

use crate::http::error::AppError;
use crate::http::state::{client_ip, ClientIp, PeerCert, Shared};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use sha2::{Digest, Sha256};
use std::future::Future;
use tower_layer::Layer;

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

/// Counts every response by its status class, for `/metrics`.
async fn count_responses(
    axum::extract::State(st): axum::extract::State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let res = next.run(req).await;
    st.metrics.response(res.status().as_u16());
    res
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
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

/// The two listeners, bound before the server starts serving.
pub struct Listeners {
    pub web: std::net::TcpListener,
    pub device: std::net::TcpListener,
}

/// The TLS settings the two listeners serve; the certificate's renewal (`jobs`) reloads them.
#[derive(Clone)]
pub struct Served {
    pub web: RustlsConfig,
    pub device: RustlsConfig,
}

impl Served {
    pub fn new(tls: &crate::store::tls::Tls) -> Served {
        Served {
            web: RustlsConfig::from_config(tls.server_config.clone()),
            device: RustlsConfig::from_config(tls.device_config.clone()),
        }
    }
}

/// Serves the web app and the device API until `shutdown` completes.
pub async fn run(
    listeners: Listeners,
    state: Shared,
    tls: Served,
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
    let Served {
        web: web_tls,
        device: device_tls,
    } = tls;
    use crate::http::slow_clients::{limit_http, PerAddress, HANDSHAKE_TIMEOUT};
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
