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
//! and every browser speaks it over plain HTTP. A handler may send interim
//! (1xx) responses before its final one through the [`Interim`] in its
//! request's extensions.

mod conn;
mod interim;
mod os;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use conn::{BUSY, Close, Conn, HEAD, IDLE, RequestGuard, Tracked};
pub use interim::Interim;
pub use os::{backlog_for, bind, fit_to_fd_limit, raise_nofile_limit};

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

/// How often, at most, the listener warns about the limit or accept errors.
const WARN_EVERY: Duration = Duration::from_secs(10);

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
    accepted: AtomicU64,
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
        self.counters.accepted.fetch_add(1, Relaxed);
        let id = self.next_id.fetch_add(1, Relaxed);
        let conn = Arc::new(Conn::new(id, self.base));
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

/// The body of the busy answer: `ErrorBody` for `ERR_SERVER_BUSY` with its
/// description, written out so that it cannot come out empty (a test checks
/// it against the serialised `ErrorBody`).
const BUSY_BODY: &str = r#"{"code":"ERR_SERVER_BUSY","message":"The server is at its connection limit with every connection serving a request; retry shortly."}"#;

/// What a refused connection reads before it is closed.
static BUSY_ANSWER: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
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
    let c = &registry.counters;
    tracing::info!(
        accepted = c.accepted.load(Relaxed),
        header_timeouts = c.header_timeouts.load(Relaxed),
        idle_timeouts = c.idle_timeouts.load(Relaxed),
        write_timeouts = c.write_timeouts.load(Relaxed),
        displaced = c.displaced.load(Relaxed),
        refused = c.refused.load(Relaxed),
        "connections since start"
    );
}

/// What hyper calls for each request of the connection `conn`: `router`,
/// with the request's [`Interim`] in its extensions and guards that follow
/// the request until hyper has its whole response.
fn service(
    conn: Arc<Conn>,
    router: Router,
    interims: Arc<interim::Shared>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> {
    hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let request = RequestGuard::begin(conn.clone());
        // hyper calls this as it reads the head, so the serial is this request's.
        let (interim, exchange) = interims.begin(req.version());
        req.extensions_mut().insert(interim);
        let router = router.clone();
        async move {
            let resp = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            exchange.answer();
            // The guards ride on the body: the request ends when hyper has
            // buffered (and dropped) the last of the response.
            Ok::<_, Infallible>(resp.map(move |body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _held = (&request, &exchange);
                    frame
                }))
            }))
        }
    })
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
    let interims = Arc::new(interim::Shared::default());
    let io = TokioIo::new(Tracked::new(stream, conn.clone(), interims.clone()));
    let service = service(conn.clone(), router, interims);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .header_read_timeout(None::<Duration>);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Extension, extract::State};
    use std::pin::Pin;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A socket whose far end the test holds: the bytes it will read, all
    /// there from the start, and a write budget (0: the peer's window is
    /// full).
    #[derive(Default)]
    struct Far {
        input: Vec<u8>,
        read: usize,
        out: Vec<u8>,
        budget: usize,
        writer: Option<Waker>,
    }

    #[derive(Clone, Default)]
    struct Mock(Arc<Mutex<Far>>);

    impl Mock {
        fn far(&self) -> std::sync::MutexGuard<'_, Far> {
            self.0.lock().unwrap()
        }
    }

    impl AsyncRead for Mock {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let mut f = self.far();
            let n = (f.input.len() - f.read).min(buf.remaining());
            if n == 0 {
                // Nothing more will come: the peer waits for its answers.
                return Poll::Pending;
            }
            let at = f.read;
            buf.put_slice(&f.input[at..at + n]);
            f.read += n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Mock {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut f = self.far();
            if f.budget == 0 {
                f.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(f.budget);
                f.out.extend_from_slice(&b[..k]);
                f.budget -= k;
                n += k;
                if k < b.len() {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        // As a TcpStream's: hyper then queues body buffers (fact (a)).
        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// hyper runs request 2's handler while the bodiless answer to request
    /// 1 still waits in its buffer (interim.rs, fact (a)): the 104 that
    /// handler queues must not go out ahead of that answer, where the client
    /// would take it for request 1's.
    #[tokio::test]
    async fn an_interim_never_overtakes_an_earlier_answer() {
        let ran = Arc::new(AtomicBool::new(false));
        let router = Router::new()
            // Leaves its body unread: hyper drains it and reads on.
            .route("/a", post(|| async { StatusCode::NO_CONTENT }))
            .route(
                "/up",
                post(
                    |State(ran): State<Arc<AtomicBool>>,
                     Extension(i): Extension<Interim>,
                     body: Body| async move {
                        let sent = i.send(StatusCode::from_u16(104).unwrap(), &HeaderMap::new());
                        let n = axum::body::to_bytes(body, 100).await.unwrap().len();
                        ran.store(true, Relaxed);
                        (StatusCode::CREATED, format!("{sent} {n}"))
                    },
                ),
            )
            .with_state(ran.clone());
        let mock = Mock::default();
        mock.far().input = b"POST /a HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\nhello\
            POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello"
            .to_vec();
        let conn = Arc::new(Conn::new(0, Instant::now()));
        let interims = Arc::new(interim::Shared::default());
        let io = TokioIo::new(Tracked::new(mock.clone(), conn.clone(), interims.clone()));
        let served = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service(conn, router, interims)),
        );
        tokio::time::timeout(Duration::from_secs(5), async {
            while !ran.load(Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("request 2's handler ran");
        assert!(
            mock.far().out.is_empty(),
            "answer 1 is still in hyper's buffer"
        );
        // Lets hyper buffer answer 2 and try to write it all.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let writer = {
            let mut f = mock.far();
            f.budget = usize::MAX;
            f.writer.take()
        };
        writer.expect("hyper waits to write").wake();
        let wire = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let out = String::from_utf8(mock.far().out.clone()).unwrap();
                if out.ends_with("true 5") {
                    break out;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("both answers");
        served.abort();
        let (first, rest) = wire.split_once("\r\n\r\n").unwrap();
        assert!(first.starts_with("HTTP/1.1 204 No Content\r\n"), "{wire:?}");
        // The 104 found no gap before its own answer: dropped, not misplaced.
        assert!(rest.starts_with("HTTP/1.1 201 Created\r\n"), "{wire:?}");
        assert!(!wire.contains(" 104 "), "{wire:?}");
    }

    #[test]
    fn the_busy_answer_carries_the_server_busy_body() {
        let code = spool_proto::ErrorCode::ServerBusy;
        let body = spool_proto::ErrorBody::new(code, code.description());
        assert_eq!(BUSY_BODY, serde_json::to_string(&body).unwrap());
        let answer = String::from_utf8(BUSY_ANSWER.clone()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(
            answer.ends_with(&format!(
                "content-length: {}\r\n\r\n{BUSY_BODY}",
                BUSY_BODY.len()
            )),
            "{answer}"
        );
    }
}
