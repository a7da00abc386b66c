//! Slow and greedy clients: bounds on how long a connection may take before it is useful, and
//! on how many connections one address may hold open, on both listeners.
//!
//! - The TLS handshake must finish within [`HANDSHAKE_TIMEOUT`] (the acceptor's timeout).
//! - A request's headers must arrive within [`HEADER_TIMEOUT`], also the first request after the
//!   handshake ([`FirstRequest`]) and between requests on a kept-alive connection (hyper's
//!   header-read timeout), so an idle connection closes too.
//! - One address holds at most [`CONNECTIONS_PER_ADDRESS`] connections; more are closed at once.
//!   A thousand slow connections from one machine therefore cost the server 64 sockets for at
//!   most 10 s each, and people signing in from elsewhere are not kept waiting.

use axum_server::accept::Accept;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTIONS_PER_ADDRESS: usize = 64;

/// Open connections per address, shared by the connections' [`Place`]s.
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Wraps an acceptor: refuses a connection from an address that already holds
/// [`CONNECTIONS_PER_ADDRESS`], and counts the others until they close.
#[derive(Clone)]
pub struct PerAddress<A> {
    inner: A,
    open: Counts,
}

impl<A> PerAddress<A> {
    pub fn new(inner: A) -> Self {
        PerAddress {
            inner,
            open: Arc::default(),
        }
    }
}

impl<A, S> Accept<TcpStream, S> for PerAddress<A>
where
    A: Accept<TcpStream, S> + Clone + Send + 'static,
    A::Future: Send,
    A::Stream: AsyncRead + AsyncWrite + Unpin,
    S: Send + 'static,
{
    type Stream = FirstRequest<A::Stream>;
    type Service = A::Service;
    type Future = futures_util::future::BoxFuture<
        'static,
        std::io::Result<(FirstRequest<A::Stream>, A::Service)>,
    >;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let place = stream
            .peer_addr()
            .and_then(|peer| Place::take(peer.ip(), &self.open));
        let inner = self.inner.clone();
        Box::pin(async move {
            let place = place?;
            let (stream, service) = inner.accept(stream, service).await?;
            Ok((FirstRequest::new(stream, place), service))
        })
    }
}

/// One connection's place in its address's count, given back when the connection closes.
pub struct Place {
    ip: IpAddr,
    open: Counts,
}

impl Place {
    fn take(ip: IpAddr, open: &Counts) -> std::io::Result<Place> {
        let mut counts = open.lock().expect("connection counts lock");
        let n = counts.entry(ip).or_insert(0);
        if *n >= CONNECTIONS_PER_ADDRESS {
            tracing::warn!(%ip, "too many open connections from one address; closing a new one");
            return Err(std::io::Error::other(
                "too many connections from this address",
            ));
        }
        *n += 1;
        Ok(Place {
            ip,
            open: open.clone(),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.open.lock().expect("connection counts lock");
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection: it holds its [`Place`], and its first request must start within
/// [`HEADER_TIMEOUT`]. axum-server serves each connection through hyper-util's version-sniffing
/// path, which reads the first bytes before hyper's header-read timeout starts, and has no
/// timeout of its own.
pub struct FirstRequest<S> {
    inner: S,
    /// Until the first bytes arrive.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    _place: Place,
}

impl<S> FirstRequest<S> {
    fn new(inner: S, place: Place) -> Self {
        FirstRequest {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(HEADER_TIMEOUT))),
            _place: place,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstRequest<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request within the header timeout",
                )));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.deadline = None;
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstRequest<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The HTTP settings for both listeners: HTTP/1.1 only (what TLS offers by ALPN; an HTTP/2
/// connection would have no header or idle timeout), and each request's headers within
/// [`HEADER_TIMEOUT`] (the first request's start is [`FirstRequest`]'s).
pub fn limit_http(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    use hyper_util::server::conn::auto::Builder;
    let taken = std::mem::replace(builder, Builder::new(hyper_util::rt::TokioExecutor::new()));
    *builder = taken.http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
}
