//! The encoder's output is one valid fragmented MP4: init + fragments,
//! contiguous, each fragment a moof that starts with a keyframe, durations
//! as configured, and ffprobe reads the right duration and frame count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use spool_capture::{Frame, Source, Synthetic};
use spool_encode::{Config, Encoder, Event};
use spool_testkit::{ffprobe, keyframe_times};

fn config(path: &std::path::Path, fps: u32, fragment_ms: u64) -> Config {
    Config {
        path: path.to_path_buf(),
        width: 640,
        height: 360,
        max_height: None,
        fps,
        fragment: Duration::from_millis(fragment_ms),
        preset: Config::DEFAULT_PRESET.into(),
        crf: Config::DEFAULT_CRF,
        audio: None,
        chunk: None,
        rate: None,
    }
}

/// The fragments among the events.
fn fragments(events: &[Event]) -> Vec<&spool_encode::Fragment> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// Encodes test-pattern frame `i` at `ms` on the timeline.
fn push(enc: &mut Encoder, src: &mut Synthetic, i: u64, ms: u64) {
    let mut data = Vec::new();
    src.grab(i, &mut data).unwrap();
    enc.push(&Frame {
        data,
        width: 640,
        height: 360,
        pts: Duration::from_millis(ms),
        index: i,
    })
    .unwrap();
}

fn encode(cfg: Config, frames: u64) -> (Vec<Event>, spool_encode::Summary) {
    let (tx, rx) = std::sync::mpsc::channel();
    let fps = cfg.fps as u64;
    let mut enc = Encoder::open(cfg, tx).unwrap();
    let mut src = Synthetic::new(640, 360).unwrap();
    for i in 0..frames {
        push(&mut enc, &mut src, i, i * 1000 / fps);
    }
    let summary = enc.finish().unwrap();
    (rx.try_iter().collect(), summary)
}

#[test]
fn fragments_are_contiguous_keyframed_and_form_a_valid_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let (events, summary) = encode(config(&path, 30, 1000), 150);
    let bytes = std::fs::read(&path).unwrap();
    let Event::Init { len: init } = events[0] else {
        panic!("first event {:?}", events[0])
    };
    assert_eq!(&bytes[4..8], b"ftyp");
    let mut offset = init;
    let mut count = 0;
    for f in fragments(&events) {
        assert_eq!(f.offset, offset, "fragments are contiguous");
        assert_eq!(
            &bytes[f.offset as usize + 4..f.offset as usize + 8],
            b"moof"
        );
        assert_eq!(f.index, count);
        let ms = f.duration.as_millis() as i64;
        assert!((ms - 1000).abs() <= 2, "fragment {} lasts {ms} ms", f.index);
        assert_eq!(f.frames, 30);
        offset += f.len;
        count += 1;
    }
    assert_eq!(count, 5);
    assert_eq!(
        offset,
        bytes.len() as u64,
        "the file is init + fragments, nothing else"
    );
    assert_eq!(summary.frames, 150);

    let frames = ffprobe(
        &path,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,codec_name,pix_fmt",
            "-of",
            "csv=p=0",
        ],
    );
    assert_eq!(frames.trim(), "h264,yuv420p,150");
    let duration: f64 = ffprobe(
        &path,
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
    )
    .trim()
    .parse()
    .unwrap();
    assert!((duration - 5.0).abs() < 0.05, "duration {duration}");
    // Keyframes exactly at 0, 1, 2, 3, 4 s.
    let keys = keyframe_times(&path);
    assert_eq!(
        keys,
        ["0.000000", "1.000000", "2.000000", "3.000000", "4.000000"]
    );
}

#[test]
fn a_cut_after_any_fragment_is_still_a_valid_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let (events, _) = encode(config(&path, 10, 2000), 50);
    let bytes = std::fs::read(&path).unwrap();
    let second = fragments(&events)[1];
    // What a crash after the second fragment leaves on disk.
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..(second.offset + second.len) as usize]).unwrap();
    let frames = ffprobe(
        &cut,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ],
    );
    assert_eq!(frames.trim(), "40");
}

#[test]
fn downscale_and_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("a.mp4"), 30, 2000);
    cfg.width = 3840;
    cfg.height = 2160;
    cfg.max_height = Some(1080);
    assert_eq!(cfg.output_size(), (1920, 1080));
    cfg.max_height = Some(721);
    assert_eq!(cfg.output_size(), (1280, 720));
    let (tx, _rx) = std::sync::mpsc::channel();
    let mut bad = config(&dir.path().join("b.mp4"), 30, 200);
    assert!(Encoder::open(bad.clone(), tx.clone()).is_err());
    bad.fragment = Duration::from_secs(2);
    bad.preset = "warp-speed".into();
    assert!(Encoder::open(bad, tx).is_err());
}

/// A pause closes the fragment being written at the pause point; the first
/// frame after it starts a new keyframe-led fragment, and the timeline runs
/// straight through (no gap, no overlap).
#[test]
fn a_pause_closes_the_fragment_and_the_timeline_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut enc = Encoder::open(config(&path, 10, 1000), tx).unwrap();
    let mut src = Synthetic::new(640, 360).unwrap();
    // 1.5 s of frames, a pause at 1.55 s, then 1.5 s more from there.
    for i in 0..15 {
        push(&mut enc, &mut src, i, i * 100);
    }
    enc.pause(Duration::from_millis(1550)).unwrap();
    let before: Vec<Event> = rx.try_iter().collect();
    let Some(Event::Fragment(last)) = before.last() else {
        panic!("{before:?}")
    };
    assert_eq!(last.reason, spool_encode::Cut::Pause);
    assert_eq!(last.duration, Duration::from_millis(550));
    assert_eq!(last.frames, 5);
    for i in 0..15 {
        push(&mut enc, &mut src, 15 + i, 1552 + i * 100);
    }
    let summary = enc.finish().unwrap();
    let after: Vec<Event> = rx.try_iter().collect();
    let durations: Vec<(u64, &str)> = before
        .iter()
        .chain(&after)
        .filter_map(|e| match e {
            Event::Fragment(f) => Some((f.duration.as_millis() as u64, f.reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        durations,
        [
            (1000, "duration"),
            (550, "pause"),
            (1002, "duration"),
            (500, "end")
        ]
    );
    assert_eq!(summary.duration, Duration::from_millis(3052));
    let keys = keyframe_times(&path);
    assert_eq!(keys, ["0.000000", "1.000000", "1.550000", "2.552000"]);
}

/// Stop while paused: the pause already closed the last fragment, so there
/// is nothing left to encode or send, and the recording ends at the pause.
#[test]
fn stopping_while_paused_leaves_nothing_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut enc = Encoder::open(config(&path, 10, 2000), tx).unwrap();
    let mut src = Synthetic::new(640, 360).unwrap();
    for i in 0..12u64 {
        push(&mut enc, &mut src, i, i * 100);
    }
    enc.pause(Duration::from_millis(1230)).unwrap();
    let len_at_pause = std::fs::metadata(&path).unwrap().len();
    let summary = enc.finish().unwrap();
    assert_eq!(summary.bytes, len_at_pause, "nothing after the pause");
    assert_eq!(summary.duration, Duration::from_millis(1230));
    let reasons: Vec<_> = rx
        .try_iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(f.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [spool_encode::Cut::Pause]);
    let d = spool_testkit::duration_s(&path);
    assert!((d - 1.23).abs() < 0.02, "{d}");
}
