//! The client against hand-written misbehaving HTTP servers (a tokio
//! listener on loopback speaking just enough HTTP/1.1): an error answer's
//! body is read up to a small limit and for a bounded time, so a server
//! answering with an endless, huge or never-finished body can neither hang
//! the client nor make it hold the body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spool_client::ClientError;
use spool_client::journal::Piece;
use spool_client::tus::{BodyProgress, ERROR_BODY_LIMIT, ERROR_BODY_TIMEOUT, Timeouts, Tus};
use spool_client::wire::Wire;
use spool_proto::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server goes on after its answer's head.
#[derive(Clone, Copy)]
enum Body {
    /// As many bytes as it can write, as fast as it can.
    Flood,
    /// A few bytes, then one byte every 100 ms, never reaching its length.
    Trickle,
    /// This exact text (its Content-Length is right).
    Exact(&'static str),
}

/// Answers every connection's first request with `head` then `body`;
/// counts the body bytes it managed to write.
async fn fake_server(head: &'static str, body: Body) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/uploads/x", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(answer(conn, head, body, count.clone()));
        }
    });
    (url, written)
}

async fn answer(mut conn: TcpStream, head: &str, body: Body, written: Arc<AtomicU64>) {
    // Read the request head and its (small) body, so the client is waiting
    // for the answer, not still sending.
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let body_len = loop {
        let n = conn.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        req.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let cl = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap())
                .unwrap_or(0);
            break end + 4 + cl;
        }
    };
    while req.len() < body_len {
        let n = conn.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        req.extend_from_slice(&buf[..n]);
    }
    if conn.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    match body {
        Body::Exact(text) => {
            let _ = conn.write_all(text.as_bytes()).await;
        }
        Body::Flood => {
            let block = vec![b'x'; 64 * 1024];
            while conn.write_all(&block).await.is_ok() {
                written.fetch_add(block.len() as u64, Ordering::Relaxed);
            }
        }
        Body::Trickle => {
            if conn.write_all(b"partial error te").await.is_err() {
                return;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if conn.write_all(b"x").await.is_err() {
                    return;
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // Hold the connection open until the client goes.
    let _ = conn.read(&mut buf).await;
}

/// A one-piece upload of a few bytes in `dir`.
fn piece(dir: &tempfile::TempDir) -> Piece {
    let path = dir.path().join("piece.bin");
    std::fs::write(&path, b"hello").unwrap();
    Piece {
        seq: 0,
        path,
        file_offset: 0,
        len: 5,
        start: 0,
        digest: String::new(),
    }
}

async fn patch(url: &str, dir: &tempfile::TempDir) -> (Result<u64, ClientError>, Duration) {
    let tus = Tus::new(Timeouts::default()).unwrap();
    let started = Instant::now();
    let r = tus
        .patch(
            Wire::Tus,
            url,
            vec![piece(dir)],
            0,
            5,
            None,
            None,
            Arc::new(BodyProgress::default()),
            None,
        )
        .await;
    (r, started.elapsed())
}

const HUGE_500: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 1000000000\r\n\r\n";

#[tokio::test]
async fn a_huge_error_body_is_read_only_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (url, written) = fake_server(HUGE_500, Body::Flood).await;
    let (r, took) = patch(&url, &dir).await;
    let Err(ClientError::Server {
        status, message, ..
    }) = r
    else {
        panic!("expected a server error, got {r:?}");
    };
    assert_eq!(status, 500);
    assert!(
        message.starts_with("xxx") && message.contains("too large"),
        "{message}"
    );
    assert!(message.len() < 300, "the message holds the whole body");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The client stopped reading: the server could write only the limit
    // plus what the loopback socket buffers hold, not the gigabyte.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = written.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = written.load(Ordering::Relaxed);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    assert!(
        last < 64 * 1024 * 1024,
        "the server wrote {last} bytes: the client kept reading the body"
    );
    assert!(last >= ERROR_BODY_LIMIT as u64);
    println!("error body: answered in {took:?}; the server could write {last} of 1 GB");
}

#[tokio::test]
async fn an_error_body_that_never_ends_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = fake_server(HUGE_500, Body::Trickle).await;
    let (r, took) = patch(&url, &dir).await;
    let Err(ClientError::Server {
        status, message, ..
    }) = r
    else {
        panic!("expected a server error, got {r:?}");
    };
    assert_eq!(status, 500);
    assert!(
        message.starts_with("partial error te") && message.contains("did not arrive in time"),
        "{message}"
    );
    assert!(
        took >= ERROR_BODY_TIMEOUT - Duration::from_millis(100)
            && took < ERROR_BODY_TIMEOUT + Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_short_json_error_keeps_its_code_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    const BODY: &str = r#"{"code":"ERR_INSUFFICIENT_STORAGE","message":"full"}"#;
    let head: &'static str = Box::leak(
        format!(
            "HTTP/1.1 507 Insufficient Storage\r\ncontent-type: application/json\r\nretry-after: 10\r\ncontent-length: {}\r\n\r\n",
            BODY.len()
        )
        .into_boxed_str(),
    );
    let (url, _) = fake_server(head, Body::Exact(BODY)).await;
    let (r, _) = patch(&url, &dir).await;
    let Err(ClientError::Server {
        status,
        code,
        message,
        retry_after,
    }) = r
    else {
        panic!("expected a server error, got {r:?}");
    };
    assert_eq!(
        (status, code, message.as_str(), retry_after),
        (
            507,
            Some(ErrorCode::InsufficientStorage),
            "full",
            Some(Duration::from_secs(10))
        )
    );
}
