//! Interim (1xx) responses on the wire: a raw TCP client against the real
//! listener (`listener::serve` on 127.0.0.1:0) serving a tiny router whose
//! upload handler sends `104 Upload Resumption Supported`, then reads the
//! body, then answers `201`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Router};
use spool_server::listener::{self, Interim, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

const WIRE_104: &str = "HTTP/1.1 104 Upload Resumption Supported\r\nlocation: /uploads/1\r\nupload-limit: max-size=1000000\r\n\r\n";
const WIRE_100: &str = "HTTP/1.1 100 Continue\r\n\r\n";
/// Far more than loopback's socket buffers hold, so the server's writes
/// stall while the client does not read.
const BIG: usize = 16 << 20;
const WAIT: Duration = Duration::from_secs(10);

/// The handles the upload handler was given, to try them once stale.
type Kept = Arc<Mutex<Vec<Interim>>>;

fn router(kept: Kept) -> Router {
    Router::new()
        .route("/up", post(upload))
        .route("/plain", get(|| async { "plain" }))
        // Takes no body: hyper drains it and reads the next head while this
        // big answer is still being written.
        .route("/big", post(|| async { vec![b'x'; BIG] }))
        .with_state(kept)
}

async fn upload(
    State(kept): State<Kept>,
    Extension(interim): Extension<Interim>,
    body: Body,
) -> (StatusCode, HeaderMap, String) {
    let mut h = HeaderMap::new();
    h.insert(LOCATION, HeaderValue::from_static("/uploads/1"));
    h.insert("upload-limit", HeaderValue::from_static("max-size=1000000"));
    let sent = interim.send(StatusCode::from_u16(104).unwrap(), &h);
    kept.lock().unwrap().push(interim);
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let mut out = HeaderMap::new();
    out.insert("x-interim-sent", sent.to_string().parse().unwrap());
    (StatusCode::CREATED, out, format!("got {}", body.len()))
}

struct Server {
    addr: SocketAddr,
    kept: Kept,
    _stop: DropGuard,
}

async fn server() -> Server {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let kept = Kept::default();
    let stop = CancellationToken::new();
    let limits = Limits {
        header_timeout: WAIT,
        keepalive_timeout: WAIT,
        write_timeout: WAIT,
        max_connections: 8,
    };
    tokio::spawn(listener::serve(
        l,
        router(kept.clone()),
        limits,
        stop.clone(),
        stop.clone(),
        TaskTracker::new(),
    ));
    Server {
        addr,
        kept,
        _stop: stop.drop_guard(),
    }
}

/// A raw client that keeps every byte it read.
struct Client {
    s: TcpStream,
    wire: Vec<u8>,
    /// Where the next unparsed message starts in `wire`.
    pos: usize,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Client {
            s: TcpStream::connect(addr).await.unwrap(),
            wire: Vec::new(),
            pos: 0,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Reads more; `false` at the end of the stream.
    async fn read_more(&mut self) -> bool {
        let mut buf = vec![0; 256 * 1024];
        let n = tokio::time::timeout(WAIT, self.s.read(&mut buf))
            .await
            .expect("the server went quiet")
            .unwrap();
        self.wire.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// The next message: its head (through the blank line) and, for a final
    /// response, its `Content-Length` body.
    async fn message(&mut self) -> (String, Vec<u8>) {
        let end = loop {
            if let Some(i) = find(&self.wire[self.pos..], b"\r\n\r\n") {
                break self.pos + i + 4;
            }
            assert!(self.read_more().await, "the connection ended mid-head");
        };
        let head = String::from_utf8(self.wire[self.pos..end].to_vec()).unwrap();
        self.pos = end;
        if head.as_bytes()[9] == b'1' {
            return (head, Vec::new());
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .unwrap();
        while self.wire.len() < self.pos + len {
            assert!(self.read_more().await, "the connection ended mid-body");
        }
        let body = self.wire[self.pos..self.pos + len].to_vec();
        self.pos += len;
        (head, body)
    }

    /// Nothing more arrives for a while (a stray interim would).
    async fn quiet(&mut self) {
        let mut buf = [0; 64];
        let r = tokio::time::timeout(Duration::from_millis(200), self.s.read(&mut buf)).await;
        assert!(r.is_err(), "unexpected bytes: {r:?}");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const UPLOAD_HEAD: &[u8] = b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\n";

#[tokio::test]
async fn the_104_arrives_before_the_body_is_sent() {
    let srv = server().await;
    let mut c = Client::connect(srv.addr).await;
    c.send(UPLOAD_HEAD).await;
    assert_eq!(c.message().await.0, WIRE_104);
    c.send(b"hello").await;
    let (head, body) = c.message().await;
    assert!(head.contains("x-interim-sent: true\r\n"), "{head}");
    assert_eq!(body, b"got 5");
    let wire = String::from_utf8(c.wire.clone()).unwrap();
    assert!(
        wire.starts_with(&format!("{WIRE_104}HTTP/1.1 201 Created\r\n")),
        "{wire:?}"
    );
    assert_eq!(c.pos, c.wire.len(), "{wire:?}");
}

#[tokio::test]
async fn with_expect_continue_both_interims_arrive_whole() {
    let srv = server().await;
    let mut c = Client::connect(srv.addr).await;
    c.send(b"POST /up HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
        .await;
    let mut interims = vec![c.message().await.0, c.message().await.0];
    let before_body = String::from_utf8(c.wire.clone()).unwrap();
    interims.sort();
    assert_eq!(interims, [WIRE_100, WIRE_104], "{before_body:?}");
    c.send(b"hello").await;
    let (head, body) = c.message().await;
    assert!(head.starts_with("HTTP/1.1 201 Created\r\n"), "{head}");
    assert_eq!(body, b"got 5");
}

#[tokio::test]
async fn a_keep_alive_request_gets_no_stray_104() {
    let srv = server().await;
    let mut c = Client::connect(srv.addr).await;
    c.send(&[UPLOAD_HEAD, b"hello"].concat()).await;
    assert_eq!(c.message().await.0, WIRE_104);
    assert!(c.message().await.0.starts_with("HTTP/1.1 201 "));
    // The first request's handle, kept past its response, is stale.
    let stale = srv.kept.lock().unwrap()[0].clone();
    assert!(!stale.send(StatusCode::from_u16(104).unwrap(), &HeaderMap::new()));
    c.send(b"GET /plain HTTP/1.1\r\nhost: t\r\n\r\n").await;
    let (head, body) = c.message().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body, b"plain");
    // A later upload on the connection gets its own 104, once.
    c.send(&[UPLOAD_HEAD, b"hello"].concat()).await;
    assert_eq!(c.message().await.0, WIRE_104);
    assert!(c.message().await.0.starts_with("HTTP/1.1 201 "));
    c.quiet().await;
}

#[tokio::test]
async fn an_http_1_0_request_gets_no_104() {
    let srv = server().await;
    let mut c = Client::connect(srv.addr).await;
    c.send(b"POST /up HTTP/1.0\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello")
        .await;
    let (head, body) = c.message().await;
    assert!(head.starts_with("HTTP/1.0 201 Created\r\n"), "{head}");
    assert!(head.contains("x-interim-sent: false\r\n"), "{head}");
    assert_eq!(body, b"got 5");
    while c.read_more().await {}
    assert_eq!(
        c.pos,
        c.wire.len(),
        "{:?}",
        String::from_utf8_lossy(&c.wire)
    );
}

#[tokio::test]
async fn a_104_never_lands_inside_a_pipelined_response_held_back() {
    let srv = server().await;
    let mut c = Client::connect(srv.addr).await;
    // The big answer's unread body is drained, so hyper reads the upload's
    // head while most of the big answer still waits to be written.
    c.send(
        &[
            &b"POST /big HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\nhello"[..],
            UPLOAD_HEAD,
            b"hello",
        ]
        .concat(),
    )
    .await;
    // The client reads nothing for a while: the server's writes stall.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (head, body) = c.message().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body.len(), BIG);
    assert!(body.iter().all(|&b| b == b'x'), "the big body was cut into");
    assert_eq!(c.message().await.0, WIRE_104);
    let (head, body) = c.message().await;
    assert!(head.starts_with("HTTP/1.1 201 Created\r\n"), "{head}");
    assert_eq!(body, b"got 5");
    c.quiet().await;
}
