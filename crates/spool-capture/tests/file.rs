//! The video file source against files the system `ffmpeg` makes: ticks map
//! to the file's own time whatever the recording's rate (repeating or
//! skipping frames), the file loops with its timeline running on, the pixels
//! come out as BGRA, and bad files fail at open with the path named. No test
//! sleeps: grabs are called with tick numbers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use spool_capture::{CaptureError, Captured, Clock, FileSource, Source, SourceSpec};

/// Runs the system `ffmpeg` to make `name` in `dir`.
fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("the ffmpeg binary (scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg failed making {name}");
    out
}

/// 64x48 at 10 fps: one second of red, then one of blue (20 frames).
fn red_then_blue(dir: &Path) -> PathBuf {
    ffmpeg(
        dir,
        "colours.mp4",
        &[
            "-filter_complex",
            "color=c=red:s=64x48:r=10:d=1[a];color=c=blue:s=64x48:r=10:d=1[b];[a][b]concat=n=2:v=1:a=0",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// 320x240 at 10 fps for 2 s of FFmpeg's moving test pattern.
fn test_pattern(dir: &Path) -> PathBuf {
    ffmpeg(
        dir,
        "in.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Colour {
    Red,
    Blue,
}

/// The solid colour of a BGRA frame; panics unless every pixel is red or
/// every pixel is blue (within YUV rounding) and opaque.
fn colour(buf: &[u8]) -> Colour {
    const RED: [u8; 4] = [0, 0, 255, 255];
    const BLUE: [u8; 4] = [255, 0, 0, 255];
    let near = |px: &[u8], want: [u8; 4]| px.iter().zip(want).all(|(&a, b)| a.abs_diff(b) <= 8);
    let first = &buf[..4];
    let want = if near(first, RED) {
        (Colour::Red, RED)
    } else if near(first, BLUE) {
        (Colour::Blue, BLUE)
    } else {
        panic!("neither red nor blue (BGRA): {first:?}");
    };
    for px in buf.chunks_exact(4) {
        assert!(near(px, want.1), "{px:?} in a {:?} frame", want.0);
    }
    want.0
}

/// What the red-then-blue file shows `t` seconds in, looping every 2 s.
fn expected(t: f64) -> Colour {
    if t.rem_euclid(2.0) < 1.0 {
        Colour::Red
    } else {
        Colour::Blue
    }
}

/// Grabs ticks `0..ticks` at `fps` and checks each against the file's time.
fn plays_red_then_blue_at(fps: u32, ticks: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = red_then_blue(dir.path());
    let mut src = FileSource::open(&path, fps).unwrap();
    assert_eq!(src.size(), (64, 48));
    let mut buf = Vec::new();
    for i in 0..ticks {
        src.grab(i, &mut buf).unwrap();
        assert_eq!(buf.len(), 64 * 48 * 4);
        let t = i as f64 / f64::from(fps);
        assert_eq!(
            colour(&buf),
            expected(t),
            "tick {i} at {fps} fps (t = {t} s)"
        );
    }
}

#[test]
fn plays_at_its_own_rate_and_loops_with_the_timeline_running_on() {
    // 46 ticks: 4.6 s, past two loops.
    plays_red_then_blue_at(10, 46);
}

#[test]
fn repeats_frames_when_the_recording_rate_is_higher() {
    plays_red_then_blue_at(20, 90);
}

#[test]
fn skips_frames_when_the_recording_rate_is_lower() {
    plays_red_then_blue_at(5, 23);
    // A rate that does not divide the file's.
    plays_red_then_blue_at(3, 14);
}

#[test]
fn the_boundaries_fall_on_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = FileSource::open(&red_then_blue(dir.path()), 10).unwrap();
    let mut buf = Vec::new();
    for (tick, want) in [
        (0, Colour::Red),
        (9, Colour::Red),
        (10, Colour::Blue),
        (19, Colour::Blue),
        (20, Colour::Red),
        (29, Colour::Red),
        (30, Colour::Blue),
        (1000, Colour::Red),
        (1010, Colour::Blue),
    ] {
        src.grab(tick, &mut buf).unwrap();
        assert_eq!(colour(&buf), want, "tick {tick}");
    }
}

#[test]
fn an_earlier_tick_starts_the_file_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = FileSource::open(&red_then_blue(dir.path()), 10).unwrap();
    let mut buf = Vec::new();
    for (tick, want) in [
        (15, Colour::Blue),
        (3, Colour::Red),
        (12, Colour::Blue),
        (0, Colour::Red),
    ] {
        src.grab(tick, &mut buf).unwrap();
        assert_eq!(colour(&buf), want, "tick {tick}");
    }
}

#[test]
fn the_tick_rate_set_later_is_the_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = red_then_blue(dir.path());
    // As `start` does for a source from `open`: tick 15 is 0.75 s at 20 fps
    // (red), where at 10 fps it would be 1.5 s (blue).
    let mut src = spool_capture::open(&SourceSpec::File(path)).unwrap();
    src.set_tick_rate(20);
    let mut buf = Vec::new();
    src.grab(15, &mut buf).unwrap();
    assert_eq!(colour(&buf), Colour::Red);
    src.grab(20, &mut buf).unwrap();
    assert_eq!(colour(&buf), Colour::Blue);
}

#[test]
fn start_hands_the_recording_rate_to_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = red_then_blue(dir.path());
    let src =
        spool_capture::open(&SourceSpec::parse(&format!("file:{}", path.display()), None).unwrap())
            .unwrap();
    // Ticks 20..30 at 20 fps are 1.0–1.5 s: blue. Had the source kept the
    // 30 fps `open` gives it, they would be red. Judged by each frame's tick
    // number, so a slow machine that misses ticks still passes.
    let (mut cap, rx) = spool_capture::start(src, 20, 64, Arc::new(Clock::new())).unwrap();
    let mut seen_blue = false;
    for item in rx.iter() {
        let Captured::Frame(f) = item else { continue };
        let t = f.index as f64 / 20.0;
        assert_eq!(colour(&f.data), expected(t), "tick {}", f.index);
        if f.index >= 20 {
            seen_blue = true;
            break;
        }
    }
    cap.stop();
    drop(rx);
    cap.join().unwrap();
    assert!(seen_blue, "no frame at 1 s or later");
}

#[test]
fn a_test_pattern_moves_reports_its_rate_and_loops_to_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let path = test_pattern(dir.path());
    let mut src = FileSource::open(&path, 10).unwrap();
    assert_eq!(src.size(), (320, 240));
    assert_eq!(src.frame_rate(), Some(10.0));
    assert_eq!(
        src.describe(),
        format!("file {} 320x240 @ 10 fps", path.display())
    );
    let grab = |src: &mut FileSource, i| {
        let mut buf = Vec::new();
        src.grab(i, &mut buf).unwrap();
        assert_eq!(buf.len(), 320 * 240 * 4);
        buf
    };
    let first = grab(&mut src, 0);
    let fifth = grab(&mut src, 5);
    assert_ne!(first, fifth, "the pattern moves");
    assert!(first.chunks_exact(4).all(|px| px[3] == 255), "opaque");
    // 2 s later the loop shows the very same decoded frames.
    assert_eq!(grab(&mut src, 20), first);
    assert_eq!(grab(&mut src, 25), fifth);
    assert_eq!(grab(&mut src, 40), first);
}

/// The error `open` gives for `path`, which must name it.
fn open_error(path: &Path) -> String {
    let err = match FileSource::open(path, 30) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    };
    assert!(matches!(err, CaptureError::File { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn a_missing_file_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let msg = open_error(&dir.path().join("nowhere.mp4"));
    assert!(msg.contains("No such file"), "{msg}");
    // The same through the spec, as the CLI opens it.
    let spec = SourceSpec::parse("file:/nonexistent/dir:with:colons/x.mp4", None).unwrap();
    let err = spool_capture::open(&spec).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/dir:with:colons/x.mp4"), "{err}");
}

#[test]
fn a_text_file_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["notes.txt", "not-a-video.mp4"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "hello, this is not a video\n").unwrap();
        let msg = open_error(&path);
        assert!(msg.contains("cannot open"), "{msg}");
    }
}

#[test]
fn a_file_without_video_fails_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = ffmpeg(dir.path(), "sound.wav", &["-f", "lavfi", "-i", "sine=d=1"]);
    let msg = open_error(&path);
    assert!(msg.contains("no video stream"), "{msg}");
}

#[test]
fn a_bad_tick_rate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = red_then_blue(dir.path());
    for fps in [0, 241] {
        assert!(matches!(
            FileSource::open(&path, fps),
            Err(CaptureError::Invalid(_))
        ));
    }
}
