//! The recorder's controls in the window: a countdown that delays the first
//! frame by its length (and can be cancelled), pause and resume that leave
//! the pause out of the video with nothing captured meanwhile, and titles —
//! typed before Start, shown on the share page, renamed in the history and
//! on the server.

use std::time::{Duration, Instant};

use spool_e2e::timeline::{frames_in, longest_step, runs};

use super::*;

async fn pressed(s: &Session) -> bool {
    let b = s.testid("pause-button").await;
    s.attr(&b, "aria-pressed").await.as_deref() == Some("true")
}

async fn click_pause(s: &Session, want: bool) {
    let b = s.testid("pause-button").await;
    s.click(&b).await;
    s.wait_for("the pause button", Duration::from_secs(5), async |s| {
        (pressed(s).await == want).then_some(())
    })
    .await;
}

/// The share page's heading, as the server renders it.
async fn share_title(link: &str) -> String {
    let html = reqwest::get(link).await.unwrap().text().await.unwrap();
    let at = html.find("data-testid=\"share-title\"").expect("a title");
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    html[start..end].to_owned()
}

async fn server_title(base: &str, auth: &str, asset: &str) -> serde_json::Value {
    server_asset(base, auth, asset).await.0["title"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn countdown_pause_and_titles_through_the_window() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = App::new(dir.path(), None);
    for (k, v) in &mut app.env {
        if k == "SPOOL_COUNTDOWN" {
            *v = "3".into();
        }
    }
    let (driver, s) = app.launch(1).await;

    // A default title is there before anything is typed.
    let title = s.testid("title-input").await;
    let default = s.prop(&title, "value").await;
    assert!(
        default
            .as_str()
            .is_some_and(|t| t.starts_with("Recording 20")),
        "{default}"
    );

    // The countdown shows, and Cancel ends it with nothing recorded.
    let record_button = s.testid("record-button").await;
    s.click(&record_button).await;
    s.wait_for("the countdown", Duration::from_secs(5), async |s| {
        let c = s.testid("countdown").await;
        matches!(s.text(&c).await.as_str(), "3" | "2").then_some(())
    })
    .await;
    assert!(
        status(&s).await.starts_with("starting in"),
        "{}",
        status(&s).await
    );
    let cancel = s.testid("countdown-cancel").await;
    s.click(&cancel).await;
    wait_status(&s, "ready", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        status(&s).await,
        "ready",
        "a cancelled countdown records nothing"
    );
    assert!(
        s.find_all("[data-testid=\"history-item\"]")
            .await
            .is_empty(),
        "nothing in the history"
    );

    // Record with a title; the countdown delays the first frame by 3 s: red
    // until 1.5 s after the click is never in the video.
    s.type_text(&title, "Demo for the team").await;
    app.x.paint("red");
    let clicked = Instant::now();
    s.click(&record_button).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.x.paint("green");
    wait_status(&s, "recording", Duration::from_secs(10)).await;
    let counted = clicked.elapsed();
    assert!(
        counted >= Duration::from_millis(2900),
        "capture started {counted:?} after the click"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Pause: the status says so (the upload's own state follows), the
    // elapsed time stands still, and what is shown meanwhile is not recorded.
    click_pause(&s, true).await;
    let paused_at = Instant::now();
    // The button answers at once; the status follows with the next view.
    s.wait_for(
        "upload-status \"paused…\"",
        Duration::from_secs(3),
        async |s| status(s).await.starts_with("paused").then_some(()),
    )
    .await;
    app.x.paint("blue");
    let frozen = text(&s, "elapsed-time").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        text(&s, "elapsed-time").await,
        frozen,
        "the clock stands still"
    );
    assert!(status(&s).await.starts_with("paused"));
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(paused_at.elapsed())).await;
    app.x.paint("yellow");
    click_pause(&s, false).await;
    let resumed_at = Instant::now();
    wait_status(&s, "recording", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.x.paint("white");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop(&s).await;
    let stopped_at = Instant::now();

    let link = share_link(&s, Duration::from_secs(60)).await;
    let asset = asset_of(&link);
    history_state(&s, &asset, "complete", Duration::from_secs(10)).await;
    let (base, auth) = embedded_server(&app.data);
    let local = local_recording(&app.data);
    assert_stored(&base, &auth, &asset, &local).await;

    // The app's own account: the pause, and the length without it.
    let pause = s.testid("pause-button").await;
    let paused_ms: u64 = s
        .attr(&pause, "data-paused-ms")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let elapsed = s.testid("elapsed-time").await;
    let duration_ms: u64 = s
        .attr(&elapsed, "data-duration-ms")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let pause_wall = resumed_at.duration_since(paused_at).as_millis() as i64;
    assert!(
        (paused_ms as i64 - pause_wall).abs() < 600,
        "paused {paused_ms} ms; the test paused about {pause_wall} ms"
    );
    // Start to Stop, seen from here: within the click and status latency.
    let wall = stopped_at.duration_since(clicked).as_millis() as i64 - 3000;
    let recorded = (duration_ms + paused_ms) as i64;
    assert!(
        (recorded - wall).abs() < 1000,
        "{duration_ms} ms recorded + {paused_ms} ms paused vs ~{wall} ms from Start to Stop"
    );

    // The video lasts the recorded time minus the pause, within one frame.
    // The app records at 30 fps by default.
    let period = 1.0 / 30.0;
    let d = duration_s(&local);
    println!("video {d:.3} s; recorded {duration_ms} ms, paused {paused_ms} ms");
    assert!(
        (d - duration_ms as f64 / 1000.0).abs() <= period,
        "video {d:.3} s vs {duration_ms} ms recorded"
    );
    // The window (960×680 at the top left, no window manager to move it)
    // covers most of the display: the colours are read right of it.
    let f = frames_in(&local, Some((1000, 0, 280, 720)));
    let r = runs(&f);
    let colours: Vec<&str> = r.iter().map(|r| r.colour).collect();
    assert_eq!(colours, ["green", "yellow", "white"], "{r:?}");
    let step = r[1].first - r[0].last;
    assert!(
        step <= 1.5 * period,
        "{step:.3} s across the pause: a frozen stretch"
    );
    let longest = longest_step(&f);
    assert!(
        longest <= 3.0 * period,
        "a {longest:.3} s hole in the timeline"
    );

    // The title typed before Start is the share page's; a rename in the
    // history changes it here, on the server and on the page.
    assert_eq!(share_title(&link).await, "Demo for the team");
    assert_eq!(
        server_title(&base, &auth, &asset).await,
        "Demo for the team"
    );
    let item_title = s
        .find("[data-testid=\"history-item\"] [data-testid=\"history-title\"]")
        .await;
    assert_eq!(s.text(&item_title).await, "Demo for the team");
    let rename = s
        .find("[data-testid=\"history-item\"] [data-testid=\"history-rename\"]")
        .await;
    s.click(&rename).await;
    let input = s.testid("history-rename-input").await;
    s.type_text(&input, "Quarterly review").await;
    let save = s.testid("history-rename-save").await;
    s.click(&save).await;
    s.wait_for("the new title", Duration::from_secs(10), async |s| {
        let t = s
            .find_all("[data-testid=\"history-item\"] [data-testid=\"history-title\"]")
            .await;
        let t = t.first()?;
        (s.text(t).await == "Quarterly review").then_some(())
    })
    .await;
    let message = s.testid("history-message").await;
    assert_eq!(
        s.attr(&message, "data-on-server").await.as_deref(),
        Some("renamed")
    );
    assert_eq!(server_title(&base, &auth, &asset).await, "Quarterly review");
    assert_eq!(share_title(&link).await, "Quarterly review");
    app.quit(driver, s).await;
}
