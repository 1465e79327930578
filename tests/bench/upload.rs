//! Upload throughput benchmark: concurrent 100 MB uploads over loopback to
//! `spool serve` and, in the same run and through the same client, to
//! @tus/server (npm) with its file store. Prints MB/s and the server's peak
//! RSS for 1, 8 and 64 uploads at once. `make bench` runs it against the
//! release build.
//!
//! Environment: SPOOL_BENCH_MB (size of each upload, default 100),
//! SPOOL_BENCH_CONCURRENCY (comma list, default 1,8,64),
//! SPOOL_BENCH_CHUNK_MB (PATCH size, default 8).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_e2e::*;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Target {
    name: &'static str,
    endpoint: String,
    auth: Option<String>,
    pid: u32,
}

/// One upload through the benchmark's client: create, then PATCH in chunks.
async fn upload(http: &reqwest::Client, t: &Target, data: Bytes, chunk: usize) -> String {
    let mut req = http
        .post(&t.endpoint)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", data.len());
    if let Some(a) = &t.auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 201, "{} creation", t.name);
    let loc = resp.headers()["location"].to_str().unwrap();
    let url = reqwest::Url::parse(&t.endpoint)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string();
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + chunk).min(data.len());
        let mut req = http
            .patch(&url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset);
        if let Some(a) = &t.auth {
            req = req.header("authorization", a);
        }
        let resp = req.body(data.slice(offset..end)).send().await.unwrap();
        assert_eq!(resp.status(), 204, "{} PATCH", t.name);
        let acked: usize = resp.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(acked, end, "{} acknowledged offset", t.name);
        offset = end;
    }
    url
}

async fn terminate(http: &reqwest::Client, t: &Target, url: &str) {
    let mut req = http.delete(url).header("tus-resumable", "1.0.0");
    if let Some(a) = &t.auth {
        req = req.header("authorization", a);
    }
    let s = req.send().await.unwrap().status();
    assert_eq!(s, 204, "{} termination", t.name);
}

/// Runs `n` concurrent uploads; returns (MB/s, peak RSS MiB).
async fn run(
    http: &reqwest::Client,
    t: &Target,
    data: &Bytes,
    n: usize,
    chunk: usize,
) -> (f64, f64) {
    let peak = Arc::new(AtomicU64::new(rss_kib(t.pid)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), t.pid);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let start = Instant::now();
    let urls =
        futures_util::future::join_all((0..n).map(|_| upload(http, t, data.clone(), chunk))).await;
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    // Check, then free the disk for the next round.
    let tus = Tus { http: http.clone() };
    for url in &urls {
        if t.auth.is_some() {
            let (_, off, len) = tus.head(url).await;
            assert_eq!(
                (off, len),
                (Some(data.len() as u64), Some(data.len() as u64))
            );
        }
        terminate(http, t, url).await;
    }
    let mb = (n * data.len()) as f64 / 1e6;
    (
        mb / elapsed.as_secs_f64(),
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
    )
}

#[tokio::main]
async fn main() {
    let size = env_u64("SPOOL_BENCH_MB", 100) as usize * 1_000_000;
    let chunk = env_u64("SPOOL_BENCH_CHUNK_MB", 8) as usize * 1024 * 1024;
    let levels: Vec<usize> = std::env::var("SPOOL_BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,8,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data = Bytes::from(random_bytes(size, 42));
    let dir = tempfile::tempdir().unwrap();

    let spool = SpoolServer::start(&dir.path().join("spool"), 0, &[]);
    let node_dir = dir.path().join("tusd-node");
    std::fs::create_dir_all(&node_dir).unwrap();
    let mut node_cmd = node("tus_node_server.mjs");
    node_cmd.args(["0", node_dir.to_str().unwrap()]);
    let mut node_srv = Proc::spawn(node_cmd);
    let line = node_srv.wait_line(Duration::from_secs(20), |l| {
        l.starts_with("listening on http://")
    });
    let node_base = line.trim_start_matches("listening on ").to_owned();

    let targets = [
        Target {
            name: "spool serve",
            endpoint: spool.endpoint(),
            auth: Some(basic_auth()),
            pid: spool.proc.child.id(),
        },
        Target {
            name: "@tus/server 2.4.5 (file store)",
            endpoint: format!("{node_base}/files"),
            auth: None,
            pid: node_srv.child.id(),
        },
    ];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();

    println!(
        "upload benchmark: {} MB per upload, {} MiB PATCHes, loopback, {} cores",
        size / 1_000_000,
        chunk >> 20,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "{:<12} {:<32} {:>10} {:>16}",
        "concurrent", "server", "MB/s", "peak RSS (MiB)"
    );
    for &n in &levels {
        for t in &targets {
            let (mbps, rss) = run(&http, t, &data, n, chunk).await;
            println!("{:<12} {:<32} {:>10.1} {:>16.1}", n, t.name, mbps, rss);
        }
    }
    node_srv.sigterm();
}
