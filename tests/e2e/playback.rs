//! The share page in a real browser: `spool serve` as a process, headless
//! Chromium through chromedriver. Page states without media (waiting, the
//! error, deleted) and how they switch in place as the asset changes; link
//! previews; the layout on a laptop window and a phone; and real recordings
//! (fragmented MP4 made with ffmpeg, uploaded over TUS) played through the
//! HLS playlist with hls.js: duration at load, poster, seeking, speed,
//! keyboard, and a live recording that becomes a normal video without a
//! reload; a recording's sound, live and ready. Screenshots go to `target/screenshots/` (or `$SPOOL_SCREENSHOTS`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "playback/audio.rs"]
mod audio;
#[path = "playback/pages.rs"]
mod pages;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool_e2e::chromium::{Browser, ChromeDriver, Viewport};
use spool_e2e::*;

/// Browsers are heavy on a small machine: one test drives one at a time.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LAPTOP: Viewport = Viewport::Desktop(1280, 800);
const PHONE: Viewport = Viewport::Phone(390, 844);

struct Fixture {
    dir: tempfile::TempDir,
    server: SpoolServer,
    driver: ChromeDriver,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let driver = ChromeDriver::start().await;
    Fixture {
        dir,
        server,
        driver,
    }
}

impl Fixture {
    /// A new asset with `metadata`: (asset id, upload URL).
    async fn create(&self, metadata: Value) -> (String, String) {
        let j = self.server.on_demand(json!({ "metadata": metadata })).await;
        (
            j["asset_id"].as_str().unwrap().to_owned(),
            j["upload_url"].as_str().unwrap().to_owned(),
        )
    }

    fn page(&self, id: &str) -> String {
        format!("{}/v/{id}", self.server.base)
    }

    /// Polls the asset API until `pred` holds.
    async fn wait_asset(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.server.asset(id).await;
            if pred(&a) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {a}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Uploads `data` at `offset` (declaring the length when `last`).
async fn patch(url: &str, offset: u64, data: &[u8], last: bool) {
    let total = offset + data.len() as u64;
    let (status, off) = Tus::default()
        .patch(url, offset, data.to_vec(), last.then_some(total))
        .await;
    assert_eq!((status, off), (204, Some(total)), "PATCH at {offset}");
}

/// A fragmented MP4 like the recorder's: 1280×720 at 30 fps, H.264, a
/// keyframe (and a fragment) every 2 s, `secs` long.
fn recording(dir: &Path, secs: u32) -> PathBuf {
    let out = dir.join(format!("rec-{secs}s.mp4"));
    spool_e2e::media::fmp4(&out, "1280x720", secs, 60);
    out
}

/// Byte offsets where each top-level `moof` box starts.
fn moof_offsets(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= data.len() {
        let size = u32::from_be_bytes(data[i..i + 4].try_into().unwrap()) as usize;
        if &data[i + 4..i + 8] == b"moof" {
            out.push(i);
        }
        if size < 8 {
            break;
        }
        i += size;
    }
    out
}

/// Marks the page so that a reload (which would lose the mark) is seen.
async fn mark(b: &Browser) {
    b.execute("window.__spoolMark = 42; return true").await;
}

async fn still_marked(b: &Browser) -> bool {
    b.execute("return window.__spoolMark === 42").await == true
}

async fn no_horizontal_scroll(b: &Browser) {
    let v = b
        .execute("return [document.documentElement.scrollWidth, innerWidth]")
        .await;
    assert!(v[0].as_u64() <= v[1].as_u64(), "horizontal scroll: {v}");
}

/// Fails if any part of `css` lies outside the viewport.
async fn within_viewport(b: &Browser, css: &str) {
    let v = b
        .execute_with(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();
             return {top: r.top, left: r.left, bottom: r.bottom, right: r.right, w: innerWidth, h: innerHeight};",
            json!([css]),
        )
        .await;
    let f = |k: &str| v[k].as_f64().unwrap();
    assert!(
        f("top") >= 0.0 && f("left") >= 0.0 && f("bottom") <= f("h") && f("right") <= f("w"),
        "{css} is not within the viewport: {v}"
    );
}

async fn text_of(b: &Browser, testid: &str) -> String {
    b.text(&b.testid(testid).await).await
}

async fn paused(b: &Browser) -> Value {
    b.execute("return document.querySelector('video').paused")
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_recording_plays_seeks_and_obeys_the_controls() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    let file = recording(f.dir.path(), 12);
    let expected = duration_s(&file);
    let data = std::fs::read(&file).unwrap();
    let (id, upload) = f
        .create(json!({"filename": "spool-20261201-072230.829.mp4"}))
        .await;
    patch(&upload, 0, &data, true).await;
    let asset = f
        .wait_asset(
            &id,
            "the asset to be ready",
            Duration::from_secs(120),
            |a| a["status"] == "ready",
        )
        .await;
    let mp4_path = reqwest::Url::parse(asset["mp4_url"].as_str().unwrap())
        .unwrap()
        .path()
        .to_owned();

    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    let heading = text_of(&b, "share-title").await;
    assert!(heading.starts_with("Screen recording · "), "{heading}");
    assert!(!heading.contains("spool-2026"), "{heading}");

    // Link previews of a ready recording: the poster and the MP4, absolute.
    let meta = b
        .execute(
            "const m = {}; for (const e of document.querySelectorAll('meta[property], meta[name]'))
               m[e.getAttribute('property') || e.getAttribute('name')] = e.content;
             return m;",
        )
        .await;
    assert_eq!(meta["og:image"], asset["thumbnail_url"], "{meta}");
    assert_eq!(meta["twitter:image"], asset["thumbnail_url"], "{meta}");
    assert_eq!(meta["og:image:width"], "1280", "{meta}");
    assert_eq!(meta["og:image:height"], "720", "{meta}");
    assert_eq!(meta["og:video"], asset["mp4_url"], "{meta}");
    assert_eq!(meta["og:video:secure_url"], asset["mp4_url"], "{meta}");
    assert_eq!(meta["og:video:type"], "video/mp4", "{meta}");
    assert_eq!(
        meta["og:description"], "Screen recording · 0:12 · shared with Spool",
        "{meta}"
    );

    // The duration is right as soon as the metadata is in.
    let duration = b
        .wait_js(
            "the duration",
            "(() => { const v = document.querySelector('[data-testid=share-video]'); return v && v.readyState >= 1 && isFinite(v.duration) && v.duration > 0 && v.duration; })()",
            Duration::from_secs(20),
            "document.querySelector('video')?.readyState",
        )
        .await
        .as_f64()
        .unwrap();
    assert!(
        (duration - expected).abs() <= 0.2,
        "duration {duration} s, the file's {expected} s"
    );
    assert_eq!(
        b.execute("return !!window.Hls && Hls.isSupported()").await,
        true,
        "hls.js plays"
    );

    // The poster.
    let poster = b
        .execute("return document.querySelector('video').getAttribute('poster')")
        .await;
    let poster = poster.as_str().expect("a poster attribute").to_owned();
    let r = reqwest::get(format!("{}{poster}", f.server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");

    // Video and controls fit a 1280×800 window.
    within_viewport(&b, "[data-testid=share-video]").await;
    within_viewport(&b, "[data-testid=speed-select]").await;
    within_viewport(&b, "[data-testid=download-link]").await;
    no_horizontal_scroll(&b).await;

    spool_e2e::chromium::wait_advancing(&b, 1.0, "playback to start").await;
    let shot = b.screenshot_as("ready-1280x800").await;
    eprintln!("screenshot {}", shot.display());

    // A seek to 80 % plays on from there within a second.
    let seek = b
        .execute_async(
            "const v = document.querySelector('video');
             const target = v.duration * 0.8, t0 = performance.now();
             v.currentTime = target;
             v.play().catch(() => {});
             const tick = () => {
               if (!v.seeking && v.currentTime > target + 0.1) return done({ms: performance.now() - t0, target, t: v.currentTime});
               if (performance.now() - t0 > 5000) return done({ms: null, target, t: v.currentTime, rs: v.readyState});
               requestAnimationFrame(tick);
             };
             tick();",
        )
        .await;
    let ms = seek["ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("the seek did not play: {seek}"));
    assert!(ms < 1000.0, "the seek took {ms} ms: {seek}");
    eprintln!(
        "duration at load {duration} s (file {expected} s); seek to 80 % playing after {ms:.0} ms"
    );

    // Speed.
    b.click(
        &b.find("[data-testid=speed-select] option[value='1.5']")
            .await,
    )
    .await;
    assert_eq!(
        b.execute("return document.querySelector('video').playbackRate")
            .await,
        1.5
    );
    b.click(&b.find("[data-testid=speed-select] option[value='1']").await)
        .await;

    // Space toggles, with the focus on the page (not a form control).
    b.execute("document.activeElement && document.activeElement.blur(); return true")
        .await;
    let before = paused(&b).await;
    b.press(" ").await;
    assert_eq!(paused(&b).await, json!(!before.as_bool().unwrap()));
    b.press(" ").await;
    assert_eq!(paused(&b).await, before);
    // ← steps back 5 s.
    let t = b
        .execute("const v = document.querySelector('video'); v.pause(); return v.currentTime")
        .await
        .as_f64()
        .unwrap();
    b.press("\u{E012}").await;
    let t2 = b
        .execute("return document.querySelector('video').currentTime")
        .await
        .as_f64()
        .unwrap();
    assert!((t - 5.0 - t2).abs() < 0.3, "{t} → {t2}");
    // L steps on 10 s (clamped to the end), M mutes and unmutes.
    b.execute("document.querySelector('video').currentTime = 1; return true")
        .await;
    b.press("l").await;
    let t3 = b
        .execute("return document.querySelector('video').currentTime")
        .await
        .as_f64()
        .unwrap();
    assert!((t3 - 11.0).abs() < 0.3, "1 → {t3}");
    b.press("j").await;
    let t4 = b
        .execute("return document.querySelector('video').currentTime")
        .await
        .as_f64()
        .unwrap();
    assert!((t4 - 1.0).abs() < 0.3, "{t3} → {t4}");
    let muted = b
        .execute("return document.querySelector('video').muted")
        .await;
    b.press("m").await;
    assert_eq!(
        b.execute("return document.querySelector('video').muted")
            .await,
        json!(!muted.as_bool().unwrap())
    );
    b.press("m").await;
    assert_eq!(
        b.execute("return document.querySelector('video').muted")
            .await,
        muted
    );
    // In a form control the keys are the control's: space on the speed
    // select does not toggle playback.
    let before = paused(&b).await;
    b.execute("document.querySelector('[data-testid=speed-select]').focus(); return true")
        .await;
    b.press("k").await;
    assert_eq!(paused(&b).await, before);
    b.execute("document.activeElement.blur(); return true")
        .await;

    // Download.
    let link = b.testid("download-link").await;
    assert_eq!(
        b.attr(&link, "href").await.as_deref(),
        Some(mp4_path.as_str())
    );
    assert!(b.attr(&link, "download").await.is_some());
    let r = reqwest::get(format!("{}{mp4_path}", f.server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    b.close().await;

    // A phone.
    let phone = f.driver.browser(PHONE).await;
    phone.goto(&f.page(&id)).await;
    no_horizontal_scroll(&phone).await;
    within_viewport(&phone, "[data-testid=share-video]").await;
    spool_e2e::chromium::wait_advancing(&phone, 0.5, "playback on the phone").await;
    phone.screenshot_as("ready-phone").await;
    phone.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_recording_plays_live_then_becomes_the_video_without_a_reload() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    let file = recording(f.dir.path(), 16);
    let expected = duration_s(&file);
    let data = std::fs::read(&file).unwrap();
    let moofs = moof_offsets(&data);
    assert!(moofs.len() >= 8, "{} fragments", moofs.len());
    // The first half of the fragments, as a recorder uploads while it records.
    let cut = moofs[moofs.len() / 2];
    let (id, upload) = f.create(json!({"title": "Live demo"})).await;
    patch(&upload, 0, &data[..cut], false).await;
    f.wait_asset(&id, "the asset to be live", Duration::from_secs(60), |a| {
        a["live"] == true
    })
    .await;

    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    mark(&b).await;
    let badge = b.testid("live-badge").await;
    b.wait_js(
        "the live badge",
        "(() => { const e = document.querySelector('[data-testid=live-badge]'); return e && !e.hidden && e.offsetWidth > 0; })()",
        Duration::from_secs(10),
        "document.body.innerHTML",
    )
    .await;
    assert_eq!(b.text(&badge).await.to_lowercase(), "live");
    spool_e2e::chromium::wait_advancing(&b, 0.5, "live playback").await;
    let shot = b.screenshot_as("live-1280x800").await;
    eprintln!("screenshot {}", shot.display());

    // The recording ends: the same player carries on as a normal video.
    patch(&upload, cut as u64, &data[cut..], true).await;
    b.wait_js(
        "the badge to go",
        "document.querySelector('[data-testid=live-badge]').hidden",
        Duration::from_secs(60),
        "document.body.dataset.status",
    )
    .await;
    let duration = b
        .wait_js(
            "the full duration",
            &format!("(() => {{ const d = document.querySelector('video').duration; return isFinite(d) && Math.abs(d - {expected}) <= 0.2 && d; }})()"),
            Duration::from_secs(30),
            "document.querySelector('video').duration",
        )
        .await;
    assert!(still_marked(&b).await, "the page reloaded");
    // It plays through to the part that arrived after the page loaded.
    b.execute(&format!(
        "document.querySelector('video').currentTime = {}; return true",
        expected - 3.0
    ))
    .await;
    spool_e2e::chromium::wait_playing_past(&b, expected - 2.5, "playback of the end").await;
    eprintln!("duration once ended: {duration}");
    b.screenshot_as("live-ended-1280x800").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processing_recording_shows_its_progress_then_plays_without_a_reload() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    // MPEG-4 Part 2 in AVI: the processor transcodes it, which takes a while.
    let file = f.dir.path().join("in.avi");
    spool_e2e::media::ffmpeg_make(
        &file,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-t",
            "30",
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
        ],
    );
    let data = std::fs::read(&file).unwrap();
    let (id, upload) = f.create(json!({"title": "Transcoded"})).await;
    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    mark(&b).await;
    patch(&upload, 0, &data, true).await;
    let progress = b
        .wait_js(
            "the progress",
            "document.querySelector('[data-testid=share-progress]')?.textContent",
            Duration::from_secs(30),
            "document.body.innerText",
        )
        .await;
    assert!(progress.as_str().unwrap().ends_with('%'), "{progress}");
    let shot = b.screenshot_as("processing-1280x800").await;
    eprintln!("screenshot {}", shot.display());
    f.wait_asset(
        &id,
        "the asset to be ready",
        Duration::from_secs(180),
        |a| a["status"] == "ready",
    )
    .await;
    b.wait_js(
        "the player",
        "!!document.querySelector('[data-testid=share-video]') && !document.querySelector('[data-testid=share-progress]')",
        Duration::from_secs(10),
        "document.body.innerText",
    )
    .await;
    spool_e2e::chromium::wait_advancing(&b, 0.5, "playback after processing").await;
    assert!(still_marked(&b).await, "the page reloaded");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_plays_from_its_own_origin_whatever_the_share_url_says() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Share links (and so the asset's absolute media URLs) name a host this
    // browser never reaches; the page it loaded from here still plays.
    let server = SpoolServer::start(
        &dir.path().join("data"),
        0,
        &["--share-url", "http://spool.invalid:9"],
    );
    let driver = ChromeDriver::start().await;
    let f = Fixture {
        dir,
        server,
        driver,
    };
    let file = recording(f.dir.path(), 4);
    let data = std::fs::read(&file).unwrap();
    let (id, upload) = f.create(json!({"title": "Elsewhere"})).await;
    patch(&upload, 0, &data, true).await;
    let a = f
        .wait_asset(&id, "the asset to be ready", Duration::from_secs(60), |a| {
            a["status"] == "ready"
        })
        .await;
    assert!(
        a["playback_url"]
            .as_str()
            .unwrap()
            .starts_with("http://spool.invalid:9/"),
        "{a}"
    );
    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    spool_e2e::chromium::wait_advancing(&b, 0.5, "playback").await;
    let poster = b
        .execute("return document.querySelector('video').getAttribute('poster')")
        .await;
    assert_eq!(poster, format!("/v/{id}/poster.jpg"));
    b.close().await;
}
