//! The accept loop: client connections served by hyper-util's auto builder (HTTP/1.1, and
//! HTTP/2 by prior knowledge), with the limits a socket needs before any request exists.
//!
//! - At most `max_connections` open at once: one more is closed as soon as it is accepted
//!   (counted in `dli_graphql_connections_refused_total`); open ones keep being served, and
//!   the file descriptors left over stay free for upstream calls.
//! - A connection must deliver a request's complete headers within `header_read_timeout` of
//!   connecting, and of the first byte of each later request, or it is closed. This covers a
//!   client that sends nothing at all, which hyper's own header timer does not (the auto
//!   builder first reads to tell HTTP/1 from HTTP/2, with no deadline).
//! - A connection with no request in flight and no traffic for `idle_timeout` is closed
//!   (HTTP/1 at once, HTTP/2 with a GOAWAY).
//! - On shutdown the listener closes, every connection is asked to finish its requests and
//!   close, and after `shutdown_timeout` the remaining ones are dropped.
//!
//! HTTP/2 keeps hyper's bounded defaults: 200 concurrent streams per connection, a 16 KiB
//! header list, and h2's limits on reset streams (docs/limits-and-resilience.md).
//!
//! Each request carries its peer address as [`axum::extract::ConnectInfo`].

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore, watch},
    task::JoinSet,
    time::Instant,
};
use tower::ServiceExt as _;

use crate::observability::metrics::Metrics;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Longest wait for a request's complete headers.
    pub header_read_timeout: Duration,
    /// Longest quiet spell of a connection with no request in flight.
    pub idle_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// How long requests in flight may take to finish once shutdown begins.
    pub shutdown_timeout: Duration,
}

/// Accepts and serves connections on `listener` until `shutdown` resolves, then drains
/// them for up to `shutdown_timeout`. `Ok` once it has stopped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Our own timer covers header reads (see the module docs); hyper's would also cut idle
    // keep-alive connections at the header deadline.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: wait a moment rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    metrics.connection_refused();
                    tracing::debug!(%peer, max = options.max_connections, "connection refused: at --max-connections");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Connection {
                    builder: builder.clone(),
                    router: router.clone(),
                    options,
                    metrics: metrics.clone(),
                    draining: draining.clone(),
                };
                connections.spawn(async move {
                    conn.run(stream, peer).await;
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            timeout_ms = options.shutdown_timeout.as_millis() as u64,
            "shutdown deadline passed; dropping the requests still in flight"
        );
        connections.abort_all();
    }
    Ok(())
}

/// What one connection task needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    options: ServeOptions,
    metrics: Metrics,
    draining: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        let _open = self.metrics.connection_opened();
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
        let router = self.router.clone();
        let on_request = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let in_flight = on_request.request_started();
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await;
                drop(in_flight);
                resp.map_err(|never: Infallible| match never {})
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut closing = false;
        let mut hard_deadline: Option<Instant> = None;
        loop {
            let next = match hard_deadline {
                Some(at) => at,
                None => activity.next_check(&self.options),
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                () = activity.changed.notified(), if hard_deadline.is_none() => {}
                _ = self.draining.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep_until(next) => {
                    if hard_deadline.is_some() {
                        // Asked to close and still writing to a client that does not read.
                        return;
                    }
                    match activity.verdict(&self.options) {
                        Verdict::Open => {}
                        Verdict::HeaderTimeout => {
                            self.metrics.connection_timed_out("header_read");
                            tracing::debug!(%peer, "connection closed: request headers too slow");
                            return;
                        }
                        Verdict::Idle => {
                            self.metrics.connection_timed_out("idle");
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                            hard_deadline = Some(Instant::now() + self.options.header_read_timeout);
                        }
                    }
                }
            }
        }
    }
}

/// "No time recorded" for [`Activity::waiting_since`].
const NONE: u64 = u64::MAX;

/// What the connection's timers look at: shared by the I/O wrapper and the service.
/// Times are milliseconds since the connection opened.
struct Activity {
    opened: Instant,
    /// The last byte read or written, or the last response produced.
    last_io: AtomicU64,
    /// Since when the next request's headers have been awaited with bytes on their way (or
    /// since the connection opened, before its first request); `NONE` while idle.
    waiting_since: AtomicU64,
    in_flight: AtomicUsize,
    first_read: AtomicBool,
    /// HTTP/2: requests are frames on streams, so only the idle rule applies.
    http2: AtomicBool,
    /// Wakes the connection's timer when a deadline may have moved earlier.
    changed: Notify,
}

enum Verdict {
    Open,
    HeaderTimeout,
    Idle,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            first_read: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    fn read(&self, bytes: &[u8]) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if !self.first_read.swap(true, Ordering::Relaxed) && bytes.starts_with(b"PRI * HTTP/2") {
            self.http2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.waiting_since.compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.waiting_since.store(NONE, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// When the timers next need a look.
    fn next_check(&self, o: &ServeOptions) -> Instant {
        let now = self.now();
        let step = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE / 4);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return self.at(now.saturating_add(step(o.idle_timeout.min(o.header_read_timeout))));
        }
        let waiting = self.waiting_since.load(Ordering::Acquire);
        let at = if waiting != NONE && !self.http2.load(Ordering::Relaxed) {
            waiting.saturating_add(step(o.header_read_timeout))
        } else {
            self.last_io.load(Ordering::Relaxed).saturating_add(step(o.idle_timeout))
        };
        // At least a millisecond ahead, so a clock at the boundary cannot spin.
        self.at(at.max(now + 1))
    }

    fn verdict(&self, o: &ServeOptions) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Open;
        }
        let now = self.now();
        let since = |t: u64| Duration::from_millis(now.saturating_sub(t));
        let waiting = self.waiting_since.load(Ordering::Acquire);
        if waiting != NONE && !self.http2.load(Ordering::Relaxed) {
            return if since(waiting) >= o.header_read_timeout {
                Verdict::HeaderTimeout
            } else {
                Verdict::Open
            };
        }
        if since(self.last_io.load(Ordering::Relaxed)) >= o.idle_timeout {
            Verdict::Idle
        } else {
            Verdict::Open
        }
    }
}

/// A request being served on this connection; the connection is not idle meanwhile.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.wrote();
        self.0.changed.notify_one();
    }
}

/// The client socket, noting when bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The `--max-connections` default: the soft file-descriptor limit, less a quarter of it
/// (at least room for twice the upstream concurrency plus 64) for upstream connections,
/// Redis, files and the listener; at least 16 and at most 100,000. Returns the limit it
/// read too, when it could.
pub fn default_max_connections(upstream_concurrency: usize) -> (usize, Option<u64>) {
    const FLOOR: usize = 16;
    const CEILING: usize = 100_000;
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _hard)) => {
            let soft_n = usize::try_from(soft).unwrap_or(usize::MAX);
            let headroom = (soft_n / 4).max(upstream_concurrency.saturating_mul(2).saturating_add(64));
            (soft_n.saturating_sub(headroom).clamp(FLOOR, CEILING), Some(soft))
        }
        Err(_) => (1024, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_room_below_the_descriptor_limit() {
        let (cap, soft) = default_max_connections(64);
        if let Some(soft) = soft {
            assert!((cap as u64) < soft.max(17), "{cap} vs {soft}");
        }
        assert!(cap >= 16);
    }
}
