//! One connection's state as the listener tracks it: its phase (waiting
//! for a request head, serving a request, or idle between keep-alive
//! requests) and since when, moved by its socket wrapper ([`Tracked`]) and
//! its requests' guards ([`RequestGuard`]), and read by its watchdog and by
//! the admission check at the connection limit; the socket wrapper also
//! writes the interim responses its requests queue (see `interim`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Limits;
use super::interim::{Outbox, Shared};

pub(super) const HEAD: u8 = 0;
pub(super) const BUSY: u8 = 1;
pub(super) const IDLE: u8 = 2;

/// Why the listener closed a connection.
#[derive(Debug, Clone, Copy)]
pub(super) enum Close {
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
    Displaced,
    Shutdown,
}

/// A connection's phase, shared by its socket wrapper, its requests'
/// guards, its watchdog and the admission check.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) base: Instant,
    pub(super) phase: AtomicU8,
    /// Listener-clock ms when the phase began.
    pub(super) since: AtomicU64,
    /// Listener-clock ms + 1 when a write started waiting; 0 when none waits.
    pub(super) write_blocked: AtomicU64,
    pub(super) active: AtomicUsize,
    /// Wakes the watchdog when a deadline may have moved earlier.
    pub(super) changed: Notify,
    /// Cancelled when the connection is displaced.
    pub(super) kill: CancellationToken,
}

impl Conn {
    /// A fresh connection, waiting for its first request head from now.
    pub(super) fn new(id: u64, base: Instant) -> Self {
        Conn {
            id,
            base,
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(base.elapsed().as_millis() as u64),
            write_blocked: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            changed: Notify::new(),
            kill: CancellationToken::new(),
        }
    }

    pub(super) fn now(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    pub(super) fn phase(&self) -> u8 {
        self.phase.load(Relaxed)
    }

    pub(super) fn on_read(&self) {
        if self.phase() == IDLE {
            self.since.store(self.now(), Relaxed);
            self.phase.store(HEAD, Relaxed);
            self.changed.notify_one();
        }
    }

    pub(super) fn on_write(&self, pending: bool) {
        let blocked = self.write_blocked.load(Relaxed);
        if pending && blocked == 0 {
            self.write_blocked.store(self.now() + 1, Relaxed);
            self.changed.notify_one();
        } else if !pending && blocked != 0 {
            self.write_blocked.store(0, Relaxed);
        }
    }

    pub(super) fn begin_request(&self) {
        self.active.fetch_add(1, Relaxed);
        self.phase.store(BUSY, Relaxed);
    }

    pub(super) fn end_request(&self) {
        if self.active.fetch_sub(1, Relaxed) == 1 {
            self.since.store(self.now(), Relaxed);
            self.phase.store(IDLE, Relaxed);
            self.changed.notify_one();
        }
    }

    /// The earliest moment a limit could close the connection.
    pub(super) fn deadline(&self, limits: &Limits) -> Option<Instant> {
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
    pub(super) fn expired(&self, limits: &Limits) -> Option<Close> {
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
pub(super) struct RequestGuard(Arc<Conn>);

impl RequestGuard {
    pub(super) fn begin(conn: Arc<Conn>) -> Self {
        conn.begin_request();
        RequestGuard(conn)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// The socket, reporting reads and stalled writes to its connection, and
/// putting the interim responses of its [`Outbox`] between hyper's messages.
pub(super) struct Tracked<S = TcpStream> {
    stream: S,
    conn: Arc<Conn>,
    outbox: Outbox,
}

impl<S: AsyncWrite + Unpin> Tracked<S> {
    pub(super) fn new(stream: S, conn: Arc<Conn>, interims: Arc<Shared>) -> Self {
        Tracked {
            stream,
            conn,
            outbox: Outbox::new(interims),
        }
    }

    /// Ready once no interim bytes are half-written, so hyper's may follow.
    fn poll_interims(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let conn = &self.conn;
        let r = self
            .outbox
            .poll_drain(&mut self.stream, cx, |pending| conn.on_write(pending));
        if let Poll::Ready(Err(_)) = r {
            self.outbox.close();
        }
        r
    }

    /// What hyper's write did: bytes handed over may end mid-message.
    fn wrote(&mut self, r: &Poll<std::io::Result<usize>>) {
        self.conn.on_write(r.is_pending());
        match r {
            Poll::Ready(Ok(0)) | Poll::Pending => {}
            Poll::Ready(Ok(_)) => self.outbox.on_handed(),
            Poll::Ready(Err(_)) => self.outbox.close(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_interims(cx))?;
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(&r);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_interims(cx))?;
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // hyper flushes only with its own buffer empty (interim.rs, fact (b)).
        this.outbox.on_flush(cx.waker());
        ready!(this.poll_interims(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        this.outbox.close();
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
