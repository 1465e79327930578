//! Raw-TCP and process helpers for the limits suite: read one HTTP/1.1
//! response off a socket, notice when the server closes one, read a
//! process's open-file limit and memory from /proc, run `spool upload`.

use std::process::Command;
use std::time::{Duration, Instant};

use spool_e2e::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The soft and hard open-file limits of process `pid` ("self" for this one).
pub fn fd_limits(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<&str> = line.split_whitespace().collect();
    let num = |s: &str| s.parse().unwrap_or(u64::MAX);
    (num(v[3]), num(v[4]))
}

/// Makes room for `n` sockets in this test process (util-linux prlimit on
/// our own pid: no unsafe code needed).
pub fn ensure_fd_room(n: u64) {
    let (soft, hard) = fd_limits("self");
    if soft >= n {
        return;
    }
    let target = hard.min(1 << 20);
    let me = std::process::id().to_string();
    let _ = Command::new("prlimit")
        .args(["--pid", &me, &format!("--nofile={target}:{target}")])
        .status();
    let (soft, _) = fd_limits("self");
    assert!(
        soft >= n,
        "this test needs {n} open files; the limit is {soft} (hard {hard})"
    );
}

/// Reads one HTTP/1.1 response (skipping 1xx), head and Content-Length
/// body, as text.
pub async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut chunk))
            .await
            .expect("no response within 20 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = &text[..end];
        if head.starts_with("HTTP/1.1 1") {
            buf.drain(..end + 4);
            continue;
        }
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            return text;
        }
    }
}

/// Waits until the server closes `s` (EOF or reset); how long that took
/// from `since`, or `None` if it stayed open for `limit`.
pub async fn closed_within(s: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether the server has closed `s`, without waiting.
pub fn is_closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

pub async fn wait_closed(s: &mut TcpStream, what: &str) {
    assert!(
        closed_within(s, Instant::now(), Duration::from_secs(10))
            .await
            .is_some(),
        "{what} was not closed"
    );
}

/// `spool upload` of `file` to `server`; (seconds taken, asset id).
pub fn upload(
    server: &SpoolServer,
    file: &std::path::Path,
    state: &std::path::Path,
) -> (f64, String) {
    let mut cmd = spool("upload");
    cmd.arg(file)
        .args(server_args(&server.base))
        .arg("--state-dir")
        .arg(state)
        .arg("--json");
    let start = Instant::now();
    let (status, lines) = Proc::spawn(cmd).finish(Duration::from_secs(180));
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "spool upload failed: {lines:?}");
    let events = json_lines(&lines);
    let done = events.last().unwrap();
    assert_eq!(done["event"], "complete", "{lines:?}");
    (secs, done["asset_id"].as_str().unwrap().to_owned())
}

pub async fn original_sha(server: &SpoolServer, asset: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/assets/{asset}/original", server.base))
        .header("authorization", basic_auth())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sha256_hex(&resp.bytes().await.unwrap())
}

pub fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A log line without its colour codes.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
