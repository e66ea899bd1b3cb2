//! [`serve`]: the accept loop of the public HTTP servers (the Dapr HTTP API
//! and a served app's `--app-listen`), and [`incoming`], the same loop's
//! accepting for the gRPC API. They exist because a server must outlast its
//! clients:
//!
//! - **Slow and idle connections are closed.** A request's headers must
//!   arrive within [`ServerLimits::header_read_timeout`] (hyper's HTTP/1
//!   timer); a connection with no request in flight is closed after
//!   [`ServerLimits::idle_timeout`] (also one that never sends a byte, or
//!   trickles an HTTP/2 preface); a request body that stops arriving for
//!   [`ServerLimits::body_read_timeout`] fails the request.
//! - **Connections are bounded.** At most [`ServerLimits::max_connections`]
//!   are open. When a new one arrives at the bound, the connection idle the
//!   longest is closed to make room (so a crowd of silent connections cannot
//!   lock out `/v1.0/healthz` or a real client); if every connection is
//!   serving a request, the new one gets `503` and is closed.
//! - **Running out of descriptors is survived.** After `EMFILE`/`ENFILE`
//!   the loop closes an idle connection if it has one, waits
//!   [`ACCEPT_BACKOFF`] and accepts again: no busy loop, and one warning
//!   per [`ACCEPT_ERROR_LOG_INTERVAL`] with the count of errors in between.
//! - **Shutdown is graceful**: on `shutdown` the listener closes, idle
//!   connections close, and requests in flight finish before [`serve`]
//!   returns.
//!
//! Every accepted socket gets `TCP_NODELAY`: small request/response
//! exchanges on kept-alive connections must not wait on Nagle's algorithm.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::Stream;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

/// How long the accept loop waits after an error that is not about one
/// connection (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) before accepting
/// again: long enough not to spin, short enough that service resumes as
/// soon as a descriptor is free.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long the accept loop waits for an evicted connection's task to
/// close its socket after `EMFILE`, before accepting again.
const CLOSE_WAIT: Duration = Duration::from_millis(1);

/// At most one warning about accept errors per this long.
pub const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The answer to a connection refused because every slot is serving a
/// request, written before the socket is closed.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    content-length: 0\r\nretry-after: 1\r\n\r\n";

/// The limits of one server. `Default` gives the documented defaults of the
/// binary's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// The longest a client may take to send a request's headers (HTTP/1).
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight is kept open.
    pub idle_timeout: Duration,
    /// The longest a request body may pause between two pieces.
    pub body_read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl ServerLimits {
    /// Default of [`ServerLimits::header_read_timeout`] (Go's servers and
    /// most proxies use 10 s too).
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default of [`ServerLimits::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default of [`ServerLimits::body_read_timeout`].
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

    /// Default of [`ServerLimits::max_connections`]: half the process's
    /// descriptor limit (the rest is for stores, apps, the other servers),
    /// at least 32 and at most 16384.
    pub fn default_max_connections() -> usize {
        (descriptor_limit() / 2).clamp(32, 16_384)
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
            max_connections: Self::default_max_connections(),
        }
    }
}

/// The soft `RLIMIT_NOFILE` of the process (1024 where it cannot be read).
fn descriptor_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given, nothing else.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        }
    }
    1024
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then stops accepting and returns once the requests in flight are done.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.header_read_timeout)
        .max_concurrent_streams(256)
        .max_header_list_size(64 << 10);
    let builder = Arc::new(builder);
    let connections = Arc::new(Connections::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut errors = AcceptErrors::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    let Some(pause) = errors.pause(&error, Some(&connections)) else {
                        continue;
                    };
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let Some(slot) = connections.admit() else {
            refuse(&stream);
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            slot,
            builder.clone(),
            router.clone(),
            limits,
            stopped.clone(),
        ));
    }
    drop(listener);
    drop(stopped);
    let _ = stop.send(true);
    // Every connection holds a receiver until it has closed.
    stop.closed().await;
    Ok(())
}

/// Tells a client over the bound that the server is busy, without waiting
/// on it: the socket is closed right after.
fn refuse(stream: &TcpStream) {
    tracing::debug!("connection refused: every slot is serving a request");
    let _ = stream.try_write(BUSY_RESPONSE);
}

/// One connection, until it ends, is evicted, idles out or drains.
async fn serve_connection(
    stream: TcpStream,
    slot: Slot,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: axum::Router,
    limits: ServerLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let state = slot.state.clone();
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = state.busy();
            let router = router.clone();
            let body_timeout = limits.body_read_timeout;
            async move {
                let request = request.map(|body| Body::new(TimeoutBody::new(body_timeout, body)));
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // The connection counts as busy until the whole answer is
                // written: the guard lives as long as the body.
                let response = response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _busy = &busy;
                        frame
                    }))
                });
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = pin!(connection);
    let mut draining = false;
    loop {
        let idle_check = tokio::time::Instant::from_std(state.idle_deadline(limits.idle_timeout));
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = state.evict.notified() => {
                tracing::debug!("idle connection closed to make room for a new one");
                break;
            }
            changed = stopped.changed(), if !draining => {
                // Stop: idle connections close now, busy ones after their
                // request (hyper stops keeping them alive).
                let _ = changed;
                draining = true;
                if state.is_idle() {
                    break;
                }
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_check) => {
                if state.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                    tracing::debug!(timeout = ?limits.idle_timeout, "idle connection closed");
                    break;
                }
            }
        }
    }
    drop(slot);
    drop(stopped);
}

/// The open connections of one server, oldest first.
struct Connections {
    max: usize,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<ConnectionState>>>,
}

/// What the accept loop and a connection's task share about it.
struct ConnectionState {
    /// Requests being served (until their answer is written).
    in_flight: AtomicUsize,
    /// When the connection last became idle.
    idle_since: Mutex<Instant>,
    /// Set when the connection must close to make room.
    evict: Notify,
}

impl Connections {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            next_id: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// A slot for a new connection, closing the longest-open idle one if
    /// the server is full; `None` when every connection is busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max && !Self::evict_locked(&mut open) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnectionState {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evict: Notify::new(),
        });
        open.insert(id, state.clone());
        Some(Slot {
            id,
            state,
            connections: self.clone(),
        })
    }

    /// Closes the oldest idle connection, if there is one.
    fn evict_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        Self::evict_locked(&mut open)
    }

    fn evict_locked(open: &mut BTreeMap<u64, Arc<ConnectionState>>) -> bool {
        let Some(id) = open
            .iter()
            .find(|(_, state)| state.is_idle())
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(state) = open.remove(&id) {
            // `notify_one` keeps the permit if the task is not waiting yet.
            state.evict.notify_one();
        }
        true
    }
}

/// A connection's place among the open ones, given back on drop.
struct Slot {
    id: u64,
    state: Arc<ConnectionState>,
    connections: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
    }
}

impl ConnectionState {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// How long the connection has been idle, `None` while it is busy.
    fn idle_for(&self) -> Option<Duration> {
        if !self.is_idle() {
            return None;
        }
        Some(
            self.idle_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed(),
        )
    }

    /// When the connection should next be checked for idleness.
    fn idle_deadline(&self, timeout: Duration) -> Instant {
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = since + timeout;
        // A busy connection is looked at again a timeout from now.
        if self.is_idle() && deadline > Instant::now() {
            deadline
        } else if self.is_idle() {
            Instant::now()
        } else {
            Instant::now() + timeout
        }
    }

    /// Marks a request in flight until the guard drops.
    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }
}

/// A request in flight on a connection.
struct Busy(Arc<ConnectionState>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// Accept errors, and when they were last reported.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    /// Handles one accept error; returns how long to wait before accepting
    /// again. `None` (at once) when it concerned only the connection being
    /// accepted. When the process is out of a resource, the oldest idle
    /// connection is closed if there is one, and the loop waits only for
    /// its task to close the socket ([`CLOSE_WAIT`]); else it backs off
    /// ([`ACCEPT_BACKOFF`]).
    fn pause(&mut self, error: &io::Error, connections: Option<&Connections>) -> Option<Duration> {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
                | io::ErrorKind::Interrupted
        ) {
            tracing::debug!(%error, "a connection failed while being accepted");
            return None;
        }
        let freed = connections.is_some_and(Connections::evict_idle);
        self.report(error, freed);
        Some(if freed { CLOSE_WAIT } else { ACCEPT_BACKOFF })
    }

    /// A warning now and then, never one per error.
    fn report(&mut self, error: &io::Error, freed: bool) {
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_INTERVAL);
        if due {
            tracing::warn!(
                %error,
                more_since_last_warning = self.unlogged,
                closed_an_idle_connection = freed,
                "cannot accept connections; retrying every {ACCEPT_BACKOFF:?}"
            );
            self.last_logged = Some(Instant::now());
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
    }
}

/// The connections of `listener` for a tonic server, accepted as [`serve`]
/// accepts them: `TCP_NODELAY`, a backoff and rare warnings after
/// `EMFILE`, and at most `max_connections` open (one over the bound is
/// closed at once: gRPC clients reconnect with backoff).
pub fn incoming(
    listener: TcpListener,
    max_connections: usize,
) -> impl Stream<Item = io::Result<CountedStream>> + Send + 'static {
    let open = Arc::new(AtomicUsize::new(0));
    futures::stream::unfold(
        (listener, AcceptErrors::default(), open),
        move |(listener, mut errors, open)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if let Err(error) = stream.set_nodelay(true) {
                            tracing::debug!(%error, "cannot set TCP_NODELAY");
                        }
                        if open.fetch_add(1, Ordering::AcqRel) >= max_connections {
                            open.fetch_sub(1, Ordering::AcqRel);
                            tracing::debug!("gRPC connection refused: too many open");
                            continue;
                        }
                        let counted = CountedStream {
                            stream,
                            open: open.clone(),
                        };
                        return Some((Ok(counted), (listener, errors, open)));
                    }
                    Err(error) => {
                        // tonic keeps its connections to itself: none can
                        // be closed to free a descriptor.
                        if let Some(pause) = errors.pause(&error, None) {
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
            }
        },
    )
}

/// A TCP connection counted among a gRPC server's open ones until dropped.
pub struct CountedStream {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl tonic::transport::server::Connected for CountedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::Connected::connect_info(&self.stream)
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At the bound the oldest idle connection makes room; busy ones never
    /// do, and with every connection busy a new one is refused.
    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let connections = Arc::new(Connections::new(2));
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        let busy = second.state.busy();
        let third = connections.admit().expect("room made");
        // `first` was idle and oldest: it has been told to close.
        assert!(first.state.evict.notified().now_or_never_ready());
        let _busy_third = third.state.busy();
        assert!(connections.admit().is_none(), "every connection is busy");
        drop(busy);
        assert!(connections.admit().is_some(), "second became idle");
    }

    /// A request's guard marks the connection busy, then idle again.
    #[test]
    fn busy_then_idle() {
        let connections = Arc::new(Connections::new(4));
        let slot = connections.admit().unwrap();
        assert!(slot.state.idle_for().is_some());
        let a = slot.state.busy();
        let b = slot.state.busy();
        drop(a);
        assert!(slot.state.idle_for().is_none());
        drop(b);
        assert!(slot.state.idle_for().unwrap() < Duration::from_secs(1));
        drop(slot);
        assert!(connections.open.lock().unwrap().is_empty());
    }

    trait NowOrNever {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: Future> NowOrNever for F {
        fn now_or_never_ready(self) -> bool {
            futures::FutureExt::now_or_never(self).is_some()
        }
    }
}
