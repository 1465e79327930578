//! End-to-end tests of the bounds on `spool serve`'s connections, against the
//! real binary over loopback with raw TCP clients: a slowloris attack of
//! 5,000 idle and slow-header connections does not stop a 20 MB
//! `spool upload`, and the server closes every slow connection after the
//! header timeout; a trickled request head is cut at the header timeout
//! while an idle keep-alive connection lives until the keep-alive timeout;
//! at the connection limit idle keep-alive connections make room first, then
//! the longest-waiting slow ones, and only when every connection is serving
//! a request is a newcomer refused (503 `ERR_SERVER_BUSY`), never a request
//! in progress cut; the server raises its open-file limit at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spool_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "connections/raw.rs"]
mod raw;
use raw::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slow {
    /// Connects and sends nothing.
    Idle,
    /// Starts a request head and sends one more byte of it every second.
    Header,
}

/// What became of one attack connection.
struct Held {
    kind: Slow,
    connected: Instant,
    /// When the server closed it; `None` if still open at the test's limit.
    closed: Option<Instant>,
}

/// One attack connection; `gate` bounds how many connect at once.
async fn attack_conn(
    addr: SocketAddr,
    kind: Slow,
    gate: Arc<tokio::sync::Semaphore>,
    opened: Arc<std::sync::atomic::AtomicUsize>,
    limit: Duration,
) -> Held {
    let permit = gate.acquire_owned().await.unwrap();
    let mut s = loop {
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    drop(permit);
    let connected = Instant::now();
    opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let held = |closed| Held {
        kind,
        connected,
        closed,
    };
    if kind == Slow::Header
        && s.write_all(b"GET /healthz HTTP/1.1\r\nHost: spool.test\r\nX-Slow: ")
            .await
            .is_err()
    {
        return held(Some(Instant::now()));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::from_std(connected + limit);
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return held(Some(Instant::now())),
                Ok(_) => {}
            },
            _ = tick.tick(), if kind == Slow::Header => {
                if s.write_all(b"a").await.is_err() {
                    return held(Some(Instant::now()));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return held(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_does_not_stop_an_upload_and_slow_connections_are_closed_after_the_header_timeout()
 {
    const SLOW: usize = 5_000;
    let header_timeout = Duration::from_secs(8);
    ensure_fd_room(SLOW as u64 + 512);
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(
        &dir.path().join("data"),
        0,
        &["--header-timeout", "8", "--max-connections", "6000"],
    );
    let file = dir.path().join("source.bin");
    let sha = random_file(&file, 20 * 1024 * 1024, 9);

    let rss_before = rss_kib(server.proc.child.id(), "VmRSS:");
    let (baseline, asset) = upload(&server, &file, &dir.path().join("state-a"));
    assert_eq!(original_sha(&server, &asset).await, sha);

    // The attack: half idle, half trickling a never-ending request head.
    let attack_start = Instant::now();
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let limit = header_timeout + Duration::from_secs(30);
    let conns: Vec<_> = (0..SLOW)
        .map(|i| {
            let kind = if i % 2 == 0 { Slow::Idle } else { Slow::Header };
            tokio::spawn(attack_conn(
                server.addr,
                kind,
                gate.clone(),
                opened.clone(),
                limit,
            ))
        })
        .collect();
    while opened.load(std::sync::atomic::Ordering::Relaxed) < SLOW {
        assert!(
            attack_start.elapsed() < Duration::from_secs(60),
            "connecting took too long"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_open = attack_start.elapsed();
    let rss_attack = rss_kib(server.proc.child.id(), "VmRSS:");

    let (under_attack, asset) = upload(&server, &file, &dir.path().join("state-b"));
    let upload_end = Instant::now();
    assert_eq!(
        original_sha(&server, &asset).await,
        sha,
        "the upload under attack is byte-identical"
    );

    let mut held = Vec::new();
    for c in conns {
        held.push(c.await.unwrap());
    }
    let never: Vec<Slow> = held
        .iter()
        .filter(|h| h.closed.is_none())
        .map(|h| h.kind)
        .collect();
    let open_at_upload_end = held
        .iter()
        .filter(|h| h.closed.is_some_and(|c| c > upload_end))
        .count();
    println!(
        "20 MB spool upload: {baseline:.2} s alone ({:.0} MB/s), {under_attack:.2} s with {SLOW} slow connections open ({:.0} MB/s)",
        20.0 / baseline,
        20.0 / under_attack
    );
    println!(
        "{SLOW} slow connections open {:.2} s after the attack began; {open_at_upload_end} still open when the upload finished; server RSS {} MiB before, {} MiB during the attack, peak {} MiB",
        all_open.as_secs_f64(),
        rss_before / 1024,
        rss_attack / 1024,
        rss_kib(server.proc.child.id(), "VmHWM:") / 1024
    );
    // The server's own count, logged when it stops.
    server.proc.sigterm();
    let log_path = server.data.with_extension("log");
    let (status, _) = server.proc.finish(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let summary = strip_ansi(
        log.lines()
            .find(|l| l.contains("connections since start"))
            .unwrap_or_default(),
    );
    println!("server: {summary}");
    assert!(
        never.is_empty(),
        "{} slow connections were never closed ({} idle); server: {summary}",
        never.len(),
        never.iter().filter(|k| **k == Slow::Idle).count()
    );
    let header_timeouts: usize = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("header_timeouts="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        header_timeouts >= SLOW,
        "the server closed {header_timeouts} connections for their header timeout: {summary}"
    );
    for kind in [Slow::Idle, Slow::Header] {
        let mut secs: Vec<f64> = held
            .iter()
            .filter(|h| h.kind == kind)
            .map(|h| h.closed.unwrap().duration_since(h.connected).as_secs_f64())
            .collect();
        secs.sort_by(f64::total_cmp);
        let last_close = held
            .iter()
            .filter_map(|h| h.closed)
            .max()
            .unwrap()
            .duration_since(attack_start);
        println!(
            "{kind:?}: {} closed by the server {:.2} / {:.2} / {:.2} / {:.2} s after connecting (min / median / p99 / max); the last {:.2} s after the attack began",
            secs.len(),
            secs[0],
            percentile(&secs, 0.5),
            percentile(&secs, 0.99),
            secs[secs.len() - 1],
            last_close.as_secs_f64()
        );
        assert!(
            // The client notes its connect a little after the server's
            // accept, from which the server counts.
            secs[0] >= header_timeout.as_secs_f64() - 1.5,
            "{kind:?} closed before the header timeout: {}",
            secs[0]
        );
        assert!(
            secs[secs.len() - 1] <= header_timeout.as_secs_f64() + 6.0,
            "{kind:?} closed late: {}",
            secs[secs.len() - 1]
        );
    }
    // The upload ran while every slow connection held its place.
    assert_eq!(
        open_at_upload_end, SLOW,
        "the upload did not overlap the whole attack"
    );
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: spool.test\r\n\r\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_head_is_cut_at_the_header_timeout_and_an_idle_keepalive_at_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(
        &dir.path().join("data"),
        0,
        &["--header-timeout", "2", "--keepalive-timeout", "5"],
    );
    let addr = server.addr;
    // Keeps sending bytes of its head, never finishing it: progress does
    // not extend the header timeout.
    let trickle = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: spool.test\r\nX-Slow: ")
            .await
            .unwrap();
        let mut sent = 0;
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                r = s.read(&mut buf) => {
                    if matches!(r, Ok(0) | Err(_)) {
                        return (start.elapsed(), sent);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if s.write_all(b"a").await.is_err() {
                        return (start.elapsed(), sent);
                    }
                    sent += 1;
                    assert!(start.elapsed() < Duration::from_secs(20), "never cut");
                }
            }
        }
    });
    // Two requests on one connection (keep-alive works), then idle.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..2 {
        s.write_all(HEALTH).await.unwrap();
        let r = read_response(&mut s).await;
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");
    }
    let idle_since = Instant::now();
    let idle = closed_within(&mut s, idle_since, Duration::from_secs(20))
        .await
        .expect("the idle keep-alive connection was never closed");
    let (cut, sent) = trickle.await.unwrap();
    println!(
        "trickled head cut after {:.2} s ({sent} bytes sent after the first line, one every 200 ms); idle keep-alive closed after {:.2} s",
        cut.as_secs_f64(),
        idle.as_secs_f64()
    );
    assert!(
        cut >= Duration::from_millis(1800) && cut <= Duration::from_millis(4000),
        "{cut:?}"
    );
    assert!(sent >= 5, "the trickle kept sending: {sent}");
    // Past the header timeout, but not cut by it: the keep-alive one.
    assert!(
        idle >= Duration::from_millis(4800) && idle <= Duration::from_millis(7500),
        "{idle:?}"
    );
}

/// Starts a raw PATCH of `len` bytes to upload `url` on `s` and waits for
/// `100 Continue`, i.e. until the server is reading its body: the
/// connection is then serving a request.
async fn busy_patch(mut s: TcpStream, url: &str, len: usize) -> TcpStream {
    let u = reqwest::Url::parse(url).unwrap();
    let head = format!(
        "PATCH {}?{} HTTP/1.1\r\nHost: spool.test\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n",
        u.path(),
        u.query().unwrap()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(got.starts_with("HTTP/1.1 100"), "{got}");
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_limit_idle_then_slow_connections_make_room_and_requests_in_progress_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(
        &dir.path().join("data"),
        0,
        &[
            "--max-connections",
            "4",
            "--header-timeout",
            "60",
            "--keepalive-timeout",
            "60",
        ],
    );
    let addr = server.addr;
    let tus = Tus::default();
    let mut urls = Vec::new();
    for _ in 0..4 {
        urls.push(tus.create(&server.endpoint(), Some(10)).await);
    }

    // Four: an idle keep-alive one, two that sent nothing, one uploading.
    let mut keepalive = TcpStream::connect(addr).await.unwrap();
    keepalive.write_all(HEALTH).await.unwrap();
    read_response(&mut keepalive).await;
    let mut slow1 = TcpStream::connect(addr).await.unwrap();
    let slow2 = TcpStream::connect(addr).await.unwrap();
    let mut uploading =
        vec![busy_patch(TcpStream::connect(addr).await.unwrap(), &urls[0], 10).await];

    // A newcomer displaces the idle keep-alive connection first...
    let new1 = TcpStream::connect(addr).await.unwrap();
    wait_closed(&mut keepalive, "the idle keep-alive connection").await;
    assert!(!is_closed(&slow1) && !is_closed(&slow2));
    // ...then the one that has waited longest for its head.
    let new2 = TcpStream::connect(addr).await.unwrap();
    wait_closed(&mut slow1, "the oldest slow connection").await;
    assert!(!is_closed(&slow2) && !is_closed(&new1) && !is_closed(&new2));
    assert!(
        !is_closed(&uploading[0]),
        "an upload in progress was displaced"
    );

    // Every connection serving a request: a newcomer is refused at once.
    for (s, url) in [slow2, new1, new2].into_iter().zip(&urls[1..]) {
        uploading.push(busy_patch(s, url, 10).await);
    }
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let answer = read_response(&mut refused).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("ERR_SERVER_BUSY"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    wait_closed(&mut refused, "the refused connection").await;
    println!(
        "refused in {:.1} ms with 503 ERR_SERVER_BUSY",
        started.elapsed().as_secs_f64() * 1e3
    );

    // None of the uploads was cut: each completes.
    for s in &mut uploading {
        s.write_all(b"0123456789").await.unwrap();
        let r = read_response(s).await;
        assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    }
    for url in &urls {
        assert_eq!(tus.head(url).await.1, Some(10));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_raises_its_open_file_limit_and_fits_connections_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, hard) = fd_limits("self");
    let hard = hard.min(1 << 20);
    // Connections get what the limit leaves after 256 descriptors for files.
    let default_fits = hard >= 4096 + 256;
    for (ulimit, expect_soft, lowered) in
        [("-S -n 512", hard, !default_fits), ("-n 400", 400, true)]
    {
        let data = dir.path().join(format!("data-{expect_soft}"));
        let log = dir.path().join(format!("serve-{expect_soft}.log"));
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
            .arg(spool_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(["--token-id", TOKEN_ID, "--token-secret", TOKEN_SECRET])
            .env("SPOOL_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap());
        let mut proc = Proc::spawn(cmd);
        proc.wait_line(Duration::from_secs(20), |l| l.starts_with("listening on"));
        let pid = proc.child.id().to_string();
        let (soft, _) = fd_limits(&pid);
        assert_eq!(soft, expect_soft, "after ulimit {ulimit}");
        proc.sigterm();
        let (status, _) = proc.finish(Duration::from_secs(15));
        assert!(status.success());
        let logged = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            logged.contains("raised the open-file limit"),
            expect_soft > 512,
            "{logged}"
        );
        assert_eq!(
            logged.contains("the connection limit is lowered to fit the open-file limit"),
            lowered,
            "{logged}"
        );
    }
}

#[test]
fn serve_rejects_bad_limit_and_frame_ancestor_flags() {
    for (args, needle) in [
        (
            vec!["--frame-ancestors", "https://app.example/embed"],
            "--frame-ancestors",
        ),
        (vec!["--frame-ancestors", "'none' 'self'"], "'none'"),
        (vec!["--max-connections", "0"], "--max-connections"),
        (vec!["--header-timeout", "0"], "--header-timeout"),
        (vec!["--keepalive-timeout", "0"], "--keepalive-timeout"),
        (vec!["--webhook-max-age", "0"], "--webhook-max-age"),
        (vec!["--webhook-retention", "0"], "--webhook-retention"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = spool("serve")
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = spool("serve")
        .args(["--frame-ancestors", "https://app.example/embed"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("https://app.example/embed") && err.contains("origin"),
        "the message names the bad value: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_reads_nothing_of_a_response_is_cut_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--idle-timeout", "2"]);
    // Larger than what the loopback socket buffers hold, so the server's
    // writes must wait for the client.
    let size = 48 * 1024 * 1024;
    let asset = server.on_demand(serde_json::json!({})).await;
    let (status, _) = Tus::default()
        .patch(
            asset["upload_url"].as_str().unwrap(),
            0,
            random_bytes(size, 5),
            Some(size as u64),
        )
        .await;
    assert_eq!(status, 204);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        format!(
            "GET /v1/assets/{}/original HTTP/1.1\r\nHost: spool.test\r\nAuthorization: {}\r\n\r\n",
            asset["asset_id"].as_str().unwrap(),
            basic_auth()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The scenario: a client that stops reading for twice the timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let start = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the stalled response was never cut (read {got} bytes)"),
        }
    }
    println!(
        "a response nobody read was cut: {got} of {size} bytes had left the server (drained in {:.2} s)",
        start.elapsed().as_secs_f64()
    );
    assert!(got < size, "the whole response arrived: {got}");
}
