//! `spool record`'s controls. Paused and resumed with SIGUSR1: nothing is
//! captured while paused, the fragment being written is closed at the pause
//! and uploaded during it, and the video plays straight through — its length
//! is the recorded time minus the pause, within one frame period. A
//! countdown delays the start by its length; a title reaches the server.

use std::time::{Duration, Instant};

use spool_e2e::timeline::{frames, longest_step, runs};
use spool_e2e::*;

fn event(line: &str, name: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["event"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigusr1_pauses_and_resumes_and_the_video_plays_straight_through() {
    let dir = tempfile::tempdir().unwrap();
    let x = Xvfb::start(320, 240);
    x.paint("red");
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let source = format!("x11:{}", x.display);
    const FPS: f64 = 30.0;
    const TOTAL_S: f64 = 11.0;
    let mut rec = Proc::spawn(spool_record(
        &dir.path().join("state"),
        &dir.path().join("out"),
        &target,
        &[
            "--source",
            &source,
            "--fps",
            "30",
            "--fragment-secs",
            "2",
            "--duration",
            &TOTAL_S.to_string(),
            "--title",
            "Paused from the terminal",
        ],
    ));
    let created: serde_json::Value =
        serde_json::from_str(&rec.wait_line(Duration::from_secs(20), |l| event(l, "created")))
            .unwrap();
    let asset_id = created["asset_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    x.paint("green");
    // Mid-fragment (2 s fragments): the pause must close this one early.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    rec.sigusr1();
    let paused_at = Instant::now();
    rec.wait_line(Duration::from_secs(5), |l| event(l, "paused"));
    // The fragment being written is closed at the pause...
    let cut: serde_json::Value =
        serde_json::from_str(&rec.wait_line(Duration::from_secs(5), |l| event(l, "fragment")))
            .unwrap();
    assert_eq!(cut["reason"], "pause", "{cut}");
    assert!(cut["duration_ms"].as_u64().unwrap() < 2000, "{cut}");
    // Shown while paused: must not be in the recording.
    x.paint("blue");
    let file = only_file(&dir.path().join("out"));
    let size_at_pause = std::fs::metadata(&file).unwrap().len();
    // ...and everything recorded before the pause reaches the server during it.
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let a = server.asset(&asset_id).await;
        if a["offset"].as_u64() == Some(size_at_pause) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all uploaded during the pause: {a}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = Duration::from_secs(5).saturating_sub(paused_at.elapsed());
    tokio::time::sleep(left).await;
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        size_at_pause,
        "nothing is written while paused"
    );
    x.paint("yellow");
    rec.sigusr1();
    rec.wait_line(Duration::from_secs(5), |l| event(l, "resumed"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    x.paint("white");

    let (status, mut lines) = rec.finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    lines.insert(0, created.to_string());
    let events = json_lines(&lines);
    let c = complete(&events);
    let paused_ms = c["paused_ms"].as_u64().unwrap();
    assert!(
        (4900..5600).contains(&paused_ms),
        "paused {paused_ms} ms for a 5 s pause"
    );
    let uploaded = Tus::default()
        .get(&rebase(c["upload_url"].as_str().unwrap(), &server.base))
        .await;
    let local_bytes = std::fs::read(&file).unwrap();
    assert_eq!(sha256_hex(&uploaded), sha256_hex(&local_bytes));
    let path = dir.path().join("uploaded.mp4");
    std::fs::write(&path, &uploaded).unwrap();

    // The length is the recorded time minus the pause, within a frame.
    let period = 1.0 / FPS;
    let expected = TOTAL_S - paused_ms as f64 / 1000.0;
    let d = duration_s(&path);
    println!("duration {d:.3} s, expected {expected:.3} s (paused {paused_ms} ms)");
    assert!(
        (d - expected).abs() <= period,
        "duration {d:.3} s vs {expected:.3} s recorded"
    );
    let f = frames(&path);
    let steps = longest_step(&f);
    assert!(steps <= 2.0 * period, "a {steps:.3} s hole in the timeline");
    let r = runs(&f);
    let colours: Vec<&str> = r.iter().map(|r| r.colour).collect();
    assert_eq!(colours, ["red", "green", "yellow", "white"], "{r:?}");
    // The frame after the pause follows the last one before it at once: no
    // frozen stretch where the pause was.
    let (green, yellow) = (&r[1], &r[2]);
    let step = yellow.first - green.last;
    assert!(
        step <= 1.5 * period,
        "{step:.3} s between the pause's two sides"
    );
    // The first frame after the pause is a keyframe that starts a fragment.
    assert!(
        keyframe_times(&path)
            .iter()
            .filter_map(|t| t.parse::<f64>().ok())
            .any(|t| (t - yellow.first).abs() < 0.002),
        "no keyframe at the resume ({:.3} s)",
        yellow.first
    );
    let a = server.asset(&asset_id).await;
    assert_eq!(a["title"], "Paused from the terminal", "{a}");
}

/// A network cut and then kill -9 while paused behave as they do while
/// recording, and lose less: the pause already closed the last fragment, so
/// `spool resume` uploads the whole local file.
#[tokio::test(flavor = "multi_thread")]
async fn a_network_cut_and_kill_9_while_paused_lose_nothing() {
    use spool_e2e::proxy::{FaultProxy, Faults};
    let dir = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start_unconnected(Faults::default()).await;
    let public = proxy.url();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--public-url", &public]);
    proxy.set_upstream(server.addr);
    let target = server_args(&proxy.url());
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let state = dir.path().join("state");
    let mut rec = Proc::spawn(spool_record(
        &state,
        &dir.path().join("out"),
        &target,
        &[
            "--source",
            "synthetic:320x240",
            "--fps",
            "10",
            "--fragment-secs",
            "2",
        ],
    ));
    rec.wait_line(Duration::from_secs(30), |l| {
        event(l, "fragment") && l.contains("\"index\":1")
    });
    proxy.set_down(true);
    tokio::time::sleep(Duration::from_millis(700)).await;
    rec.sigusr1();
    rec.wait_line(Duration::from_secs(5), |l| event(l, "paused"));
    let cut: serde_json::Value =
        serde_json::from_str(&rec.wait_line(Duration::from_secs(5), |l| event(l, "fragment")))
            .unwrap();
    assert_eq!(cut["reason"], "pause");
    // Still paused, the network still down: the upload retries.
    rec.wait_line(Duration::from_secs(20), |l| event(l, "reconnecting"));
    rec.kill9();
    proxy.set_down(false);

    let (_, uploaded) = resume_and_fetch(&state, &server.base, &[]).await;
    let local = std::fs::read(only_file(&dir.path().join("out"))).unwrap();
    assert_eq!(
        sha256_hex(&uploaded),
        sha256_hex(&local),
        "everything recorded before the pause is uploaded"
    );
    let path = dir.path().join("uploaded.mp4");
    std::fs::write(&path, &uploaded).unwrap();
    // Two whole 2 s fragments and the 0.7 s one the pause closed.
    let frames = frame_count(&path);
    assert!((45..=50).contains(&frames), "{frames} frames");
}

#[test]
fn a_countdown_delays_the_start_by_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(spool_bin())
        .args([
            "record",
            "--json",
            "--source",
            "synthetic:160x120",
            "--fps",
            "10",
        ])
        .args(["--duration", "1", "--countdown", "2", "--output"])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env_remove("SPOOL_SERVER_URL")
        .env_remove("SPOOL_COUNTDOWN")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let events = json_lines(&lines);
    let countdown: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "countdown")
        .map(|e| e["seconds"].as_u64().unwrap())
        .collect();
    assert_eq!(countdown, [2, 1]);
    assert!(
        took >= Duration::from_secs(3),
        "{took:?} for a 2 s countdown and 1 s recording"
    );
    let c = complete(&events);
    let ms = c["duration_ms"].as_u64().unwrap();
    // The countdown is not part of the recording.
    assert!((950..=1050).contains(&ms), "{ms} ms recorded");
    assert_eq!(c["paused_ms"], 0);
}
