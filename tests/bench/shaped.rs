//! Stop → link on a real, shaped uplink (issue 17): `spool record` runs in a
//! network namespace of its own whose only way to the server is a veth pair
//! shaped by the kernel's token-bucket filter (tbf) to 20 Mbit/s each way,
//! with a one-way delay added in user space (this kernel has no netem) by a
//! relay in front of `spool serve`. The screen is a video file played as
//! the screen (`--source file:`, ffmpeg's high-motion testsrc2 at 720p and
//! 1080p, 30 fps), so every run sees the same motion. For each resolution:
//! Stop → complete (the recorder's `stop_to_complete_ms`: from Stop to the
//! server acknowledging the last byte) over N recordings, against uploading
//! the finished file after Stop (`spool upload` through the same link,
//! wall time), and a few unchunked recordings (`--chunk-ms 0`, one moof per
//! 2 s fragment: the design before issue 17) for comparison.
//!
//! Needs root (namespaces, tc); without it, says so and exits. Environment:
//! SPOOL_BENCH_RECORDINGS (default 10), SPOOL_BENCH_RECORD_SECS (default 60),
//! SPOOL_BENCH_UNCHUNKED (default 3), SPOOL_BENCH_LINK_MBIT (default 20),
//! SPOOL_BENCH_DELAY_MS (one way, default 15), SPOOL_BENCH_RESOLUTIONS
//! (default 1280x720,1920x1080).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spool_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The namespace, the veth pair and their addresses; removed when dropped.
struct Link {
    ns: String,
    host_if: String,
    host_ip: String,
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Link {
    fn create(mbit: u64) -> Result<Link, String> {
        let id = std::process::id() % 10_000;
        let ns = format!("spoolbench{id}");
        let host_if = format!("spb{id}a");
        let ns_if = format!("spb{id}b");
        let (host_ip, ns_ip) = ("10.213.0.1", "10.213.0.2");
        let _ = sh(&["ip", "netns", "del", &ns]);
        let _ = sh(&["ip", "link", "del", &host_if]);
        sh(&["ip", "netns", "add", &ns])?;
        let link = Link {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.into(),
        };
        let rate = format!("{mbit}mbit");
        let in_ns = |a: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", ns.as_str()];
            v.extend_from_slice(a);
            sh(&v)
        };
        sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        sh(&["ip", "link", "set", &ns_if, "netns", &ns])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_if,
        ])?;
        sh(&["ip", "link", "set", &host_if, "up"])?;
        in_ns(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        in_ns(&["ip", "link", "set", &ns_if, "up"])?;
        in_ns(&["ip", "link", "set", "lo", "up"])?;
        // Both directions at the link rate: the recorder's uplink is the
        // namespace side's egress, the answers the host side's.
        for (dev, exec_ns) in [(ns_if.as_str(), true), (host_if.as_str(), false)] {
            let tbf = [
                "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", "64kb",
                "latency", "100ms",
            ];
            if exec_ns { in_ns(&tbf)? } else { sh(&tbf)? }
        }
        Ok(link)
    }

    /// `cmd` run inside the namespace.
    fn exec(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.host_if]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// A TCP relay that delays every byte by `delay` each way without limiting
/// throughput (what netem's delay does): each read is stamped and written
/// out once its time has come, reads going on meanwhile.
async fn delay_relay(
    listener: TcpListener,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    delay: Duration,
) {
    while let Ok((client, _)) = listener.accept().await {
        let Some(to) = *upstream.lock().unwrap() else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(to).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(pipe(cr, sw, delay), pipe(sr, cw, delay));
        });
    }
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, data)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            if w.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// The length of recording `i`: `secs` plus a spread of offsets into a 2 s
/// fragment (0.25 s, 0.65 s, … cycling), so Stop falls at different points.
fn stop_at(secs: u64, i: usize) -> f64 {
    secs as f64 + 0.25 + (i as f64 * 0.4) % 1.75
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// testsrc2 (high motion) at `size`, 30 fps, 20 s, as the screen to play.
fn content(dir: &Path, size: &str) -> PathBuf {
    let path = dir.join(format!("testsrc2-{size}.mp4"));
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args([
            "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
        ])
        .args(["-pix_fmt", "yuv420p", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

struct Run {
    stop_to_complete_ms: f64,
    bytes: f64,
    bitrate_changes: usize,
    local: String,
}

/// Records `secs` (fractional: Stop should fall anywhere in a fragment, not
/// on its boundary, where an unchunked recording has nothing left to send).
fn record(
    link: &Link,
    target: &[&str],
    dir: &Path,
    source: &Path,
    secs: f64,
    extra: &[&str],
) -> Run {
    let o = link
        .exec(&spool_bin())
        .arg("record")
        .args(target)
        .args(["--source", &format!("file:{}", source.display())])
        .args(["--fps", "30", "--duration", &format!("{secs:.2}"), "--json"])
        .args(extra)
        .arg("--output")
        .arg(dir.join("out"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let c = complete(&events);
    Run {
        stop_to_complete_ms: c["stop_to_complete_ms"].as_f64().unwrap(),
        bytes: c["bytes"].as_f64().unwrap(),
        bitrate_changes: events.iter().filter(|e| e["event"] == "bitrate").count(),
        local: c["local_path"].as_str().unwrap().to_owned(),
    }
}

#[tokio::main]
async fn main() {
    let recordings = env_u64("SPOOL_BENCH_RECORDINGS", 10) as usize;
    let secs = env_u64("SPOOL_BENCH_RECORD_SECS", 60);
    let unchunked = env_u64("SPOOL_BENCH_UNCHUNKED", 3) as usize;
    let mbit = env_u64("SPOOL_BENCH_LINK_MBIT", 20);
    let delay = Duration::from_millis(env_u64("SPOOL_BENCH_DELAY_MS", 15));
    let sizes =
        std::env::var("SPOOL_BENCH_RESOLUTIONS").unwrap_or_else(|_| "1280x720,1920x1080".into());
    let link = match Link::create(mbit) {
        Ok(l) => l,
        Err(e) => {
            println!("shaped-link benchmark skipped: it needs root and iproute2 ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind((link.host_ip.as_str(), 0)).await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let upstream = Arc::new(Mutex::new(None));
    tokio::spawn(delay_relay(listener, upstream.clone(), delay));
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--public-url", &public]);
    *upstream.lock().unwrap() = Some(server.addr);
    let target = [
        "--server",
        public.as_str(),
        "--token-id",
        TOKEN_ID,
        "--token-secret",
        TOKEN_SECRET,
    ];
    println!(
        "shaped link: {mbit} Mbit/s each way (tbf on a veth pair into a network namespace), {} ms RTT added in user space; {recordings} recordings of {secs} s per resolution, testsrc2 played as the screen at 30 fps, libx264 ultrafast CRF {}",
        delay.as_millis() * 2,
        spool_encode::Config::DEFAULT_CRF
    );
    println!(
        "{:<10} {:>9} {:>14} {:>14} {:>16} {:>16} {:>9} {:>14}",
        "content",
        "Mbit/s",
        "Stop→link p50",
        "Stop→link p95",
        "unchunked p50",
        "upload-after p50",
        "speedup",
        "bitrate events"
    );
    for size in sizes.split(',') {
        let source = content(dir.path(), size);
        let mut streamed = Vec::new();
        let mut after = Vec::new();
        let mut mbits = Vec::new();
        let mut changes = 0;
        for i in 0..recordings {
            let run_dir = dir.path().join(format!("{size}-{i}"));
            let r = record(&link, &target, &run_dir, &source, stop_at(secs, i), &[]);
            streamed.push(r.stop_to_complete_ms);
            mbits.push(r.bytes * 8.0 / secs as f64 / 1e6);
            changes += r.bitrate_changes;
            // Baseline: the same finished file uploaded after Stop.
            let t0 = Instant::now();
            let o = link
                .exec(&spool_bin())
                .arg("upload")
                .arg(&r.local)
                .args(target)
                .arg("--state-dir")
                .arg(run_dir.join("state-after"))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            after.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        let mut old = Vec::new();
        for i in 0..unchunked {
            let run_dir = dir.path().join(format!("{size}-unchunked-{i}"));
            old.push(
                record(
                    &link,
                    &target,
                    &run_dir,
                    &source,
                    stop_at(secs, i),
                    &["--chunk-ms", "0"],
                )
                .stop_to_complete_ms,
            );
        }
        let p50 = percentile(&streamed, 0.5);
        println!(
            "{:<10} {:>9.1} {:>11.0} ms {:>11.0} ms {:>13} {:>13.0} ms {:>8.0}× {:>14}",
            size,
            mbits.iter().sum::<f64>() / mbits.len() as f64,
            p50,
            percentile(&streamed, 0.95),
            if old.is_empty() {
                "—".to_owned()
            } else {
                format!("{:.0} ms", percentile(&old, 0.5))
            },
            percentile(&after, 0.5),
            percentile(&after, 0.5) / p50.max(1.0),
            changes
        );
        println!(
            "  each Stop→link (ms): {}",
            streamed
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    drop(server);
}
