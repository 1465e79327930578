//! Processing and playback benchmark (issue 10): upload-complete → ready for
//! 1, 10 and 60 minute synthetic 1080p recordings; how long after a
//! fragment is finished it is in the live playlist; processing throughput
//! for a remux and for a transcode of a non-H.264 input.
//!
//! Environment: SPOOL_BENCH_MINUTES (default "1,10,60"),
//! SPOOL_BENCH_LIVE_SECS (default 20).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use spool_e2e::media::*;
use spool_e2e::*;

const CHUNK: usize = 16 * 1024 * 1024;

/// Uploads `file` to a new on-demand asset in CHUNK PATCHes (deferred
/// length, declared on the last); returns (asset id, share url, the instant
/// the last PATCH was answered).
async fn upload(
    server: &SpoolServer,
    file: &Path,
    metadata: serde_json::Value,
) -> (String, String, Instant) {
    let r = server
        .on_demand(serde_json::json!({ "metadata": metadata }))
        .await;
    let url = r["upload_url"].as_str().unwrap().to_owned();
    let bytes = std::fs::read(file).unwrap();
    let http = reqwest::Client::new();
    let mut offset = 0usize;
    let mut done = Instant::now();
    while offset < bytes.len() {
        let end = (offset + CHUNK).min(bytes.len());
        let mut req = http
            .patch(&url)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream");
        if end == bytes.len() {
            req = req.header("upload-length", bytes.len().to_string());
        }
        let resp = req.body(bytes[offset..end].to_vec()).send().await.unwrap();
        assert_eq!(resp.status(), 204);
        done = Instant::now();
        offset = end;
    }
    (
        r["asset_id"].as_str().unwrap().to_owned(),
        r["share_url"].as_str().unwrap().to_owned(),
        done,
    )
}

/// Polls until the asset is ready; the time from `since`.
async fn ready_after(server: &SpoolServer, id: &str, since: Instant) -> Duration {
    loop {
        let a = server.asset(id).await;
        if a["status"] == "ready" {
            return since.elapsed();
        }
        assert_ne!(a["status"], "errored", "{a}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn mb(path: &Path) -> f64 {
    std::fs::metadata(path).unwrap().len() as f64 / 1e6
}

async fn ready_by_length(dir: &Path, minutes: &[u64]) {
    let base = dir.join("base-60s.mp4");
    fmp4(&base, "1920x1080", 60, 60);
    let server = SpoolServer::start(&dir.join("data"), 0, &[]);
    println!("upload complete → ready, 1080p30 fragmented MP4 (2 s fragments):");
    for &m in minutes {
        let file = dir.join(format!("rec-{m}min.mp4"));
        let secs = (m * 60).to_string();
        ffmpeg_make(
            &file,
            &[
                "-stream_loop",
                "-1",
                "-i",
                base.to_str().unwrap(),
                "-t",
                &secs,
                "-c",
                "copy",
                "-movflags",
                "frag_keyframe+empty_moov+default_base_moof",
            ],
        );
        let (id, _, done) =
            upload(&server, &file, serde_json::json!({"fragments": "keyframe"})).await;
        let after = ready_after(&server, &id, done).await;
        println!(
            "  {m:>3} min ({:>7.1} MB): ready {:>6.0} ms after the last byte",
            mb(&file),
            after.as_secs_f64() * 1000.0
        );
        std::fs::remove_file(&file).unwrap();
        assert_eq!(server.delete_asset(&id).await, 204);
    }
}

async fn live_publish_latency(dir: &Path, secs: u64) {
    let server = SpoolServer::start(&dir.join("live-data"), 0, &[]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut rec = Proc::spawn(spool_record(
        &dir.join("state"),
        &dir.join("out"),
        &target,
        &[
            "--source",
            "synthetic:1920x1080",
            "--fps",
            "30",
            "--fragment-secs",
            "2",
            "--duration",
            &secs.to_string(),
        ],
    ));
    let created: serde_json::Value = serde_json::from_str(
        &rec.wait_line(Duration::from_secs(30), |l| l.contains("\"created\"")),
    )
    .unwrap();
    let share = created["share_url"].as_str().unwrap().to_owned();
    // The recorder's fragment events (when each fragment was finished) and
    // the playlist's growth, watched side by side.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        loop {
            let line = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rec.wait_line(Duration::from_secs(60), |l| {
                    l.contains("\"fragment\"") || l.contains("\"complete\"")
                })
            }));
            match line {
                Ok(l) if l.contains("\"fragment\"") => {
                    let _ = tx.send(Instant::now());
                }
                _ => return,
            }
        }
    });
    let mut finished: Vec<Instant> = Vec::new();
    let mut published: Vec<Instant> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    loop {
        while let Ok(t) = rx.try_recv() {
            finished.push(t);
        }
        if let Some(p) = playlist(&share).await {
            while published.len() < p.segments.len() {
                published.push(Instant::now());
            }
            if p.ended {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = reader.join();
    // The last fragment is sent at Stop; compare the ones before it.
    let n = finished.len().min(published.len()).saturating_sub(1);
    let mut lat: Vec<f64> = (0..n)
        .map(|i| {
            published[i]
                .saturating_duration_since(finished[i])
                .as_secs_f64()
                * 1000.0
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    if lat.is_empty() {
        println!("live: no fragments compared");
        return;
    }
    println!(
        "live, 1080p30 synthetic, 2 s fragments: a finished fragment is in the playlist after p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms ({} fragments; poll every 10 ms)",
        lat[lat.len() / 2],
        lat[(lat.len() * 95 / 100).min(lat.len() - 1)],
        lat[lat.len() - 1],
        lat.len()
    );
}

async fn throughput(dir: &Path) {
    let server = SpoolServer::start(&dir.join("tp-data"), 0, &[]);
    let remux = dir.join("regular-1080p.mp4");
    ffmpeg_make(
        &remux,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    );
    let (id, _, done) = upload(&server, &remux, serde_json::json!({})).await;
    let t = ready_after(&server, &id, done).await.as_secs_f64();
    println!(
        "remux (H.264+AAC MP4 → fragmented MP4 + index + poster): {:.1} MB in {:.2} s = {:.0} MB/s",
        mb(&remux),
        t,
        mb(&remux) / t
    );
    let transcode = dir.join("mpeg4-1080p.avi");
    ffmpeg_make(
        &transcode,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-t",
            "20",
            "-c:v",
            "mpeg4",
            "-q:v",
            "4",
        ],
    );
    let (id, _, done) = upload(&server, &transcode, serde_json::json!({})).await;
    let t = ready_after(&server, &id, done).await.as_secs_f64();
    println!(
        "transcode (MPEG-4 Part 2 1080p30 → H.264 veryfast): {:.1} MB, 600 frames in {:.2} s = {:.1} MB/s, {:.0} fps",
        mb(&transcode),
        t,
        mb(&transcode) / t,
        600.0 / t
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let minutes: Vec<u64> = std::env::var("SPOOL_BENCH_MINUTES")
        .unwrap_or_else(|_| "1,10,60".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    ready_by_length(dir.path(), &minutes).await;
    live_publish_latency(dir.path(), env_u64("SPOOL_BENCH_LIVE_SECS", 20)).await;
    throughput(dir.path()).await;
}
