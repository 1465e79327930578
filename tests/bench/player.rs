//! Player benchmark (issue 10): in headless Chromium, how long until the
//! duration is known, the first frame plays, and a seek to 80 % plays — for
//! the share page (HLS through hls.js), the indexed MP4 (`mp4_url`), and the
//! raw fragmented MP4 as the share page served it before; on loopback and
//! through a proxy adding 50 ms to every request, counting the requests.
//!
//! Environment: SPOOL_BENCH_PLAYER_SECS (default 60, the recording's length).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use spool_e2e::chromium::{ChromeDriver, Viewport};
use spool_e2e::media::*;
use spool_e2e::proxy::{FaultProxy, Faults};
use spool_e2e::*;

/// Measures in the page: the video element `sel` (after `start`, a JS
/// statement that may set its src) until its duration is known (within
/// 0.2 s of `d`), until its first frame plays, and a seek to 80 %.
const MEASURE: &str = r#"
const [sel, d, start] = arguments;
const t0 = performance.now();
const until = (f) => new Promise((res) => { const tick = () => f() ? res(performance.now()) : setTimeout(tick, 5); tick(); });
(async () => {
  try {
    if (start) eval(start);
    await until(() => document.querySelector(sel));
    const v = document.querySelector(sel);
    v.muted = true;
    const known = await until(() => Number.isFinite(v.duration) && Math.abs(v.duration - d) < 0.2);
    const p = v.play(); if (p && p.catch) p.catch(() => {});
    const first = await until(() => v.currentTime > 0.05 && !v.paused);
    const target = d * 0.8;
    const s0 = performance.now();
    v.currentTime = target;
    const seek = await until(() => v.currentTime > target + 0.05 && !v.seeking);
    done({ok: true, nav_ms: t0, known_ms: known, first_ms: first, seek_ms: seek - s0, duration: v.duration});
  } catch (e) { done({ok: false, error: String(e)}); }
})();
"#;

async fn measure(
    driver: &ChromeDriver,
    url: &str,
    sel: &str,
    start: &str,
    d: f64,
) -> serde_json::Value {
    let b = driver.browser(Viewport::Desktop(1280, 800)).await;
    b.goto(url).await;
    let script = MEASURE.replacen(
        "const [sel, d, start] = arguments;",
        &format!(
            "const [sel, d, start] = [{}, {d}, {}];",
            serde_json::json!(sel),
            serde_json::json!(start)
        ),
        1,
    );
    let r = b.execute_async(&script).await;
    b.close().await;
    r
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let secs = env_u64("SPOOL_BENCH_PLAYER_SECS", 60);
    // About 7.5 Mbit/s, 2 s fragments: the issue's 60 s, 56 MB example.
    let file = dir.path().join("rec.mp4");
    ffmpeg_make(
        &file,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "7500k",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    );
    let d = duration_s(&file);
    let mb = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let r = server
        .on_demand(serde_json::json!({"metadata": {"title": "bench", "fragments": "keyframe"}}))
        .await;
    let url = r["upload_url"].as_str().unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let resp = reqwest::Client::new()
        .patch(url)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("upload-length", bytes.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let id = r["asset_id"].as_str().unwrap().to_owned();
    wait_status(&server, &id, "ready", Duration::from_secs(30)).await;

    let driver = ChromeDriver::start().await;
    println!(
        "Chromium, a {d:.1} s 1080p fragmented MP4 ({mb:.1} MB, 2 s fragments): ms from navigation"
    );
    for delay in [None, Some(Duration::from_millis(50))] {
        let proxy = FaultProxy::start(
            server.addr,
            Faults {
                request_delay: delay,
                ..Faults::default()
            },
        )
        .await;
        let base = proxy.url();
        let video = |src: &str| {
            format!(
                "document.body.innerHTML = ''; const v = document.createElement('video'); v.id = 'bench'; v.preload = 'metadata'; v.src = {}; document.body.append(v);",
                serde_json::json!(src)
            )
        };
        let cases = [
            (
                "share page (HLS, hls.js)",
                format!("{base}/v/{id}"),
                "[data-testid=share-video]".to_owned(),
                String::new(),
            ),
            (
                "indexed MP4 (mp4_url)",
                format!("{base}/healthz"),
                "#bench".to_owned(),
                video(&format!("{base}/v/{id}/video.mp4")),
            ),
            (
                "raw fMP4 (before)",
                format!("{base}/healthz"),
                "#bench".to_owned(),
                video(&format!("{base}/v/{id}/media")),
            ),
        ];
        let label = match delay {
            None => "loopback".to_owned(),
            Some(d) => format!("+{} ms per request", d.as_millis()),
        };
        for (name, page, sel, start) in &cases {
            let before = proxy.stats.requests().len();
            let m = measure(&driver, page, sel, start, d).await;
            let requests = proxy.stats.requests().len() - before;
            if m["ok"] != true {
                println!("  {label:>22} · {name:<26} failed: {m}");
                continue;
            }
            let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {label:>22} · {name:<26} duration known {:>6.0} · first frame {:>6.0} · seek to 80 % plays in {:>5.0} · {requests} requests",
                f("known_ms"),
                f("first_ms"),
                f("seek_ms"),
            );
        }
    }
}
