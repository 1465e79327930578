//! CMAF chunks and the bitrate cap: inside each keyframe-led fragment the
//! encoder closes a `moof` + `mdat` every chunk interval, each announced
//! with its exact byte range, so the bytes can leave before the fragment
//! ends; only a fragment's first chunk starts with a keyframe; a file cut
//! after any chunk is valid up to it; and a lowered cap lowers the bytes
//! per second of what follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use spool_capture::{Frame, Source, Synthetic};
use spool_encode::{Chunk, Config, Encoder, Event, Fragment, RateCap};
use spool_testkit::{ffprobe, keyframe_times};

fn config(path: &std::path::Path, w: u32, h: u32, fps: u32, fragment_ms: u64) -> Config {
    Config {
        path: path.to_path_buf(),
        width: w,
        height: h,
        max_height: None,
        fps,
        fragment: Duration::from_millis(fragment_ms),
        preset: Config::DEFAULT_PRESET.into(),
        crf: Config::DEFAULT_CRF,
        audio: None,
        chunk: Some(Config::DEFAULT_CHUNK),
        rate: None,
    }
}

fn split(events: &[Event]) -> (Vec<&Chunk>, Vec<&Fragment>) {
    let mut chunks = Vec::new();
    let mut fragments = Vec::new();
    for e in events {
        match e {
            Event::Chunk(c) => chunks.push(c),
            Event::Fragment(f) => fragments.push(f),
            Event::Init { .. } => {}
        }
    }
    (chunks, fragments)
}

fn frame_count(path: &std::path::Path) -> u64 {
    ffprobe(
        path,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ],
    )
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn fragments_are_keyframe_led_groups_of_contiguous_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut enc = Encoder::open(config(&path, 640, 360, 30, 1000), tx).unwrap();
    let mut src = Synthetic::new(640, 360).unwrap();
    for i in 0..150u64 {
        let mut data = Vec::new();
        src.grab(i, &mut data).unwrap();
        enc.push(&Frame {
            data,
            width: 640,
            height: 360,
            pts: Duration::from_millis(i * 1000 / 30),
            index: i,
        })
        .unwrap();
    }
    enc.finish().unwrap();
    let events: Vec<Event> = rx.try_iter().collect();
    let bytes = std::fs::read(&path).unwrap();
    let Event::Init { len: init } = events[0] else {
        panic!("{:?}", events[0])
    };
    let (chunks, fragments) = split(&events);
    assert_eq!(fragments.len(), 5);
    assert_eq!(chunks.len(), 20, "four 250 ms chunks per 1 s fragment");
    // Chunks are contiguous after the init segment, each a moof, and a
    // fragment's event comes right after its last chunk and spans them.
    let mut offset = init;
    for c in &chunks {
        assert_eq!(c.offset, offset);
        assert_eq!(
            &bytes[c.offset as usize + 4..c.offset as usize + 8],
            b"moof"
        );
        let ms = c.duration.as_millis() as i64;
        assert!(
            (ms - 250).abs() <= 17,
            "chunk {}/{} lasts {ms} ms",
            c.fragment,
            c.index
        );
        assert_eq!(c.last, c.index == 3);
        offset += c.len;
    }
    assert_eq!(offset, bytes.len() as u64);
    for f in &fragments {
        let mine: Vec<_> = chunks.iter().filter(|c| c.fragment == f.index).collect();
        assert_eq!(f.chunks as usize, mine.len());
        assert_eq!(f.offset, mine[0].offset);
        assert_eq!(f.len, mine.iter().map(|c| c.len).sum::<u64>());
        assert_eq!(f.frames, mine.iter().map(|c| c.frames).sum::<u64>());
        assert_eq!(f.frames, 30);
    }
    let mut order = events.iter().skip(1);
    for f in &fragments {
        for _ in 0..f.chunks {
            assert!(matches!(order.next(), Some(Event::Chunk(_))));
        }
        assert!(matches!(order.next(), Some(Event::Fragment(_))));
    }
    // Keyframes stay at the fragment cadence: only each fragment's first
    // chunk starts with one (ffprobe's packet positions say which moof).
    assert_eq!(
        keyframe_times(&path),
        ["0.000000", "1.000000", "2.000000", "3.000000", "4.000000"]
    );
    let packets = ffprobe(
        &path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pos,flags",
            "-of",
            "csv=p=0",
        ],
    );
    let mut first_in_chunk = std::collections::HashSet::new();
    for line in packets.lines() {
        let (pos, flags) = line.split_once(',').unwrap();
        let pos: u64 = pos.parse().unwrap();
        let c = chunks
            .iter()
            .position(|c| (c.offset..c.offset + c.len).contains(&pos))
            .unwrap();
        let first = first_in_chunk.insert(c);
        assert_eq!(
            flags.starts_with('K'),
            first && chunks[c].index == 0,
            "packet at {pos} in chunk {}/{}: {flags}",
            chunks[c].fragment,
            chunks[c].index
        );
    }
    assert_eq!(frame_count(&path), 150);
    let d = spool_testkit::duration_s(&path);
    assert!((d - 5.0).abs() < 0.05, "{d}");
}

/// What a crash leaves: the file up to any complete chunk plays, every
/// frame of those chunks included (not just whole fragments).
#[test]
fn a_cut_after_any_chunk_keeps_every_frame_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.mp4");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut enc = Encoder::open(config(&path, 320, 240, 10, 2000), tx).unwrap();
    let mut src = Synthetic::new(320, 240).unwrap();
    for i in 0..50u64 {
        let mut data = Vec::new();
        src.grab(i, &mut data).unwrap();
        enc.push(&Frame {
            data,
            width: 320,
            height: 240,
            pts: Duration::from_millis(i * 100),
            index: i,
        })
        .unwrap();
    }
    enc.finish().unwrap();
    let events: Vec<Event> = rx.try_iter().collect();
    let bytes = std::fs::read(&path).unwrap();
    let (chunks, _) = split(&events);
    let mut frames = 0;
    for (n, c) in chunks.iter().enumerate() {
        frames += c.frames;
        if n % 3 != 1 {
            continue;
        }
        let cut = dir.path().join(format!("cut{n}.mp4"));
        std::fs::write(&cut, &bytes[..(c.offset + c.len) as usize]).unwrap();
        assert_eq!(
            frame_count(&cut),
            frames,
            "cut after chunk {}/{}",
            c.fragment,
            c.index
        );
    }
    assert_eq!(frames, 50);
}

/// Frames no encoder can compress (noise): the bitrate is whatever the cap
/// allows, so lowering the cap mid-recording lowers the bytes that follow.
#[test]
fn a_lowered_cap_lowers_the_bitrate_from_the_next_frame() {
    let dir = tempfile::tempdir().unwrap();
    let noise = |seed: u64| -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..320 * 240 * 4)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let encode = |name: &str, rate: Option<Arc<RateCap>>, lower_at: Option<u64>| {
        let path = dir.path().join(name);
        let mut cfg = config(&path, 320, 240, 30, 1000);
        cfg.rate = rate.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut enc = Encoder::open(cfg, tx).unwrap();
        for i in 0..150u64 {
            if Some(i) == lower_at
                && let Some(r) = &rate
            {
                r.set(500);
            }
            enc.push(&Frame {
                data: noise(i),
                width: 320,
                height: 240,
                pts: Duration::from_millis(i * 1000 / 30),
                index: i,
            })
            .unwrap();
        }
        enc.finish().unwrap();
        let events: Vec<Event> = rx.try_iter().collect();
        split(&events)
            .1
            .iter()
            .map(|f| f.len * 8 / 1000)
            .collect::<Vec<u64>>()
    };
    let free = encode("free.mp4", None, None);
    let cap = Arc::new(RateCap::new(4000));
    let capped = encode("capped.mp4", Some(cap), Some(60));
    eprintln!("kbit per 1 s fragment: quality first {free:?}, capped {capped:?}");
    assert!(
        free[1] > 6000,
        "noise needs more than the ceiling: {free:?}"
    );
    // Under the 4000 kbit/s ceiling (a 1 s buffer allows some slack)...
    assert!(capped[1] < 5000, "{capped:?}");
    // ...and under 500 kbit/s once the cap fell at 2 s.
    assert!(capped[3] < 750 && capped[4] < 750, "{capped:?}");
}
