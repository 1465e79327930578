//! The encoder's output is one valid fragmented MP4: init + fragments,
//! contiguous, each fragment a moof that starts with a keyframe, durations
//! as configured, and ffprobe reads the right duration and frame count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use spool_capture::{Frame, Source, Synthetic};
use spool_e2e::ffprobe;
use spool_encode::{Config, Encoder, Event};

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
    }
}

fn encode(cfg: Config, frames: u64) -> (Vec<Event>, spool_encode::Summary) {
    let (tx, rx) = std::sync::mpsc::channel();
    let fps = cfg.fps as u64;
    let mut enc = Encoder::open(cfg, tx).unwrap();
    let mut src = Synthetic::new(640, 360).unwrap();
    for i in 0..frames {
        let mut data = Vec::new();
        src.grab(i, &mut data).unwrap();
        enc.push(&Frame {
            data,
            width: 640,
            height: 360,
            pts: Duration::from_millis(i * 1000 / fps),
            index: i,
        })
        .unwrap();
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
    let mut fragments = 0;
    for e in &events[1..] {
        let Event::Fragment(f) = e else {
            panic!("{e:?}")
        };
        assert_eq!(f.offset, offset, "fragments are contiguous");
        assert_eq!(
            &bytes[f.offset as usize + 4..f.offset as usize + 8],
            b"moof"
        );
        assert_eq!(f.index, fragments);
        let ms = f.duration.as_millis() as i64;
        assert!((ms - 1000).abs() <= 2, "fragment {} lasts {ms} ms", f.index);
        assert_eq!(f.frames, 30);
        offset += f.len;
        fragments += 1;
    }
    assert_eq!(fragments, 5);
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
    let keys: Vec<String> = ffprobe(
        &path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ],
    )
    .lines()
    .filter(|l| l.contains('K'))
    .map(|l| l.split(',').next().unwrap().to_owned())
    .collect();
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
    let Event::Fragment(second) = &events[2] else {
        panic!()
    };
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
