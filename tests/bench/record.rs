//! Recording benchmark (issue 4): encode fps and CPU use per preset at 720p,
//! 1080p and 4K; X11 capture fps from Xvfb at 1080p; and Stop→complete
//! latency of `spool record` over several recordings (p50, p95) against the
//! baseline of uploading the same finished file after Stop.
//!
//! Environment: SPOOL_BENCH_RECORDINGS (default 10), SPOOL_BENCH_RECORD_SECS
//! (default 30), SPOOL_BENCH_PRESETS (default ultrafast,superfast,veryfast).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use spool_capture::{Frame, Source, Synthetic};
use spool_e2e::*;

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn encode_bench(width: u32, height: u32, preset: &str, frames: u64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut src = Synthetic::new(width, height).unwrap();
    let pool: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut b = Vec::new();
            src.grab(i * 7, &mut b).unwrap();
            b
        })
        .collect();
    let (tx, _rx) = std::sync::mpsc::channel();
    let config = spool_encode::Config {
        path: dir.path().join("bench.mp4"),
        width,
        height,
        max_height: None,
        fps: 30,
        fragment: Duration::from_secs(2),
        preset: preset.into(),
        crf: spool_encode::Config::DEFAULT_CRF,
        audio: None,
        chunk: Some(spool_encode::Config::DEFAULT_CHUNK),
        rate: None,
    };
    let mut enc = spool_encode::Encoder::open(config, tx).unwrap();
    let (t0, c0) = (Instant::now(), cpu_time());
    for i in 0..frames {
        let frame = Frame {
            data: pool[(i % 8) as usize].clone(),
            width,
            height,
            pts: Duration::from_millis(i * 1000 / 30),
            index: i,
        };
        enc.push(&frame).unwrap();
    }
    enc.finish().unwrap();
    let (wall, cpu) = (t0.elapsed(), cpu_time() - c0);
    (
        frames as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
    )
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[tokio::main]
async fn main() {
    let presets = std::env::var("SPOOL_BENCH_PRESETS")
        .unwrap_or_else(|_| "ultrafast,superfast,veryfast".into());
    println!(
        "encode benchmark: synthetic moving pattern, libx264 zerolatency CRF {}, 2-core machine",
        spool_encode::Config::DEFAULT_CRF
    );
    println!(
        "{:<12} {:<10} {:>10} {:>8}",
        "resolution", "preset", "fps", "CPU %"
    );
    for (w, h, frames) in [(1280, 720, 300), (1920, 1080, 180), (3840, 2160, 60)] {
        for preset in presets.split(',') {
            let (fps, cpu) = encode_bench(w, h, preset, frames);
            println!(
                "{:<12} {:<10} {:>10.1} {:>8.0}",
                format!("{w}x{h}"),
                preset,
                fps,
                cpu
            );
        }
    }

    let x = Xvfb::start(1920, 1080);
    x.paint("gray");
    let mut src = spool_capture::open(&spool_capture::SourceSpec::X11 {
        display: Some(x.display.clone()),
        target: spool_capture::X11Target::Display,
    })
    .unwrap();
    let mut buf = Vec::new();
    let t0 = Instant::now();
    let n = 600;
    for i in 0..n {
        src.grab(i, &mut buf).unwrap();
    }
    println!(
        "\ncapture: {} at {:.0} fps (grab + copy, cursor included)",
        src.describe(),
        n as f64 / t0.elapsed().as_secs_f64()
    );
    drop(x);

    let recordings = env_u64("SPOOL_BENCH_RECORDINGS", 10);
    let secs = env_u64("SPOOL_BENCH_RECORD_SECS", 30);
    // An 8 Mbit/s uplink (1 MB/s), through the test proxy.
    let uplink = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let proxy = spool_e2e::proxy::FaultProxy::start_unconnected(spool_e2e::proxy::Faults {
        throttle_bps: Some(uplink),
        ..Default::default()
    })
    .await;
    let public = proxy.url();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--public-url", &public]);
    proxy.set_upstream(server.addr);
    let target = [
        "--server",
        public.as_str(),
        "--token-id",
        TOKEN_ID,
        "--token-secret",
        TOKEN_SECRET,
    ];
    let (mut streamed, mut after) = (Vec::new(), Vec::new());
    let mut sizes = Vec::new();
    for i in 0..recordings {
        let out = dir.path().join(format!("out{i}"));
        let o = Command::new(spool_bin())
            .arg("record")
            .args(target)
            .args([
                "--source",
                "synthetic:1920x1080",
                "--fps",
                "30",
                "--duration",
                &secs.to_string(),
                "--json",
                "--output",
            ])
            .arg(&out)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let c: serde_json::Value = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "complete")
            .unwrap();
        streamed.push(c["stop_to_complete_ms"].as_f64().unwrap());
        sizes.push(c["bytes"].as_f64().unwrap());
        // Baseline: the same finished file, uploaded only after Stop.
        let t0 = Instant::now();
        let o = Command::new(spool_bin())
            .arg("upload")
            .arg(c["local_path"].as_str().unwrap())
            .args(target)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        assert!(o.status.success());
        after.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let mb = sizes.iter().sum::<f64>() / sizes.len() as f64 / 1e6;
    println!(
        "\nstop→complete over {recordings} recordings of {secs} s (synthetic 1920x1080 at 30 fps, ultrafast, ~{mb:.1} MB each, {:.0} Mbit/s uplink):",
        uplink as f64 * 8.0 / 1e6
    );
    println!(
        "  upload while recording (spool record): p50 {:.0} ms, p95 {:.0} ms",
        percentile(&mut streamed.clone(), 0.5),
        percentile(&mut streamed, 0.95)
    );
    println!(
        "  upload after Stop (spool upload of the finished file): p50 {:.0} ms, p95 {:.0} ms",
        percentile(&mut after.clone(), 0.5),
        percentile(&mut after, 0.95)
    );

    // Stop while paused: the pause closed the last fragment and it uploaded
    // during the pause, so Stop only declares the length.
    let mut paused_stops = Vec::new();
    for i in 0..3 {
        let mut rec = Proc::spawn({
            let mut c = Command::new(spool_bin());
            c.arg("record")
                .args(target)
                .args([
                    "--source",
                    "synthetic:1920x1080",
                    "--fps",
                    "30",
                    "--json",
                    "--output",
                ])
                .arg(dir.path().join(format!("paused{i}")))
                .arg("--state-dir")
                .arg(dir.path().join("state"));
            c
        });
        let is = |l: &str, name: &str| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["event"] == name)
        };
        rec.wait_line(Duration::from_secs(30), |l| {
            is(l, "fragment") && l.contains("\"index\":4")
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        rec.sigusr1();
        rec.wait_line(Duration::from_secs(10), |l| is(l, "paused"));
        tokio::time::sleep(Duration::from_secs(4)).await;
        rec.sigterm();
        let (status, lines) = rec.finish(Duration::from_secs(60));
        assert!(status.success(), "{lines:?}");
        let c = complete(&json_lines(&lines));
        paused_stops.push(c["stop_to_complete_ms"].as_f64().unwrap());
    }
    println!(
        "  Stop while paused (4 s into a pause, same uplink): {}",
        paused_stops
            .iter()
            .map(|ms| format!("{ms:.0} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
