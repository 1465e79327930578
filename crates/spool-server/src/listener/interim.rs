//! Interim (1xx) responses over HTTP/1.1, which hyper's server cannot send
//! itself (it writes only its own `100 Continue`): a handler queues one
//! through the [`Interim`] handle in its request's extensions, and the
//! connection's socket wrapper ([`super::conn::Tracked`]) writes it through
//! its [`Outbox`] only where the wire is provably between two messages and
//! past every earlier request's answer — hyper's write buffer empty, no
//! response open, nothing of hyper's handed over since — and lets none of
//! hyper's bytes pass a half-written interim;
//! an interim that finds no such gap before hyper starts writing its
//! request's final response is dropped, never written late.
//
// Why this is sound, from hyper 1.12.0's HTTP/1 server (paths under
// hyper-1.12.0/src/proto/h1/; hyper-util 0.1.21's `TokioIo`, between hyper
// and `Tracked`, forwards every write, flush and shutdown unchanged,
// src/rt/tokio.rs:258-286):
//
// (a) The handler of request N can run while bytes of response N-1 still
//     wait in hyper's write buffer. Request heads are read once reading is
//     back in `Init` (conn.rs:180-190), which `State::idle` sets
//     (conn.rs:1132-1144) from `try_keep_alive` when both reading and
//     writing are in `KeepAlive` (conn.rs:1100-1119). Writing reaches
//     `KeepAlive` when the last body bytes are *buffered* (conn.rs:731-829),
//     not written, and `try_keep_alive` also runs when a request body ends
//     (conn.rs:426-427, e.g. the drain of an unread body, dispatch.rs:240-244)
//     without waiting for the flush at conn.rs:855-860. The next head is then
//     parsed at once (dispatch.rs:225-229) and the service called from
//     `recv_msg` (dispatch.rs:331, 629). With `Queue` writes (our socket is
//     vectored, io.rs:60-64) the new future is polled only when no body bytes
//     are queued (`can_write_head`, conn.rs:575-584, io.rs:135-137; and
//     dispatch.rs:384-385 flushes first), but a bodiless response N-1 (a 204,
//     an empty 404) sits in the headers buffer, N's handler runs and N's head
//     is appended behind it. So "N's handler runs" proves nothing about the
//     wire, and an interim of N written then, even between two messages,
//     would precede N-1's final response: the client would take it for
//     N-1's (the listener test `an_interim_never_overtakes_an_earlier_answer`
//     drives hyper into this case).
// (b) hyper calls the socket's `poll_flush` only with its write buffer empty:
//     `Buffered::poll_flush` flushes the socket at once when nothing remains
//     (io.rs:281-282) and otherwise only after writing all of it
//     (io.rs:289-310, flattened io.rs:318-334); `pipeline_flush`, which would
//     skip the flush (io.rs:279), is off by default (server/conn/http1.rs:256)
//     and Spool leaves it off. Shutdown flushes the same way (io.rs:337-339).
// (c) `100 Continue` is appended whole to the headers buffer, only while the
//     response has not begun (`Writing::Init`) and only when the handler polls
//     the body (conn.rs:411-417; the body channel wants nothing until then,
//     body/chan.rs:11-19, 66-71, dispatch.rs:233). hyper's own error answers
//     (a bad head, conn.rs:836-849) are bodiless heads, also buffered whole.
//     A response is handed to hyper when the service future resolves and
//     its head is buffered in that same poll (dispatch.rs:364-379); its body
//     is dropped only after its last bytes are buffered (dispatch.rs:397-441,
//     the `OptGuard` clears it on drop, dispatch.rs:524-529).
// (d) Each turn of the dispatcher polls read, then write (which polls the
//     handler's future), then flush (dispatch.rs:173-175), so the flush of
//     (b) reaches the socket on every turn in which hyper's buffer empties —
//     also right after a handler that queued an interim went back to waiting
//     for its body — and a wake-up of the connection's task makes a turn.
//
// Hence the rule in `Outbox`: at a socket flush (b) with every response
// handed to hyper also finished (c), everything hyper ever buffered is on
// the wire and is whole messages — among them the responses of every request
// up to the last finished one. Until hyper hands over another byte, its
// buffer holds only whole messages or the start of one (a 100, a response's
// head), so the interims of the request right after the last one flushed may
// go out then — ahead of hyper's first write, even if their own final
// response was buffered meanwhile. Any other moment ((a)'s pipelined tail, a
// body still streaming) waits for the next such flush, and a flush that finds
// the current request's response finished drops what it still queued, which
// could only be late now.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Version};
use tokio::io::AsyncWrite;

/// Interim bytes one request may have waiting at most: a few responses'
/// worth, so that a handler looping on `send` cannot grow the connection.
const MAX_QUEUED: usize = 16 * 1024;

/// A request's way to send interim (1xx) responses before its final one,
/// inserted by the listener into every request's extensions (take it with
/// `axum::Extension<Interim>`). Cloning it keeps it tied to the same request.
#[derive(Clone)]
pub struct Interim {
    shared: Arc<Shared>,
    request: u64,
    http11: bool,
}

impl std::fmt::Debug for Interim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interim")
            .field("request", &self.request)
            .field("http11", &self.http11)
            .finish_non_exhaustive()
    }
}

impl Interim {
    /// Queues the interim response `status` with `headers` and wakes the
    /// connection to write it. `false` when it cannot be sent: `status` is
    /// not 1xx or is `101` (a protocol switch is hyper's), `headers` carry
    /// framing fields (a 1xx has no content), the request is HTTP/1.0 (RFC
    /// 9110 §15.2), the final response has begun, the connection is closing,
    /// or too many interims already wait. `true` means queued: it goes out
    /// before the final response, unless that response begins while the
    /// connection is still writing an earlier one — then no gap is left on
    /// the wire and it is dropped.
    pub fn send(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if !self.http11
            || !status.is_informational()
            || status == StatusCode::SWITCHING_PROTOCOLS
            || headers.contains_key(CONTENT_LENGTH)
            || headers.contains_key(TRANSFER_ENCODING)
        {
            return false;
        }
        let bytes = encode(status, headers);
        let mut st = self.shared.lock();
        if st.closed
            || st.request != self.request
            || st.answered >= self.request
            || st.queued.len() + bytes.len() > MAX_QUEUED
        {
            return false;
        }
        st.queued.extend_from_slice(&bytes);
        let waker = st.waker.clone();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }
}

/// The reason phrase written for `status`.
fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        // draft-ietf-httpbis-resumable-upload; not (yet) in the http crate.
        104 => "Upload Resumption Supported",
        _ => status.canonical_reason().unwrap_or("Informational"),
    }
}

/// The wire form of an interim response. Header names and values are valid
/// by construction (`http` rejects CR, LF and other controls in both).
fn encode(status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(b"HTTP/1.1 ");
    b.extend_from_slice(status.as_str().as_bytes());
    b.push(b' ');
    b.extend_from_slice(reason(status).as_bytes());
    b.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        b.extend_from_slice(name.as_str().as_bytes());
        b.extend_from_slice(b": ");
        b.extend_from_slice(value.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"\r\n");
    b
}

/// One connection's interim state, shared by its requests' handles, their
/// exchanges and its socket's [`Outbox`].
#[derive(Default)]
pub(super) struct Shared(Mutex<State>);

#[derive(Default)]
struct State {
    /// Serial of the request whose head hyper read last (the first is 1).
    request: u64,
    /// Serial of the last request whose response was handed to hyper.
    answered: u64,
    /// Serial of the last request whose response hyper has fully buffered.
    finished: u64,
    /// Interim bytes of request `request` not begun on the wire. Kept past
    /// its answer: a handler that queues and answers in one poll has its
    /// interim written when hyper first writes the response, ahead of it.
    queued: Vec<u8>,
    closed: bool,
    /// The connection task's, from its last socket flush.
    waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request of `version` whose head hyper has just read: its handle and
    /// the exchange that marks its response's progress.
    pub(super) fn begin(self: &Arc<Self>, version: Version) -> (Interim, Exchange) {
        let mut st = self.lock();
        st.request += 1;
        st.queued.clear();
        let request = st.request;
        let interim = Interim {
            shared: self.clone(),
            request,
            http11: version == Version::HTTP_11,
        };
        let exchange = Exchange {
            shared: self.clone(),
            request,
        };
        (interim, exchange)
    }
}

/// A request's response as hyper takes it: [`Exchange::answer`] when it is
/// handed over, dropped with the response body (or with a service future
/// that never answered, which leaves no bytes behind).
pub(super) struct Exchange {
    shared: Arc<Shared>,
    request: u64,
}

impl Exchange {
    /// The final response is handed to hyper, which buffers its head before
    /// anything else happens on the connection.
    pub(super) fn answer(&self) {
        let mut st = self.shared.lock();
        st.answered = st.answered.max(self.request);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.answered = st.answered.max(self.request);
        st.finished = st.finished.max(self.request);
    }
}

/// The socket's side: which interim bytes may go out, and those begun.
pub(super) struct Outbox {
    shared: Arc<Shared>,
    /// Interim bytes begun on the wire: they all go before any of hyper's.
    out: Vec<u8>,
    sent: usize,
    /// The wire is between two messages and hyper has handed over nothing
    /// since it found so (see the module's comment).
    boundary: bool,
    /// The last request whose response was all on the wire at that flush.
    flushed: u64,
}

impl Outbox {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Outbox {
            shared,
            out: Vec::new(),
            sent: 0,
            // Nothing has been written on a fresh connection.
            boundary: true,
            flushed: 0,
        }
    }

    /// hyper flushes the socket, so its write buffer is empty: the wire is
    /// between messages if no response is open.
    pub(super) fn on_flush(&mut self, waker: &Waker) {
        let mut st = self.shared.lock();
        self.boundary = st.answered == st.finished;
        if self.boundary {
            self.flushed = st.finished;
            if st.request <= st.finished {
                // The current request's final response is all on the wire, so
                // what it queued found no gap before it (no boundary between
                // its answer and hyper's first bytes, which drain it otherwise).
                st.queued.clear();
            }
        }
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            st.waker = Some(waker.clone());
        }
    }

    /// hyper has handed over bytes, which may end mid-message.
    pub(super) fn on_handed(&mut self) {
        self.boundary = false;
    }

    /// Writes the interim bytes begun and, at a boundary, those queued;
    /// ready when none are left half-written. `on_write` learns whether
    /// each write had to wait, for the write timeout.
    pub(super) fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
        mut on_write: impl FnMut(bool),
    ) -> Poll<std::io::Result<()>> {
        loop {
            if self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
                if !self.boundary || !self.take() {
                    return Poll::Ready(Ok(()));
                }
            }
            let r = Pin::new(&mut *io).poll_write(cx, &self.out[self.sent..]);
            on_write(r.is_pending());
            match ready!(r) {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Moves the queued bytes to `out`; `false` if there are none, or if
    /// an earlier request's response may still wait in hyper's buffer.
    fn take(&mut self) -> bool {
        let mut st = self.shared.lock();
        if st.queued.is_empty() || st.request != self.flushed + 1 {
            return false;
        }
        std::mem::swap(&mut self.out, &mut st.queued);
        true
    }

    /// The connection is closing: nothing more is queued or sent.
    pub(super) fn close(&self) {
        let mut st = self.shared.lock();
        st.closed = true;
        st.queued.clear();
        st.waker = None;
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::LOCATION;
    use std::task::Wake;

    const S104: StatusCode = match StatusCode::from_u16(104) {
        Ok(s) => s,
        Err(_) => panic!(),
    };

    /// A socket that takes at most `step` bytes a write and, with `stall`,
    /// makes every other write wait.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        stall: bool,
        stalled: bool,
    }

    impl Trickle {
        fn new(step: usize, stall: bool) -> Self {
            Trickle {
                written: Vec::new(),
                step,
                stall,
                stalled: false,
            }
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            if self.stall && !self.stalled {
                self.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.stalled = false;
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(Default::default()));
        (c.clone(), Waker::from(c))
    }

    fn location() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_static("/u/1"));
        h.insert("upload-limit", HeaderValue::from_static("max-size=100"));
        h
    }

    const WIRE_104: &[u8] =
        b"HTTP/1.1 104 Upload Resumption Supported\r\nlocation: /u/1\r\nupload-limit: max-size=100\r\n\r\n";

    /// Drains until ready, as the connection's turns would.
    fn drain(outbox: &mut Outbox, io: &mut Trickle, w: &Waker) {
        let mut cx = Context::from_waker(w);
        for _ in 0..1000 {
            if let Poll::Ready(r) = outbox.poll_drain(io, &mut cx, |_| {}) {
                return r.unwrap();
            }
        }
        panic!("never drained");
    }

    #[test]
    fn an_interim_is_encoded_with_its_reason_and_headers() {
        assert_eq!(encode(S104, &location()), WIRE_104);
        assert_eq!(
            encode(StatusCode::EARLY_HINTS, &HeaderMap::new()),
            b"HTTP/1.1 103 Early Hints\r\n\r\n"
        );
        let odd = StatusCode::from_u16(150).unwrap();
        assert_eq!(reason(odd), "Informational");
    }

    #[test]
    fn send_refuses_what_cannot_be_an_interim_for_this_request() {
        let shared = Arc::new(Shared::default());
        let (old, _x) = shared.begin(Version::HTTP_10);
        assert!(!old.send(S104, &location()), "HTTP/1.0 gets no 1xx");
        let (i, x) = shared.begin(Version::HTTP_11);
        assert!(!i.send(StatusCode::OK, &location()));
        assert!(!i.send(StatusCode::SWITCHING_PROTOCOLS, &location()));
        let mut framed = location();
        framed.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        assert!(!i.send(S104, &framed));
        assert!(i.send(S104, &location()));
        x.answer();
        assert!(!i.send(S104, &location()), "the final response has begun");
        drop(x);
        let (next, _x) = shared.begin(Version::HTTP_11);
        assert!(!i.clone().send(S104, &location()), "a stale handle");
        assert!(next.send(S104, &location()));
        let outbox = Outbox::new(shared.clone());
        outbox.close();
        assert!(!next.send(S104, &location()), "the connection is closing");
    }

    #[test]
    fn send_wakes_the_connection_and_caps_what_waits() {
        let shared = Arc::new(Shared::default());
        let mut outbox = Outbox::new(shared.clone());
        let (count, w) = waker();
        outbox.on_flush(&w);
        let (i, _x) = shared.begin(Version::HTTP_11);
        assert!(i.send(S104, &location()));
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        while i.send(S104, &location()) {}
        assert!(shared.lock().queued.len() <= MAX_QUEUED);
    }

    #[test]
    fn a_half_written_interim_is_finished_before_anything_else() {
        let shared = Arc::new(Shared::default());
        let mut outbox = Outbox::new(shared.clone());
        let mut io = Trickle::new(7, true);
        let (_, w) = waker();
        let (i, x) = shared.begin(Version::HTTP_11);
        assert!(i.send(S104, &location()));
        let mut cx = Context::from_waker(&w);
        assert!(outbox.poll_drain(&mut io, &mut cx, |_| {}).is_pending());
        assert!(outbox.poll_drain(&mut io, &mut cx, |_| {}).is_pending());
        assert_eq!(io.written, &WIRE_104[..7]);
        // The final response is handed over and finished meanwhile: what
        // has begun must still end whole, before hyper's bytes.
        x.answer();
        drop(x);
        drain(&mut outbox, &mut io, &w);
        assert_eq!(io.written, WIRE_104);
    }

    #[test]
    fn an_interim_waits_for_the_wire_to_be_between_messages() {
        let shared = Arc::new(Shared::default());
        let mut outbox = Outbox::new(shared.clone());
        let mut io = Trickle::new(1000, false);
        let (_, w) = waker();
        // Response 1 is wholly buffered but its tail still waits in hyper's
        // buffer when request 2's head is read (fact (a)).
        let (_, x1) = shared.begin(Version::HTTP_11);
        x1.answer();
        outbox.on_handed();
        drop(x1);
        let (i2, x2) = shared.begin(Version::HTTP_11);
        assert!(i2.send(S104, &location()));
        drain(&mut outbox, &mut io, &w);
        assert!(io.written.is_empty(), "hyper has handed over bytes since");
        // hyper flushes: its buffer is empty, response 1 all on the wire.
        outbox.on_flush(&w);
        drain(&mut outbox, &mut io, &w);
        assert_eq!(io.written, WIRE_104);
        drop(x2);
    }

    #[test]
    fn an_interim_queued_right_before_its_answer_goes_out_ahead_of_it() {
        let shared = Arc::new(Shared::default());
        let mut outbox = Outbox::new(shared.clone());
        let mut io = Trickle::new(1000, false);
        let (_, w) = waker();
        // A handler whose body is already in: it queues, reads and answers
        // in one poll, and hyper buffers the whole response before writing.
        let (i, x) = shared.begin(Version::HTTP_11);
        assert!(i.send(S104, &location()));
        x.answer();
        drop(x);
        drain(&mut outbox, &mut io, &w);
        assert_eq!(io.written, WIRE_104);
    }

    #[test]
    fn an_interim_waits_for_earlier_answers_to_leave_hyper() {
        let shared = Arc::new(Shared::default());
        let mut outbox = Outbox::new(shared.clone());
        let mut io = Trickle::new(1000, false);
        let (_, w) = waker();
        // A bodiless answer 1 is buffered but its write found the socket
        // full (nothing handed), and request 2's handler runs (fact (a)).
        let (_, x1) = shared.begin(Version::HTTP_11);
        x1.answer();
        drop(x1);
        let (i2, x2) = shared.begin(Version::HTTP_11);
        assert!(i2.send(S104, &location()));
        drain(&mut outbox, &mut io, &w);
        assert!(io.written.is_empty(), "answer 1 is still in hyper's buffer");
        outbox.on_handed();
        outbox.on_flush(&w);
        drain(&mut outbox, &mut io, &w);
        assert_eq!(io.written, WIRE_104);
        drop(x2);
    }

    #[test]
    fn an_interim_left_no_gap_is_dropped_not_written_late() {
        let shared = Arc::new(Shared::default());
        let mut outbox = Outbox::new(shared.clone());
        let mut io = Trickle::new(1000, false);
        let (_, w) = waker();
        let (_, x1) = shared.begin(Version::HTTP_11);
        x1.answer();
        outbox.on_handed();
        drop(x1);
        let (i2, x2) = shared.begin(Version::HTTP_11);
        assert!(i2.send(S104, &location()));
        // Response 2 begins right behind response 1's unwritten tail.
        x2.answer();
        outbox.on_flush(&w);
        drain(&mut outbox, &mut io, &w);
        drop(x2);
        outbox.on_flush(&w);
        drain(&mut outbox, &mut io, &w);
        assert!(io.written.is_empty());
    }
}
