//! End-to-end tests of `spool record`: real X11 capture under Xvfb, real
//! FFmpeg encoding, real uploads to `spool serve` while recording — checked
//! by decoding what the server stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "record/adaptive.rs"]
mod adaptive;
#[path = "record/audio.rs"]
mod audio;
#[path = "record/controls.rs"]
mod controls;
#[path = "record/exit_codes.rs"]
mod exit_codes;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spool_e2e::proxy::{FaultProxy, Faults};
use spool_e2e::*;

/// Whether `line` is the `fragment` event of fragment `index`.
fn is_fragment(line: &str, index: u64) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .is_ok_and(|v| v["event"] == "fragment" && v["index"] == index)
}

/// Mean RGB of the decoded frame at `t` seconds.
fn mean_rgb_at(path: &Path, t: f64) -> [u32; 3] {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{t:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = (out.stdout.len() / 3) as u64;
    let mut s = [0u64; 3];
    for px in out.stdout.chunks_exact(3) {
        for k in 0..3 {
            s[k] += px[k] as u64;
        }
    }
    [(s[0] / n) as u32, (s[1] / n) as u32, (s[2] / n) as u32]
}

/// Downloads the uploaded recording and checks it equals the local file.
async fn uploaded_equals_local(
    complete: &serde_json::Value,
    base: &str,
    dir: &Path,
) -> std::path::PathBuf {
    let local = std::fs::read(complete["local_path"].as_str().unwrap()).unwrap();
    let uploaded = Tus::default()
        .get(&rebase(complete["upload_url"].as_str().unwrap(), base))
        .await;
    assert_eq!(
        sha256_hex(&uploaded),
        sha256_hex(&local),
        "the uploaded file differs from the local recording"
    );
    assert_eq!(complete["sha256"].as_str().unwrap(), sha256_hex(&local));
    let path = dir.join("uploaded.mp4");
    std::fs::write(&path, uploaded).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn x11_capture_shows_the_colours_painted_at_their_times() {
    let dir = tempfile::tempdir().unwrap();
    let x = Xvfb::start(320, 240);
    x.paint("red");
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let source = format!("x11:{}", x.display);
    let mut rec = Proc::spawn(spool_record(
        &dir.path().join("state"),
        &dir.path().join("out"),
        &target,
        &[
            "--source",
            &source,
            "--fps",
            "10",
            "--fragment-secs",
            "1",
            "--duration",
            "5",
        ],
    ));
    // The first fragment is announced about one second into the recording.
    rec.wait_line(Duration::from_secs(20), |l| l.contains("\"fragment\""));
    x.paint("blue");
    let (status, mut lines) = rec.finish(Duration::from_secs(60));
    assert!(status.success(), "{lines:?}");
    lines.insert(0, r#"{"event":"fragment"}"#.into());
    let c = complete(&json_lines(&lines));
    let uploaded = uploaded_equals_local(&c, &server.base, dir.path()).await;
    let [r, g, b] = mean_rgb_at(&uploaded, 0.3);
    assert!(
        r > 200 && g < 40 && b < 40,
        "at 0.3 s expected red, got {r},{g},{b}"
    );
    let [r, g, b] = mean_rgb_at(&uploaded, 4.0);
    assert!(
        b > 200 && r < 40 && g < 40,
        "at 4.0 s expected blue, got {r},{g},{b}"
    );
    let d = duration_s(&uploaded);
    assert!((d - 5.0).abs() < 0.3, "duration {d}");
    assert_eq!(c["dropped"], 0);
    assert_eq!(frame_count(&uploaded), c["frames"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_60_second_recording_is_mostly_uploaded_before_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &[]);
    let target = server_args(&server.base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let (status, lines) = Proc::spawn(spool_record(
        &dir.path().join("state"),
        &dir.path().join("out"),
        &target,
        &[
            "--source",
            "synthetic:640x360",
            "--fps",
            "15",
            "--fragment-secs",
            "2",
            "--duration",
            "60",
        ],
    ))
    .finish(Duration::from_secs(150));
    assert!(status.success(), "{lines:?}");
    let events = json_lines(&lines);
    let c = complete(&events);
    let total = c["bytes"].as_u64().unwrap();
    let stop = events
        .iter()
        .position(|e| e["event"] == "stopped")
        .expect("a stopped event");
    let confirmed_before_stop = events[..stop]
        .iter()
        .filter(|e| e["event"] == "progress")
        .map(|e| e["confirmed"].as_u64().unwrap())
        .max()
        .unwrap_or(0);
    assert!(
        confirmed_before_stop * 10 >= total * 9,
        "only {confirmed_before_stop} of {total} bytes were acknowledged before Stop"
    );
    assert!(c["stop_to_complete_ms"].as_u64().is_some(), "{c}");
    let fragments: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "fragment").collect();
    assert!(fragments.len() >= 30, "{} fragments", fragments.len());
    for f in &fragments[..fragments.len() - 1] {
        let ms = f["duration_ms"].as_u64().unwrap();
        assert!((1990..=2010).contains(&ms), "fragment of {ms} ms: {f}");
    }
    let uploaded = uploaded_equals_local(&c, &server.base, dir.path()).await;
    let d = duration_s(&uploaded);
    assert!((d - 60.0).abs() < 0.5, "duration {d}");
    assert_eq!(frame_count(&uploaded), c["frames"].as_u64().unwrap());
    // Every fragment starts with a keyframe: keyframes every 2 s exactly.
    let keys = ffprobe(
        &uploaded,
        &[
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ],
    );
    let keys: Vec<f64> = keys
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(keys.len(), fragments.len(), "{keys:?}");
    for (i, k) in keys.iter().enumerate() {
        assert!((k - 2.0 * i as f64).abs() < 0.08, "keyframe {i} at {k}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_20_second_network_cut_costs_no_frames_and_the_upload_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = FaultProxy::start_unconnected(Faults::default()).await;
    let public = proxy.url();
    let server = SpoolServer::start(&dir.path().join("data"), 0, &["--public-url", &public]);
    proxy.set_upstream(server.addr);
    let target = server_args(&proxy.url());
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let mut rec = Proc::spawn(spool_record(
        &dir.path().join("state"),
        &dir.path().join("out"),
        &target,
        &[
            "--source",
            "synthetic:640x360",
            "--fps",
            "10",
            "--fragment-secs",
            "1",
            "--duration",
            "36",
        ],
    ));
    rec.wait_line(Duration::from_secs(30), |l| is_fragment(l, 5));
    proxy.set_down(true);
    tokio::time::sleep(Duration::from_secs(20)).await;
    proxy.set_down(false);
    let (status, lines) = rec.finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:?}");
    let events = json_lines(&lines);
    assert!(
        events.iter().any(|e| e["event"] == "reconnecting"),
        "the cut shows as reconnecting"
    );
    let c = complete(&events);
    assert_eq!(c["dropped"], 0, "the network cut must not cost frames");
    let uploaded = uploaded_equals_local(&c, &server.base, dir.path()).await;
    assert!((duration_s(&uploaded) - 36.0).abs() < 0.5);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_recording_then_resume_uploads_the_complete_fragments() {
    let seen = kill_9_while_recording_then_resume("tus").await;
    assert!(seen.iter().all(|r| r.interop.is_none()), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn draft_kill_9_while_recording_then_resume_uploads_the_complete_fragments() {
    let seen = kill_9_while_recording_then_resume("ietf").await;
    // The on-demand POST is Spool's API; every upload request is the draft's.
    let upload: Vec<_> = seen.iter().filter(|r| r.method != "POST").collect();
    assert!(upload.iter().any(|r| r.method == "PATCH"), "{upload:?}");
    assert!(upload.iter().all(|r| r.is_draft()), "{upload:?}");
}

/// `spool record --protocol <protocol>` through a proxy, killed by -9
/// after four fragments, then `spool resume`: the upload is every complete
/// chunk, a prefix of the local file. Returns what the proxy saw.
async fn kill_9_while_recording_then_resume(protocol: &str) -> Vec<spool_e2e::proxy::Seen> {
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
            "1",
            "--protocol",
            protocol,
        ],
    ));
    rec.wait_line(Duration::from_secs(30), |l| is_fragment(l, 3));
    rec.kill9();

    let (_, uploaded) = resume_and_fetch(&state, &server.base, &[]).await;
    let path = dir.path().join("uploaded.mp4");
    std::fs::write(&path, &uploaded).unwrap();
    // Every complete chunk (CMAF chunks of 250 ms, appended as written), at
    // least the four fragments announced (10 frames each), and nothing
    // torn: the upload is a run of whole top-level boxes, ending with an mdat.
    let frames = frame_count(&path);
    assert!(frames >= 40, "{frames} frames");
    let mut at = 0usize;
    let mut last = [0u8; 4];
    while at < uploaded.len() {
        let size = u32::from_be_bytes(uploaded[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && at + size <= uploaded.len(),
            "a torn box at {at}"
        );
        last.copy_from_slice(&uploaded[at + 4..at + 8]);
        at += size;
    }
    assert_eq!(&last, b"mdat");
    let local = std::fs::read(only_file(&dir.path().join("out"))).unwrap();
    assert_eq!(
        &local[..uploaded.len()],
        &uploaded[..],
        "the upload is a prefix of the local recording"
    );
    proxy.stats.requests()
}

#[test]
fn without_a_target_it_records_locally_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(spool_bin())
        .args([
            "record",
            "--source",
            "synthetic:320x240",
            "--fps",
            "10",
            "--duration",
            "2",
            "--output",
        ])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env_remove("SPOOL_SERVER_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("recording locally only"));
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "mp4"))
        .unwrap()
        .path();
    assert!((duration_s(&file) - 2.0).abs() < 0.3);

    for (args, needle) in [
        (vec!["--source", "vnc"], "unknown source"),
        (vec!["--source", "x11::4242"], ":4242"),
        (
            vec!["--source", "synthetic", "--fragment-secs", "0.1"],
            "fragment-secs",
        ),
        (vec!["--source", "synthetic", "--region", "1,2,3"], "region"),
    ] {
        let out = Command::new(spool_bin())
            .arg("record")
            .args(&args)
            .arg("--output")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_network_down_throughout_the_recording_is_kept_and_resume_uploads_it() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here yet: the whole recording happens offline.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let target = server_args(&base);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    let state = dir.path().join("state");
    let out = spool_record(
        &state,
        &dir.path().join("out"),
        &target,
        &[
            "--source",
            "synthetic:320x240",
            "--fps",
            "10",
            "--fragment-secs",
            "1",
            "--duration",
            "3",
            "--upload-patience",
            "2",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "recorded but not uploaded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("spool resume"));
    let local = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        (duration_s(&local) - 3.0).abs() < 0.3,
        "the local recording is complete"
    );

    // The network is back: resume creates the upload (it needs the
    // credentials, which the journal never stores) and sends it all.
    let server = SpoolServer::start(&dir.path().join("data"), port, &[]);
    let (_, uploaded) = resume_and_fetch(&state, &server.base, &target).await;
    assert_eq!(
        sha256_hex(&uploaded),
        sha256_hex(&std::fs::read(&local).unwrap())
    );
}
