//! Sound in the window, on a private PulseAudio server: the microphone
//! picked in the window is recorded (its level shows while recording, Mute
//! records silence in its place) into the file the server stores; without
//! an audio server the default setting records video only and says why.

use std::time::{Duration, Instant};

use spool_e2e::audio::{Pulse, decode, power, rms, tone, window};

use super::*;

async fn level(s: &Session, id: &str) -> f64 {
    let e = s.testid(id).await;
    s.attr(&e, "data-level")
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

async fn mute_pressed(s: &Session) -> bool {
    let b = s.testid("mute-button").await;
    s.attr(&b, "aria-pressed").await.as_deref() == Some("true")
}

async fn click_mute(s: &Session, want: bool) {
    let b = s.testid("mute-button").await;
    s.click(&b).await;
    s.wait_for("the mute button", Duration::from_secs(5), async |s| {
        (mute_pressed(s).await == want).then_some(())
    })
    .await;
}

/// Picks `value` in the `<select>` of `testid` as a user does (its option
/// clicked), waiting until the choice is saved.
async fn pick(s: &Session, testid: &str, value: &str, settings: &Path, saved: &str) {
    let o = s
        .find(&format!(
            "[data-testid=\"{testid}\"] option[value=\"{value}\"]"
        ))
        .await;
    s.click(&o).await;
    s.wait_for(
        &format!("{testid} = {value} saved"),
        Duration::from_secs(10),
        async |_| {
            std::fs::read_to_string(settings)
                .is_ok_and(|t| t.contains(saved))
                .then_some(())
        },
    )
    .await;
}

/// Each 100 ms window of `samples`: (its start in seconds, its 440 Hz
/// power, its 1 kHz power, its level).
fn windows(samples: &[f32]) -> Vec<(f64, f64, f64, f64)> {
    let n = samples.len() as f64 / 48_000.0;
    let mut out = Vec::new();
    let mut t = 0.0;
    while t + 0.1 <= n {
        let w = window(samples, t, t + 0.1);
        out.push((t, power(w, 440.0), power(w, 1000.0), rms(w)));
        t += 0.1;
    }
    out
}

/// How long the test tone plays, in seconds.
const PLAYED: f64 = 7.0;

#[tokio::test(flavor = "multi_thread")]
async fn records_the_chosen_microphone_with_its_level_and_mute() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start();
    let sound = tone(dir.path(), 440, PLAYED);
    let mut app = App::new(dir.path(), None);
    app.env.push(("PULSE_SERVER".into(), pulse.server()));
    let (driver, s) = app.launch(1).await;

    // The virtual microphone is listed by its description, and picked.
    let mic = s.testid("mic-select").await;
    assert_eq!(
        s.prop(&mic, "value").await,
        "default",
        "not chosen yet: the default microphone when there is one"
    );
    let labels = s
        .execute("return [...document.querySelectorAll('[data-testid=mic-select] option')].map(o => o.value + '=' + o.textContent)")
        .await;
    assert!(
        labels
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.starts_with("mic=Virtual_Mic"))),
        "{labels}"
    );
    let settings = app.data.join("settings.json");
    pick(&s, "mic-select", "mic", &settings, "\"mic\": \"mic\"").await;
    let toggle = s.testid("system-audio-toggle").await;
    assert_eq!(s.prop(&toggle, "checked").await, false, "off by default");
    let mute = s.testid("mute-button").await;
    assert!(!s.enabled(&mute).await, "no Mute before recording");
    assert_eq!(level(&s, "mic-level").await, 0.0);

    record(&s).await;
    let mut player = pulse.play("micsink", &sound);
    let playing = Instant::now();
    s.wait_for("the mic level", Duration::from_secs(10), async |s| {
        (level(s, "mic-level").await > 0.05).then_some(())
    })
    .await;
    assert_eq!(level(&s, "system-level").await, 0.0, "system sound is off");
    tokio::time::sleep(Duration::from_millis(800)).await;
    click_mute(&s, true).await;
    let muted_at = Instant::now();
    // The button answers at once; the status follows with the next view.
    s.wait_for(
        "audio-status \"Muted…\"",
        Duration::from_secs(3),
        async |s| {
            text(s, "audio-status")
                .await
                .contains("Muted")
                .then_some(())
        },
    )
    .await;
    // Longer than a fragment (2 s): the silence spans a fragment's close.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    click_mute(&s, false).await;
    let muted_for = muted_at.elapsed().as_secs_f64();
    assert!(
        playing.elapsed() < Duration::from_secs_f64(PLAYED - 0.5),
        "the tone still plays after the unmute ({:?})",
        playing.elapsed()
    );
    assert!(player.wait(), "paplay failed");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop(&s).await;
    let link = share_link(&s, Duration::from_secs(60)).await;
    let asset = asset_of(&link);
    history_state(&s, &asset, "complete", Duration::from_secs(10)).await;
    assert_eq!(level(&s, "mic-level").await, 0.0, "no level once stopped");
    assert!(!s.enabled(&mute).await, "no Mute once stopped");

    // The uploaded file: the tone, less what was muted.
    let (base, auth) = embedded_server(&app.data);
    assert_stored(&base, &auth, &asset, &local_recording(&app.data)).await;
    let (_, bytes) = server_asset(&base, &auth, &asset).await;
    let uploaded = dir.path().join("uploaded.mp4");
    std::fs::write(&uploaded, &bytes).unwrap();
    let samples = decode(&uploaded);
    let w = windows(&samples);
    let is_tone = |x: &(f64, f64, f64, f64)| x.1 > 0.005 && x.1 > 100.0 * x.2;
    let trace: Vec<String> = w.iter().map(|x| format!("{:.1}:{:.3}", x.0, x.1)).collect();
    println!("440 Hz power per 100 ms: {}", trace.join(" "));
    let tone_windows: Vec<_> = w.iter().filter(|x| is_tone(x)).collect();
    let heard = tone_windows.len() as f64 * 0.1;
    let first = tone_windows.first().expect("the tone is recorded").0;
    let last = tone_windows.last().unwrap().0 + 0.1;
    println!(
        "tone heard {heard:.1} s of {PLAYED} s played, {first:.1}–{last:.1} s; muted {muted_for:.2} s"
    );
    // The tone is what was recorded: strong at 440 Hz, nothing at 1 kHz.
    // (per window: Goertzel over windows put end to end would see phase jumps)
    let mean = |f: fn(&(f64, f64, f64, f64)) -> f64| {
        tone_windows.iter().map(|x| f(x)).sum::<f64>() / tone_windows.len() as f64
    };
    let (p440, p1k) = (mean(|x| x.1), mean(|x| x.2));
    assert!(
        p440 > 0.05 && p440 > 1000.0 * p1k,
        "440 Hz {p440} vs 1 kHz {p1k}"
    );
    assert!(heard >= 1.0, "only {heard:.1} s of the tone recorded");
    // Part of the tone was muted: recorded as silence, for as long as the
    // button was pressed (the clicks' round trips make it a little loose).
    let silent_inside = w
        .iter()
        .filter(|x| x.0 >= first && x.0 + 0.1 <= last && x.3 < 0.003)
        .count() as f64
        * 0.1;
    println!("{silent_inside:.1} s of silence between the tone's first and last sound");
    assert!(
        (silent_inside - muted_for).abs() <= 0.5,
        "{silent_inside:.1} s of silence for {muted_for:.2} s muted"
    );
    app.quit(driver, s).await;

    // The choice is remembered at the next launch.
    let (driver, s) = app.launch(2).await;
    let mic = s.testid("mic-select").await;
    assert_eq!(s.prop(&mic, "value").await, "mic");
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_audio_server_the_default_records_video_only_and_says_why() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = App::new(dir.path(), None);
    app.env
        .push(("PULSE_SERVER".into(), "unix:/nonexistent/socket".into()));
    let (driver, s) = app.launch(1).await;

    let mic = s.testid("mic-select").await;
    assert_eq!(s.prop(&mic, "value").await, "none");
    let why = text(&s, "audio-status").await;
    assert!(
        why.starts_with("No microphone:") && why.contains("no audio server"),
        "{why}"
    );

    record(&s).await;
    let mute = s.testid("mute-button").await;
    assert!(!s.enabled(&mute).await, "nothing to mute");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = text(&s, "audio-status").await;
    assert!(during.contains("No microphone"), "{during}");
    stop(&s).await;
    let link = share_link(&s, Duration::from_secs(60)).await;
    let asset = asset_of(&link);
    history_state(&s, &asset, "complete", Duration::from_secs(10)).await;
    let after = text(&s, "audio-status").await;
    assert!(
        after.starts_with("No microphone:") && after.contains("no audio server"),
        "{after}"
    );
    let error = s.testid("error-message").await;
    assert_eq!(s.prop(&error, "hidden").await, true, "no error shown");

    // Video only, stored whole.
    let (base, auth) = embedded_server(&app.data);
    let local = local_recording(&app.data);
    assert_stored(&base, &auth, &asset, &local).await;
    let streams = ffprobe(
        &local,
        &["-show_entries", "stream=codec_type", "-of", "csv=p=0"],
    );
    assert_eq!(streams.trim(), "video", "{streams}");
    app.quit(driver, s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chosen_microphone_that_is_gone_fails_start_with_err_audio_unavailable() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut pulse = Pulse::start();
    let mut app = App::new(dir.path(), None);
    app.env.push(("PULSE_SERVER".into(), pulse.server()));
    let (driver, s) = app.launch(1).await;
    let settings = app.data.join("settings.json");
    pick(&s, "mic-select", "mic", &settings, "\"mic\": \"mic\"").await;
    // Unplugged before Start.
    pulse.unload_mic();
    let button = s.testid("record-button").await;
    s.click(&button).await;
    let error = s.testid("error-message").await;
    s.wait_for("the start error", Duration::from_secs(20), async |s| {
        s.attr(&error, "data-code")
            .await
            .filter(|c| c == "ERR_AUDIO_UNAVAILABLE")
    })
    .await;
    assert!(!s.text(&error).await.is_empty());
    assert_eq!(status(&s).await, "ready", "nothing is recorded");
    assert!(
        s.find_all("[data-testid=\"history-item\"]")
            .await
            .is_empty()
    );
    app.quit(driver, s).await;
}
