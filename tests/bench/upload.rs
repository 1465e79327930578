//! Upload throughput benchmark: concurrent 100 MB uploads over loopback to
//! `spool serve` and, in the same run and through the same client, to
//! @tus/server (npm) with its file store. For 1, 8 and 64 uploads at once it
//! prints MB/s, the p50 and p99 latency of a PATCH, the server's peak RSS
//! and the CPU it used (100 % = one core).
//!
//! Beside them, measured in the same run after the servers (and printed
//! first), the durable-write ceiling of the disk: as many writers as
//! uploads, each writing the same bytes in 8 MiB pieces with an `fdatasync`
//! after each piece (what Spool promises before every 204), in a folder on
//! the same filesystem as the servers' data. Twice: plainly (one `write`
//! per piece, every page left cached), and the way Spool's store writes
//! (1 MiB writes, each one's writeback started at once, the pages before
//! the piece dropped once durable). `of disk` is a server's MB/s as a
//! fraction of the better of the two; @tus/server's file store never
//! fsyncs, so it is not bound by it. Last, the same client against a sink
//! in this process that reads and drops every body: the ceiling the
//! machine's cores put on HTTP over loopback, whatever a server does with
//! the bytes. `make bench` runs it against the release build.
//!
//! Environment: SPOOL_BENCH_MB (size of each upload, default 100),
//! SPOOL_BENCH_CONCURRENCY (comma list, default 1,8,64),
//! SPOOL_BENCH_CHUNK_MB (PATCH size, default 8), SPOOL_BENCH_ONLY (a comma
//! list of `disk`, `spool`, `tus`, `s3`, `s3pg`, `cluster`, `sink`: run
//! only those rows, e.g. while profiling). The `s3` rows are `spool serve
//! --store s3` against a Garage on the same machine (Garage's own CPU and
//! memory not counted).
//!
//! The scale-out rows, so that one run compares the single node on files
//! and SQLite (`spool`) with what a deployment of several runs: `s3pg` is
//! one `spool serve --store s3 --database-url postgres://…` on a private
//! Garage and PostgreSQL, `cluster` two such nodes sharing one Garage and
//! one PostgreSQL behind nginx balancing round robin, the client talking to
//! nginx (so consecutive PATCHes of an upload land on alternate nodes, each
//! taking the writer lease in turn, as behind a real balancer). Garage's,
//! PostgreSQL's and nginx's CPU and memory are not counted, the bench
//! starting them only to serve the rows; the cluster's RSS and CPU are both
//! nodes' summed, what the deployment spends on Spool itself. After the
//! tables, for every Spool row run, Stop → link: ten uploads one at a time,
//! created with a deferred length like the recorder's, whose last 1.4 MB
//! fragment declares the length; that PATCH's latency is how long a viewer
//! waits after Stop. On files it ends in an fsync; on S3 it is the
//! completion (the last tail copied into the multipart upload, completed,
//! the pending objects removed), which PostgreSQL and nginx add little to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use spool_e2e::*;

/// The scale-out rows' servers and the Stop → link figure.
#[path = "upload/cluster.rs"]
mod cluster;

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

/// CPU seconds (user + system) a process has used so far.
fn cpu_s(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The fields after the command name, which may contain spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // /proc counts in USER_HZ, which Linux fixes at 100 on every platform
    // this runs on.
    ticks as f64 / 100.0
}

/// The `p`th percentile (0–100) of `v`, nearest rank.
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

struct Target {
    name: &'static str,
    endpoint: String,
    auth: Option<String>,
    /// The server's processes: their RSS and CPU are summed.
    pids: Vec<u32>,
}

/// What one row measured.
struct Row {
    mbps: f64,
    p50: Duration,
    p99: Duration,
    rss_mib: Option<f64>,
    cpu_pct: Option<f64>,
}

/// One upload through the benchmark's client: create, then PATCH in chunks.
/// Returns its URL and every PATCH's latency (request sent to answer read).
async fn upload(
    http: &reqwest::Client,
    t: &Target,
    data: Bytes,
    chunk: usize,
) -> (String, Vec<Duration>) {
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
    let mut latencies = Vec::with_capacity(data.len().div_ceil(chunk));
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
        let sent = Instant::now();
        let resp = req.body(data.slice(offset..end)).send().await.unwrap();
        latencies.push(sent.elapsed());
        assert_eq!(resp.status(), 204, "{} PATCH", t.name);
        let acked: usize = resp.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(acked, end, "{} acknowledged offset", t.name);
        offset = end;
    }
    (url, latencies)
}

async fn terminate(http: &reqwest::Client, t: &Target, url: &str) {
    let mut req = http.delete(url).header("tus-resumable", "1.0.0");
    if let Some(a) = &t.auth {
        req = req.header("authorization", a);
    }
    let s = req.send().await.unwrap().status();
    assert_eq!(s, 204, "{} termination", t.name);
}

/// Runs `n` concurrent uploads to `t`.
async fn run(http: &reqwest::Client, t: &Target, data: &Bytes, n: usize, chunk: usize) -> Row {
    let rss = |pids: &[u32]| pids.iter().map(|p| rss_kib(*p)).sum::<u64>();
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_s(*p)).sum::<f64>();
    let peak = Arc::new(AtomicU64::new(rss(&t.pids)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pids) = (peak.clone(), done.clone(), t.pids.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(&pids), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let cpu_before = cpu(&t.pids);
    let start = Instant::now();
    let results =
        futures_util::future::join_all((0..n).map(|_| upload(http, t, data.clone(), chunk))).await;
    let elapsed = start.elapsed();
    let cpu = cpu(&t.pids) - cpu_before;
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    // Check, then free the disk for the next round.
    let tus = Tus { http: http.clone() };
    let mut latencies = Vec::new();
    for (url, l) in &results {
        latencies.extend_from_slice(l);
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
    Row {
        mbps: mb / elapsed.as_secs_f64(),
        p50: percentile(&mut latencies, 50.0),
        p99: percentile(&mut latencies, 99.0),
        rss_mib: Some(peak.load(Ordering::Relaxed) as f64 / 1024.0),
        cpu_pct: Some(100.0 * cpu / elapsed.as_secs_f64()),
    }
}

/// How a raw-disk writer treats the page cache.
#[derive(Clone, Copy)]
enum DiskWrite {
    /// One `write` per piece, then `fdatasync`; every page stays cached.
    Plain,
    /// As Spool's store: 1 MiB writes, each followed by
    /// `POSIX_FADV_DONTNEED` (which starts its writeback), `fdatasync` per
    /// piece, then the pages before the piece dropped.
    Streaming,
}

/// The disk's durable-write ceiling: `n` threads, each writing `data` to its
/// own new file under `dir` in `chunk`-sized pieces with an `fdatasync`
/// after each. Latency is one piece's writes plus its `fdatasync`.
fn raw_disk(dir: &Path, data: &[u8], n: usize, chunk: usize, how: DiskWrite) -> Row {
    const BUFFER: usize = 1024 * 1024;
    fn dont_need(f: &std::fs::File, offset: usize, len: usize) {
        if let Some(len) = std::num::NonZeroU64::new(len as u64) {
            let _ = rustix::fs::fadvise(f, offset as u64, Some(len), rustix::fs::Advice::DontNeed);
        }
    }
    let start = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..n)
            .map(|i| {
                let path = dir.join(format!("writer-{i}"));
                s.spawn(move || {
                    let mut f = std::fs::File::create(&path).unwrap();
                    let mut lat = Vec::new();
                    let mut offset = 0;
                    for piece in data.chunks(chunk) {
                        let t = Instant::now();
                        match how {
                            DiskWrite::Plain => f.write_all(piece).unwrap(),
                            DiskWrite::Streaming => {
                                let mut at = offset;
                                for part in piece.chunks(BUFFER) {
                                    f.write_all(part).unwrap();
                                    dont_need(&f, at, part.len());
                                    at += part.len();
                                }
                            }
                        }
                        f.sync_data().unwrap();
                        if let DiskWrite::Streaming = how {
                            dont_need(&f, 0, offset);
                        }
                        lat.push(t.elapsed());
                        offset += piece.len();
                    }
                    lat
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let elapsed = start.elapsed();
    for i in 0..n {
        std::fs::remove_file(dir.join(format!("writer-{i}"))).unwrap();
    }
    Row {
        mbps: (n * data.len()) as f64 / 1e6 / elapsed.as_secs_f64(),
        p50: percentile(&mut latencies, 50.0),
        p99: percentile(&mut latencies, 99.0),
        rss_mib: None,
        cpu_pct: None,
    }
}

/// A stand-in TUS server that keeps nothing: it reads each request body
/// off the socket and drops it, answering creation, PATCH and DELETE as a
/// server would. Through the same client, its row is what HTTP over
/// loopback alone costs on this machine's cores: no server can beat it.
async fn sink() -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let next_id = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let next_id = next_id.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::with_capacity(256 * 1024, stream);
                let mut body = vec![0u8; 256 * 1024];
                loop {
                    let (mut method, mut length, mut offset) = (String::new(), 0u64, 0u64);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if method.is_empty() {
                            method = l.split(' ').next().unwrap_or("").to_owned();
                        } else if let Some((k, v)) = l.split_once(':') {
                            let v = v.trim().parse().unwrap_or(0);
                            match k.to_ascii_lowercase().as_str() {
                                "content-length" => length = v,
                                "upload-offset" => offset = v,
                                _ => {}
                            }
                        }
                    }
                    let mut left = length;
                    while left > 0 {
                        let want = body.len().min(left as usize);
                        match conn.read(&mut body[..want]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => left -= n as u64,
                        }
                    }
                    let answer = match method.as_str() {
                        "POST" => format!(
                            "HTTP/1.1 201 Created\r\nLocation: /files/{}\r\nTus-Resumable: 1.0.0\r\nContent-Length: 0\r\n\r\n",
                            next_id.fetch_add(1, Ordering::Relaxed)
                        ),
                        "PATCH" => format!(
                            "HTTP/1.1 204 No Content\r\nUpload-Offset: {}\r\nTus-Resumable: 1.0.0\r\n\r\n",
                            offset + length
                        ),
                        _ => "HTTP/1.1 204 No Content\r\nTus-Resumable: 1.0.0\r\n\r\n".to_owned(),
                    };
                    if conn.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/files")
}

/// Lets the disk finish what the previous row left it: everything written
/// reaches the device, then a pause.
fn settle() {
    rustix::fs::sync();
    std::thread::sleep(Duration::from_secs(2));
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn print_row(n: usize, name: &str, row: &Row, disk: Option<f64>) {
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |v| format!("{v:.p$}"));
    println!(
        "{:<11} {:<32} {:>8.1} {:>8} {:>10} {:>10} {:>10} {:>8}",
        n,
        name,
        row.mbps,
        disk.map_or("-".to_owned(), |d| format!("{:.2}", row.mbps / d)),
        ms(row.p50),
        ms(row.p99),
        opt(row.rss_mib, 1),
        opt(row.cpu_pct, 0),
    );
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
    let only = std::env::var("SPOOL_BENCH_ONLY").ok();
    let runs = |what: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|o| o.trim() == what))
    };
    let data = Bytes::from(random_bytes(size, 42));
    let dir = tempfile::tempdir().unwrap();
    // Beside the servers' data folders: the same filesystem.
    let disk_dir = dir.path().join("raw-disk");
    std::fs::create_dir_all(&disk_dir).unwrap();

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

    // The same server on `--store s3`, against a local Garage (whose own
    // CPU and memory the row does not count).
    let s3 = runs("s3").then(Backend::s3);
    let spool_s3 = s3
        .as_ref()
        .map(|b| SpoolServer::start_on(b, &dir.path().join("spool-s3"), 0, &[]));
    let mut targets = vec![
        (
            "spool",
            Target {
                name: "spool serve",
                endpoint: spool.endpoint(),
                auth: Some(basic_auth()),
                pids: vec![spool.proc.child.id()],
            },
        ),
        (
            "tus",
            Target {
                name: "@tus/server 2.4.5 (file store)",
                endpoint: format!("{node_base}/files"),
                auth: None,
                pids: vec![node_srv.child.id()],
            },
        ),
    ];
    if let Some(srv) = &spool_s3 {
        targets.push((
            "s3",
            Target {
                name: "spool serve --store s3 (Garage)",
                endpoint: srv.endpoint(),
                auth: Some(basic_auth()),
                pids: vec![srv.proc.child.id()],
            },
        ));
    }
    let s3pg = runs("s3pg").then(|| cluster::s3pg(dir.path()));
    if let Some((srv, _)) = &s3pg {
        targets.push((
            "s3pg",
            Target {
                name: "spool s3+PG, 1 node",
                endpoint: srv.endpoint(),
                auth: Some(basic_auth()),
                pids: vec![srv.proc.child.id()],
            },
        ));
    }
    let nodes = if runs("cluster") {
        Some(cluster::cluster(dir.path()).await)
    } else {
        None
    };
    if let Some(c) = &nodes {
        targets.push(("cluster", cluster::cluster_target(c)));
    }
    let sink_target = Target {
        name: "sink: HTTP only, bytes dropped",
        endpoint: sink().await,
        auth: None,
        pids: vec![std::process::id()],
    };
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
        "{:<11} {:<32} {:>8} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "concurrent", "writer", "MB/s", "of disk", "p50 (ms)", "p99 (ms)", "RSS (MiB)", "CPU %"
    );
    for &n in &levels {
        // The servers first, each after the disk has settled: the raw-disk
        // rows leave the device (and the host under a VM) busy for a while
        // after their last fsync, which would be charged to whoever follows.
        let mut servers = Vec::new();
        for (key, t) in &targets {
            if runs(key) {
                settle();
                servers.push((t.name, run(&http, t, &data, n, chunk).await));
            }
        }
        let sink_row = if runs("sink") {
            // In this process: its RSS and CPU are the client's too.
            Some(Row {
                rss_mib: None,
                cpu_pct: None,
                ..run(&http, &sink_target, &data, n, chunk).await
            })
        } else {
            None
        };
        let mut ceiling: Option<f64> = None;
        if runs("disk") {
            for (how, name) in [
                (DiskWrite::Plain, "disk: write + fdatasync"),
                (DiskWrite::Streaming, "disk: as Spool writes"),
            ] {
                settle();
                let d = raw_disk(&disk_dir, &data, n, chunk, how);
                print_row(n, name, &d, None);
                ceiling = Some(ceiling.map_or(d.mbps, |c| c.max(d.mbps)));
            }
        }
        for (name, row) in &servers {
            print_row(n, name, row, ceiling);
        }
        if let Some(row) = &sink_row {
            print_row(n, sink_target.name, row, None);
        }
    }
    let mut stops = Vec::new();
    for (key, t) in &targets {
        if t.auth.is_some() && runs(key) {
            settle();
            stops.push((t.name, cluster::stop_to_link(&http, t, 10).await));
        }
    }
    if !stops.is_empty() {
        cluster::print_stop(10, &mut stops);
    }
    node_srv.sigterm();
}
