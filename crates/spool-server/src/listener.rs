//! The HTTP/1.1 listener behind [`crate::Server`]: an accept loop over hyper
//! that bounds what each connection may hold. A connection is in one of
//! three phases: waiting for a request head (fresh, or bytes of the next
//! request have arrived), serving a request, or idle between keep-alive
//! requests. A per-connection watchdog, polled in the connection's own task,
//! closes it when its head takes longer than the header timeout (however
//! slowly the bytes trickle in) or when it idles past the keep-alive
//! timeout; a response the client stops reading is cut after the write
//! timeout. hyper's own `header_read_timeout` is off because it also runs
//! between keep-alive requests and so cannot tell the two limits apart.
//! Over the connection limit a new connection displaces the longest-idle
//! keep-alive connection (cheap for its client to reopen), else the one that
//! has waited longest for its request head (a slowloris connection, never
//! one serving a request), and only when every connection is serving a
//! request is it refused at once with `503 ERR_SERVER_BUSY`. So a flood of
//! slow or idle connections cannot keep a real client out, and an upload in
//! progress is never displaced. Only HTTP/1.1 is served: every Spool client
//! and every browser speaks it over plain HTTP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// What a connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the start of waiting for a request head to its last byte.
    pub header_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keepalive_timeout: Duration,
    /// A response write that cannot proceed (the client reads nothing) for
    /// this long closes the connection.
    pub write_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// File descriptors kept back from connections for upload files, the
/// database and the webhook client.
const FD_RESERVE: u64 = 256;
/// How often, at most, the listener warns about the limit or accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard limit, so that the
/// connection limit (not the default 1024 descriptors) is what bounds
/// connections. Returns the soft limit now in force, if known.
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let lim = getrlimit(Resource::Nofile);
        let soft = lim.current?;
        let hard = lim.maximum;
        if hard.is_some_and(|h| h <= soft) {
            return Some(soft);
        }
        // An unlimited hard limit cannot be the soft one everywhere (macOS
        // refuses more than OPEN_MAX); try it, then a large finite value.
        for target in [hard, Some(hard.unwrap_or(u64::MAX).min(1 << 20)), Some(10240)] {
            let Some(target) = target.filter(|t| *t > soft) else {
                continue;
            };
            let new = rustix::process::Rlimit {
                current: Some(target),
                maximum: hard,
            };
            if setrlimit(Resource::Nofile, new).is_ok() {
                tracing::info!(from = soft, to = target, "raised the open-file limit");
                return Some(target);
            }
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection limit that fits in `fd_limit` descriptors.
pub fn fit_to_fd_limit(max_connections: usize, fd_limit: Option<u64>) -> usize {
    let Some(fds) = fd_limit else {
        return max_connections.max(1);
    };
    let room = fds.saturating_sub(FD_RESERVE).max(16);
    let fitted = (max_connections as u64).min(room) as usize;
    if fitted < max_connections {
        tracing::warn!(
            configured = max_connections,
            open_file_limit = fds,
            using = fitted,
            "the connection limit is lowered to fit the open-file limit"
        );
    }
    fitted.max(1)
}

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;

/// Why the listener closed a connection.
#[derive(Debug, Clone, Copy)]
enum Close {
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
    Displaced,
    Shutdown,
}

/// A connection's phase, shared by its socket wrapper, its requests'
/// guards, its watchdog and the admission check.
struct Conn {
    id: u64,
    base: Instant,
    phase: AtomicU8,
    /// Listener-clock ms when the phase began.
    since: AtomicU64,
    /// Listener-clock ms + 1 when a write started waiting; 0 when none waits.
    write_blocked: AtomicU64,
    active: AtomicUsize,
    /// Wakes the watchdog when a deadline may have moved earlier.
    changed: Notify,
    /// Cancelled when the connection is displaced.
    kill: CancellationToken,
}

impl Conn {
    fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn phase(&self) -> u8 {
        self.phase.load(Relaxed)
    }

    fn on_read(&self) {
        if self.phase() == IDLE {
            self.since.store(self.now(), Relaxed);
            self.phase.store(HEAD, Relaxed);
            self.changed.notify_one();
        }
    }

    fn on_write(&self, pending: bool) {
        let blocked = self.write_blocked.load(Relaxed);
        if pending && blocked == 0 {
            self.write_blocked.store(self.now() + 1, Relaxed);
            self.changed.notify_one();
        } else if !pending && blocked != 0 {
            self.write_blocked.store(0, Relaxed);
        }
    }

    fn begin_request(&self) {
        self.active.fetch_add(1, Relaxed);
        self.phase.store(BUSY, Relaxed);
    }

    fn end_request(&self) {
        if self.active.fetch_sub(1, Relaxed) == 1 {
            self.since.store(self.now(), Relaxed);
            self.phase.store(IDLE, Relaxed);
            self.changed.notify_one();
        }
    }

    /// The earliest moment a limit could close the connection.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let since = self.since.load(Relaxed);
        let phase = match self.phase() {
            HEAD => Some(self.at(since) + limits.header_timeout),
            IDLE => Some(self.at(since) + limits.keepalive_timeout),
            _ => None,
        };
        let write = match self.write_blocked.load(Relaxed) {
            0 => None,
            t => Some(self.at(t - 1) + limits.write_timeout),
        };
        match (phase, write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Which limit, if any, the connection has run past.
    fn expired(&self, limits: &Limits) -> Option<Close> {
        let now = Instant::now();
        let since = self.at(self.since.load(Relaxed));
        match self.phase() {
            HEAD if now >= since + limits.header_timeout => return Some(Close::HeaderTimeout),
            IDLE if now >= since + limits.keepalive_timeout => return Some(Close::IdleTimeout),
            _ => {}
        }
        match self.write_blocked.load(Relaxed) {
            0 => None,
            t if now >= self.at(t - 1) + limits.write_timeout => Some(Close::WriteTimeout),
            _ => None,
        }
    }
}

/// Held by a request from its head until its response body is done.
struct RequestGuard(Arc<Conn>);

impl RequestGuard {
    fn begin(conn: Arc<Conn>) -> Self {
        conn.begin_request();
        RequestGuard(conn)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// The socket, reporting reads and stalled writes to its connection.
struct Tracked {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.on_read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.conn.on_write(r.is_pending());
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.conn.on_write(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Rate-limits a warning to one per [`WARN_EVERY`].
struct Every {
    base: Instant,
    /// Clock ms + 1 of the last warning; 0 before the first.
    last: AtomicU64,
}

impl Every {
    fn new() -> Self {
        Every {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn due(&self) -> bool {
        let now = self.base.elapsed().as_millis() as u64;
        let last = self.last.load(Relaxed);
        (last == 0 || now >= last - 1 + WARN_EVERY.as_millis() as u64)
            && self
                .last
                .compare_exchange(last, now + 1, Relaxed, Relaxed)
                .is_ok()
    }
}

#[derive(Default)]
struct Counters {
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    displaced: AtomicU64,
    refused: AtomicU64,
}

/// The open connections, for the limit.
struct Registry {
    base: Instant,
    max: usize,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    counters: Counters,
    limit_warning: Every,
}

impl Registry {
    /// Registers a new connection, displacing another if at the limit;
    /// `None` if every open connection is serving a request.
    fn admit(&self) -> Option<Arc<Conn>> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= self.max {
            let oldest = |phase: u8| {
                conns
                    .values()
                    .filter(|c| c.phase() == phase)
                    .min_by_key(|c| (c.since.load(Relaxed), c.id))
                    .cloned()
            };
            let victim = oldest(IDLE).or_else(|| oldest(HEAD));
            match victim {
                Some(v) => {
                    v.kill.cancel();
                    conns.remove(&v.id);
                    self.counters.displaced.fetch_add(1, Relaxed);
                }
                None => {
                    self.counters.refused.fetch_add(1, Relaxed);
                    return None;
                }
            }
            if self.limit_warning.due() {
                tracing::warn!(
                    max_connections = self.max,
                    displaced = self.counters.displaced.load(Relaxed),
                    refused = self.counters.refused.load(Relaxed),
                    header_timeouts = self.counters.header_timeouts.load(Relaxed),
                    "at the connection limit: new connections displace idle and slow ones"
                );
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let conn = Arc::new(Conn {
            id,
            base: self.base,
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(self.base.elapsed().as_millis() as u64),
            write_blocked: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            changed: Notify::new(),
            kill: CancellationToken::new(),
        });
        conns.insert(id, conn.clone());
        Some(conn)
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn count(&self, why: Close) {
        let c = match why {
            Close::HeaderTimeout => &self.counters.header_timeouts,
            Close::IdleTimeout => &self.counters.idle_timeouts,
            Close::WriteTimeout => &self.counters.write_timeouts,
            Close::Displaced | Close::Shutdown => return,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// What a refused connection reads before it is closed.
static BUSY_ANSWER: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let code = spool_proto::ErrorCode::ServerBusy;
    let body = serde_json::to_string(&spool_proto::ErrorBody::new(code, code.description()))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Accepts connections until `shutdown`, serving each with `router` under
/// `limits` in a task of `tasks`. On `shutdown` it stops accepting (the
/// listener is dropped), closes connections not serving a request, and lets
/// the others finish theirs; `force` closes those too.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    force: CancellationToken,
    tasks: TaskTracker,
) {
    let registry = Arc::new(Registry {
        base: Instant::now(),
        max: limits.max_connections.max(1),
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        counters: Counters::default(),
        limit_warning: Every::new(),
    });
    let accept_warning = Every::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Typically EMFILE: the connection waits in the backlog.
                if accept_warning.due() {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match registry.admit() {
            Some(conn) => {
                tasks.spawn(connection(
                    stream,
                    conn,
                    router.clone(),
                    limits,
                    shutdown.clone(),
                    force.clone(),
                    registry.clone(),
                ));
            }
            None => {
                // Never waits: a client that cannot take these bytes at once
                // learns from the closed connection instead.
                let _ = stream.try_write(&BUSY_ANSWER);
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    force: CancellationToken,
    registry: Arc<Registry>,
) {
    let io = TokioIo::new(Tracked {
        stream,
        conn: conn.clone(),
    });
    let svc_conn = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let request = RequestGuard::begin(svc_conn.clone());
        let router = router.clone();
        async move {
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // The guard rides on the body: the request ends when hyper has
            // written (and dropped) the last of the response.
            Ok::<_, Infallible>(resp.map(move |body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _held = &request;
                    frame
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None::<Duration>);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = false;
    let closed = loop {
        let deadline = conn.deadline(&limits);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = served.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break None;
            }
            _ = conn.kill.cancelled() => break Some(Close::Displaced),
            _ = force.cancelled() => break Some(Close::Shutdown),
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                if conn.phase() != BUSY {
                    break Some(Close::Shutdown);
                }
                // Finishes the request in flight (a PATCH saves what arrived
                // and answers 503), then closes.
                served.as_mut().graceful_shutdown();
            }
            _ = conn.changed.notified() => {}
            _ = sleep => {
                if let Some(why) = conn.expired(&limits) {
                    break Some(why);
                }
            }
        }
    };
    if let Some(why) = closed {
        tracing::debug!(reason = ?why, "closing a connection");
        registry.count(why);
    }
    registry.remove(conn.id);
}
