//! Client benchmark: the same 1 GB file over loopback to `spool serve` with
//! `spool upload` (over TUS and over the IETF draft), tus-js-client (Node)
//! and tuspy, in one run; wall time, CPU time (user + system) and peak RSS of
//! each client process, measured with wait4(2). Then both protocols of
//! `spool upload` through the fault proxy (FIN, RST, a stall, a burst of
//! 503s): bytes sent twice per fault. `make bench` runs it against the
//! release build.
//!
//! Environment: SPOOL_BENCH_CLIENT_MB (file size, default 1000),
//! SPOOL_BENCH_PEER_CHUNK_MB (chunk size for tus-js-client and tuspy, default 16),
//! SPOOL_BENCH_FAULT_MB (file size of the fault runs, default 64).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// wait4(2) is the one way to read a specific child's resource usage.
#![allow(unsafe_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use spool_e2e::*;

struct Usage {
    wall: Duration,
    cpu: Duration,
    max_rss_mib: f64,
    ok: bool,
    stdout: String,
}

// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(mut cmd: Command) -> Usage {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child and fills a zeroed rusage we own.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let wall = start.elapsed();
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let stdout = reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        eprintln!("{cmd:?} failed: {stderr}");
    }
    Usage {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_mib: ru.ru_maxrss as f64 / 1024.0,
        ok,
        stdout,
    }
}

fn write_big_file(path: &std::path::Path, size: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut buf = vec![0u8; 16 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

fn url_in(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        v.get("url")
            .or_else(|| v.get("upload_url"))
            .and_then(|u| u.as_str())
            .map(str::to_owned)
    })
}

#[tokio::main]
async fn main() {
    let size = std::env::var("SPOOL_BENCH_CLIENT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000u64)
        * 1_000_000;
    let peer_chunk = std::env::var("SPOOL_BENCH_PEER_CHUNK_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16u64)
        << 20;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.bin");
    write_big_file(&file, size);
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let endpoint = server.endpoint();
    let tus = Tus::default();

    let spool_upload = |protocol: &str, state: &str| {
        let mut cmd = Command::new(spool_bin());
        cmd.arg("upload")
            .arg(&file)
            .args([
                "--server",
                &server.base,
                "--token-id",
                TOKEN_ID,
                "--token-secret",
                TOKEN_SECRET,
                "--json",
                "--protocol",
                protocol,
                "--state-dir",
            ])
            .arg(dir.path().join(state));
        cmd
    };
    let mut js = Command::new("node");
    js.arg(peers().join("tus_js_upload.mjs"))
        .args([
            "stream",
            &endpoint,
            file.to_str().unwrap(),
            &peer_chunk.to_string(),
            &basic_auth(),
        ])
        .current_dir(peers());
    let mut py = Command::new("python3");
    py.arg(peers().join("tuspy_upload.py"))
        .args([
            &endpoint,
            file.to_str().unwrap(),
            &peer_chunk.to_string(),
            dir.path().join("tuspy.json").to_str().unwrap(),
            &basic_auth(),
        ])
        .env("PYTHONPATH", peers().join(".py"));

    println!(
        "client benchmark: one {} MB file over loopback to spool serve; tus-js-client and tuspy with {} MiB chunks, spool upload adaptive",
        size / 1_000_000,
        peer_chunk >> 20
    );
    println!(
        "{:<28} {:>8} {:>8} {:>10} {:>14}",
        "client", "wall s", "CPU s", "MB/s", "peak RSS MiB"
    );
    for (name, cmd) in [
        ("spool upload (TUS)", spool_upload("tus", "state-tus")),
        (
            "spool upload (IETF draft)",
            spool_upload("ietf", "state-ietf"),
        ),
        ("tus-js-client 4.3.1 (Node)", js),
        ("tuspy 1.1.0", py),
    ] {
        let u = run_measured(cmd);
        let url = url_in(&u.stdout);
        let verified = match (&url, u.ok) {
            (Some(url), true) => {
                let (_, off, len) = tus.head(url).await;
                off == Some(size) && len == Some(size)
            }
            _ => false,
        };
        println!(
            "{:<28} {:>8.2} {:>8.2} {:>10.1} {:>14.1}{}",
            name,
            u.wall.as_secs_f64(),
            u.cpu.as_secs_f64(),
            size as f64 / 1e6 / u.wall.as_secs_f64(),
            u.max_rss_mib,
            if verified { "" } else { "  (FAILED)" }
        );
        if let Some(url) = url {
            let _ = tus
                .http
                .delete(&url)
                .header("tus-resumable", "1.0.0")
                .header("authorization", basic_auth())
                .send()
                .await;
        }
    }
    drop(server);
    faults(dir.path()).await;
}

/// Both protocols of `spool upload` through the fault proxy: the same file
/// and the same faults, bytes sent twice per fault and the wall time.
async fn faults(dir: &std::path::Path) {
    use spool_e2e::proxy::{Action, FaultProxy, Faults};
    let size = std::env::var("SPOOL_BENCH_FAULT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64u64)
        * 1_000_000;
    let file = dir.join("faults.bin");
    write_big_file(&file, size);
    let chunk: u64 = 8 << 20;
    println!();
    println!(
        "faults: one {} MB file through the fault proxy, 8 MiB chunks; FIN, RST, a 4 s stall, then three 503s",
        size / 1_000_000
    );
    println!(
        "{:<28} {:>8} {:>8} {:>16} {:>18}",
        "client", "wall s", "faults", "re-sent MiB", "re-sent per fault"
    );
    for protocol in ["tus", "ietf"] {
        let faults = Faults {
            triggers: vec![
                (size / 6, Action::Close),
                (size / 3, Action::Reset),
                (size / 2, Action::Stall(Duration::from_secs(4))),
            ],
            burst_5xx: Some((6, 3)),
            ..Faults::default()
        };
        let proxy = FaultProxy::start_unconnected(faults).await;
        let data = dir.join(format!("data-faults-{protocol}"));
        let server = SpoolServer::start(&data, 0, &["--public-url", &proxy.url()]);
        proxy.set_upstream(server.addr);
        let mut cmd = Command::new(spool_bin());
        cmd.arg("upload")
            .arg(&file)
            .args([
                "--server",
                &proxy.url(),
                "--token-id",
                TOKEN_ID,
                "--token-secret",
                TOKEN_SECRET,
                "--json",
                "--protocol",
                protocol,
                "--chunk-size",
                &chunk.to_string(),
                "--stall-timeout",
                "2",
                "--state-dir",
            ])
            .arg(dir.join(format!("state-faults-{protocol}")));
        let u = run_measured(cmd);
        let fired = proxy.stats.fired.load(std::sync::atomic::Ordering::Relaxed) + 3;
        let sent = proxy
            .stats
            .body_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let resent = sent.saturating_sub(size);
        println!(
            "{:<28} {:>8.2} {:>8} {:>16.2} {:>12.2} MiB{}",
            format!("spool upload ({protocol})"),
            u.wall.as_secs_f64(),
            fired,
            resent as f64 / f64::from(1 << 20),
            resent as f64 / fired as f64 / f64::from(1 << 20),
            if u.ok { "" } else { "  (FAILED)" }
        );
    }
}
