//! The sound track: a mix handed to the encoder comes out as AAC-LC 48 kHz
//! in the same fragments as the video, starting at the timeline's zero,
//! as long as the video, each fragment carrying its own span's sound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use spool_capture::audio::{AudioKind, CHANNELS, Mixer, SAMPLE_RATE};
use spool_capture::{Frame, Source, Synthetic};
use spool_encode::{Config, Encoder, Event};
use spool_testkit::audio::{decode, power, window};
use spool_testkit::ffprobe;

fn sine(hz: f64, from: u64, frames: u64) -> Vec<f32> {
    (from..from + frames)
        .flat_map(|i| {
            let v = (0.4 * (2.0 * std::f64::consts::PI * hz * i as f64 / SAMPLE_RATE as f64).sin())
                as f32;
            [v; CHANNELS]
        })
        .collect()
}

fn frame(src: &mut Synthetic, i: u64, ms: u64) -> Frame {
    let mut data = Vec::new();
    src.grab(i, &mut data).unwrap();
    Frame {
        data,
        width: 320,
        height: 240,
        pts: Duration::from_millis(ms),
        index: i,
    }
}

/// 320×240 at 30 fps in 1 s fragments, with the sound of `mixer`.
fn config(path: &std::path::Path, mixer: Arc<Mixer>) -> Config {
    Config {
        path: path.to_path_buf(),
        width: 320,
        height: 240,
        max_height: None,
        fps: 30,
        fragment: Duration::from_millis(1000),
        preset: Config::DEFAULT_PRESET.into(),
        crf: Config::DEFAULT_CRF,
        audio: Some(mixer),
        chunk: None,
        rate: None,
    }
}

#[test]
fn sound_rides_in_every_fragment_in_sync_with_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("av.mp4");
    let mixer = Arc::new(Mixer::new());
    let track = mixer.add_track(AudioKind::Mic, 1.0);
    mixer.set_live(track, true);
    // 440 Hz for the first 2 s, 880 Hz after.
    mixer.write(track, 0, &sine(440.0, 0, 96_000));
    mixer.write(track, 96_000, &sine(880.0, 96_000, 48_000 + 4_800));
    let cfg = config(&path, mixer.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let mut enc = Encoder::open(cfg, tx).unwrap();
    let mut src = Synthetic::new(320, 240).unwrap();
    for i in 0..90 {
        enc.push(&frame(&mut src, i, i * 1000 / 30)).unwrap();
    }
    enc.end_at(Duration::from_millis(3000));
    let summary = enc.finish().unwrap();
    assert_eq!(summary.audio, Some(Duration::from_millis(3000)));
    let events: Vec<Event> = rx.try_iter().collect();
    let bytes = std::fs::read(&path).unwrap();
    // Every fragment has a video and a sound track fragment.
    for f in events.iter().filter_map(|e| match e {
        Event::Fragment(f) => Some(f),
        _ => None,
    }) {
        let frag = &bytes[f.offset as usize..(f.offset + f.len) as usize];
        let trafs = frag.windows(4).filter(|w| w == b"traf").count();
        assert_eq!(trafs, 2, "fragment {} has {trafs} track fragments", f.index);
    }
    let streams = ffprobe(
        &path,
        &[
            "-show_entries",
            "stream=codec_name,profile,sample_rate,channels,start_time",
            "-of",
            "compact",
        ],
    );
    assert!(
        streams
            .contains("codec_name=aac|profile=LC|sample_rate=48000|channels=2|start_time=0.000000"),
        "{streams}"
    );
    let pcm = decode(&path);
    let secs = pcm.len() as f64 / 48_000.0;
    assert!((secs - 3.0).abs() < 0.03, "{secs} s of sound");
    // The switch from 440 to 880 Hz is where it was written: at 2.000 s.
    let before = window(&pcm, 1.90, 1.99);
    let after = window(&pcm, 2.01, 2.10);
    assert!(power(before, 440.0) > 50.0 * power(before, 880.0));
    assert!(power(after, 880.0) > 50.0 * power(after, 440.0));
    let edge = (0..pcm.len() - 480)
        .find(|&i| i > 90_000 && power(&pcm[i..i + 480], 880.0) > power(&pcm[i..i + 480], 440.0))
        .unwrap() as f64
        / 48.0;
    assert!((edge - 2000.0).abs() < 8.0, "the tone changed at {edge} ms");
}

#[test]
fn a_pause_keeps_the_sound_continuous_and_stop_while_paused_ends_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paused.mp4");
    let mixer = Arc::new(Mixer::new());
    let track = mixer.add_track(AudioKind::System, 1.0);
    mixer.set_live(track, true);
    mixer.write(track, 0, &sine(440.0, 0, 48_000 * 2));
    let cfg = config(&path, mixer);
    let (tx, _rx) = std::sync::mpsc::channel();
    let mut enc = Encoder::open(cfg, tx).unwrap();
    let mut src = Synthetic::new(320, 240).unwrap();
    for i in 0..45 {
        enc.push(&frame(&mut src, i, i * 1000 / 30)).unwrap();
    }
    enc.pause(Duration::from_millis(1500)).unwrap();
    let summary = enc.finish().unwrap();
    assert_eq!(summary.duration, Duration::from_millis(1500));
    assert_eq!(summary.audio, Some(Duration::from_millis(1500)));
    let secs = decode(&path).len() as f64 / 48_000.0;
    assert!((secs - 1.5).abs() < 0.03, "{secs} s of sound");
}
