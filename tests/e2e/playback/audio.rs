//! A recording with sound, made by `spool record` (a synthetic 440 Hz
//! microphone) and uploaded while it is made: the asset says `has_audio`,
//! and the share page decodes its sound in Chromium live and once ready.

use std::time::Duration;

use serde_json::Value;
use spool_e2e::chromium::wait_playing_past;
use spool_e2e::*;

use super::{LAPTOP, ONE_BROWSER_AT_A_TIME, fixture};

/// Audio bytes the page's video element has decoded so far.
const DECODED: &str = "document.querySelector('video').webkitAudioDecodedByteCount";

#[tokio::test(flavor = "multi_thread")]
async fn the_share_page_plays_the_recordings_sound_live_and_when_ready() {
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let f = fixture().await;
    let target = server_args(&f.server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut rec = Proc::spawn(spool_record(
        &f.dir.path().join("state"),
        &f.dir.path().join("out"),
        &target,
        &[
            "--source",
            "synthetic:320x240",
            "--fps",
            "15",
            "--duration",
            "10",
            "--mic",
            "synthetic:440",
        ],
    ));
    let created: Value = serde_json::from_str(&rec.wait_line(Duration::from_secs(30), |l| {
        l.contains(r#""event":"created""#)
    }))
    .unwrap();
    let id = created["asset_id"].as_str().unwrap().to_owned();
    let live = f
        .wait_asset(
            &id,
            "the recording to play live",
            Duration::from_secs(30),
            |a| a["live"] == true,
        )
        .await;
    assert_eq!(live["has_audio"], true, "{live}");
    let b = f.driver.browser(LAPTOP).await;
    b.goto(&f.page(&id)).await;
    wait_playing_past(&b, 0.5, "the live recording to play").await;
    b.wait_js(
        "decoded sound, live",
        &format!("{DECODED} > 0"),
        Duration::from_secs(20),
        DECODED,
    )
    .await;

    let (status, _) = rec.finish(Duration::from_secs(60));
    assert!(status.success());
    let ready = f
        .wait_asset(
            &id,
            "the asset to be ready",
            Duration::from_secs(120),
            |a| a["status"] == "ready",
        )
        .await;
    assert_eq!(ready["has_audio"], true, "{ready}");
    b.goto(&f.page(&id)).await;
    wait_playing_past(&b, 1.0, "the ready recording to play").await;
    b.wait_js(
        "decoded sound, ready",
        &format!("{DECODED} > 0"),
        Duration::from_secs(20),
        DECODED,
    )
    .await;
    b.close().await;
}
