//! The indexer, the HLS playlist and the indexed MP4 header against real
//! files written by the ffmpeg CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "index_ffmpeg/hostile.rs"]
mod hostile;
#[path = "index_ffmpeg/outputs.rs"]
mod outputs;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use spool_media::MediaError;
use spool_media::index::{Boundary, Indexer, Segment, index_all};

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let st = Command::new("ffmpeg")
        .env("SVT_LOG", "1")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg {args:?}");
    out
}

fn probe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {args:?} {path:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn format_duration(path: &Path) -> f64 {
    probe(
        path,
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
    )
    .trim()
    .parse()
    .unwrap()
}

/// The video packets' (dts, keyframe) in the stream's timebase.
fn packets(path: &Path) -> Vec<(i64, bool)> {
    probe(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=dts,flags",
            "-of",
            "csv=p=0",
        ],
    )
    .lines()
    .filter(|l| !l.trim().is_empty())
    .map(|l| {
        let (dts, flags) = l.split_once(',').unwrap();
        (dts.trim().parse().unwrap(), flags.contains('K'))
    })
    .collect()
}

const H264: &[&str] = &["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"];

fn testsrc(secs: &str) -> Vec<&str> {
    vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-t",
        secs,
    ]
}

fn with_audio(secs: &str) -> Vec<&str> {
    let mut v = testsrc(secs);
    v.extend([
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        secs,
    ]);
    v
}

fn fragmented(dir: &Path, name: &str, input: &[&str], codec: &[&str], movflags: &str) -> PathBuf {
    let mut args: Vec<&str> = input.to_vec();
    args.extend(codec);
    args.extend(["-movflags", movflags]);
    ffmpeg(dir, name, &args)
}

/// Indexes `data` by growing prefixes (sizes from a tiny LCG, capped at
/// `max_step`), then finishes.
fn index_in_steps(data: &[u8], boundary: Boundary, seed: u64, max_step: u64) -> Indexer {
    let mut ix = Indexer::new(boundary);
    let mut src = Cursor::new(data);
    let total = data.len() as u64;
    let mut avail = 0u64;
    let mut rng = seed;
    let mut closed = 0;
    while avail < total {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let step = 1 + (rng >> 33) % max_step;
        avail = (avail + step).min(total);
        closed += ix.advance(&mut src, avail).unwrap();
        assert_eq!(closed, ix.segments().len());
        // Repeating a call with the same bytes changes nothing.
        assert_eq!(ix.advance(&mut src, avail).unwrap(), 0);
    }
    ix.finish(&mut src, total).unwrap();
    assert!(ix.is_finished());
    ix
}

fn whole(data: &[u8], boundary: Boundary) -> Indexer {
    index_all(&mut Cursor::new(data), data.len() as u64, boundary).unwrap()
}

/// Contiguous, byte-exact, each starting with a moof; the last ends at the
/// end of the last mdat.
fn check_layout(data: &[u8], ix: &Indexer) {
    let init = ix.init().unwrap();
    let segs = ix.segments();
    assert!(!segs.is_empty());
    assert_eq!(segs[0].offset, init.len);
    assert_eq!(&data[init.len as usize + 4..init.len as usize + 8], b"moof");
    for w in segs.windows(2) {
        assert_eq!(w[0].offset + w[0].len, w[1].offset, "contiguous");
    }
    for s in segs {
        assert_eq!(&data[s.offset as usize + 4..s.offset as usize + 8], b"moof");
        assert!(s.duration > 0);
    }
    for w in segs.windows(2) {
        assert_eq!(w[0].start + w[0].duration, w[1].start, "no gaps in time");
    }
    let last = segs.last().unwrap();
    let end = (last.offset + last.len) as usize;
    // The last box of the last segment is an mdat.
    let mut pos = last.offset as usize;
    let mut last_kind = [0u8; 4];
    while pos < end {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        last_kind.copy_from_slice(&data[pos + 4..pos + 8]);
        pos += size;
    }
    assert_eq!(pos, end);
    assert_eq!(&last_kind, b"mdat");
}

fn total_ticks(segs: &[Segment]) -> u64 {
    segs.iter().map(|s| s.duration).sum()
}

/// Every segment starts at a keyframe and every keyframe starts a segment.
fn check_keyframes(path: &Path, ix: &Indexer) {
    let pk = packets(path);
    let first = pk[0].0;
    let keys: Vec<u64> = pk
        .iter()
        .filter(|p| p.1)
        .map(|p| (p.0 - first) as u64)
        .collect();
    let s0 = ix.segments()[0].start;
    let starts: Vec<u64> = ix.segments().iter().map(|s| s.start - s0).collect();
    assert_eq!(starts, keys);
}

fn check_duration(path: &Path, ix: &Indexer, fps: f64) {
    let ts = ix.init().unwrap().timescale as f64;
    let ours = total_ticks(ix.segments()) as f64 / ts;
    let theirs = format_duration(path);
    assert!(
        (ours - theirs).abs() <= 1.0 / fps + 1e-6,
        "index {ours} vs ffprobe {theirs}"
    );
    assert_eq!(
        ix.duration_ms(),
        total_ticks(ix.segments()) * 1000 / ix.init().unwrap().timescale as u64
    );
}

#[test]
fn h264_frag_keyframe_prefixes_match_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("6"),
        H264,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let all = whole(&data, Boundary::NextKeyframe);
    let init = all.init().unwrap();
    assert_eq!((init.width, init.height), (640, 360));
    assert!(init.codecs.starts_with("avc1."), "{}", init.codecs);
    assert_eq!(init.codecs.len(), "avc1.64001e".len());
    assert_eq!(all.segments().len(), 6);
    check_layout(&data, &all);
    check_keyframes(&path, &all);
    check_duration(&path, &all, 30.0);

    for (seed, step) in [(1, 1u64 << 10), (2, 7), (3, 100_000), (4, 30_000)] {
        let ix = index_in_steps(&data, Boundary::NextKeyframe, seed, step);
        assert_eq!(ix.segments(), all.segments());
        assert_eq!(ix.init(), all.init());
    }
    // Every moof starts with a keyframe here: both boundaries agree.
    let every = index_in_steps(&data, Boundary::EveryMoof, 5, 50_000);
    assert_eq!(every.segments(), all.segments());
}

#[test]
fn segments_close_by_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("4"),
        H264,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let all = whole(&data, Boundary::NextKeyframe);
    let segs = all.segments();
    let mut src = Cursor::new(&data[..]);

    // NextKeyframe: the first segment closes once the second moof is read.
    let mut ix = Indexer::new(Boundary::NextKeyframe);
    assert_eq!(ix.advance(&mut src, segs[1].offset + 8).unwrap(), 0);
    assert!(ix.init().is_some());
    let s1 = segs[1].offset;
    let moof1 = u32::from_be_bytes(data[s1 as usize..s1 as usize + 4].try_into().unwrap());
    assert_eq!(ix.advance(&mut src, s1 + moof1 as u64).unwrap(), 1);
    assert_eq!(ix.segments(), &segs[..1]);

    // EveryMoof: as soon as the first mdat is complete.
    let mut ix = Indexer::new(Boundary::EveryMoof);
    let end0 = segs[0].offset + segs[0].len;
    assert_eq!(ix.advance(&mut src, end0 - 1).unwrap(), 0);
    assert_eq!(ix.advance(&mut src, end0).unwrap(), 1);
    assert_eq!(ix.segments(), &segs[..1]);
    ix.finish(&mut src, data.len() as u64).unwrap();
    assert_eq!(ix.segments(), segs);
}

#[test]
fn h264_aac_several_moofs_per_gop() {
    let dir = tempfile::tempdir().unwrap();
    for (name, flags) in [
        ("every.mp4", "frag_every_frame+empty_moov+default_base_moof"),
        ("dur.mp4", "frag_keyframe+empty_moov+default_base_moof"),
    ] {
        let mut codec = H264.to_vec();
        codec.extend(["-c:a", "aac"]);
        if name == "dur.mp4" {
            codec.extend(["-frag_duration", "250000"]);
        }
        let path = fragmented(dir.path(), name, &with_audio("5"), &codec, flags);
        let data = std::fs::read(&path).unwrap();
        let ix = whole(&data, Boundary::NextKeyframe);
        let init = ix.init().unwrap();
        assert!(init.codecs.ends_with(",mp4a.40.2"), "{}", init.codecs);
        let moofs = data.windows(4).filter(|w| w == b"moof").count();
        assert!(moofs > 10, "{name}: {moofs} moofs");
        // One segment per GOP (5 s at g=30, 30 fps).
        assert_eq!(ix.segments().len(), 5, "{name}");
        check_layout(&data, &ix);
        check_keyframes(&path, &ix);
        check_duration(&path, &ix, 30.0);
        let stepped = index_in_steps(&data, Boundary::NextKeyframe, 9, 20_000);
        assert_eq!(stepped.segments(), ix.segments());

        // EveryMoof: the producer broke the promise; every moof is a segment.
        let every = whole(&data, Boundary::EveryMoof);
        assert!(every.segments().len() > 5);
        for w in every.segments().windows(2) {
            assert_eq!(w[0].offset + w[0].len, w[1].offset);
        }
        assert_eq!(total_ticks(every.segments()), total_ticks(ix.segments()));
    }
}

#[test]
fn vp9_opus_codec_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "v.mp4",
        &with_audio("3"),
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "30",
            "-c:a",
            "libopus",
        ],
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    let init = ix.init().unwrap();
    assert!(init.codecs.starts_with("vp09.00."), "{}", init.codecs);
    assert!(init.codecs.ends_with(".08,opus"), "{}", init.codecs);
    assert_eq!(ix.segments().len(), 3);
    check_layout(&data, &ix);
    check_keyframes(&path, &ix);
    check_duration(&path, &ix, 30.0);
}

/// Rewrites every top-level mdat with a 64-bit largesize header, and gives
/// the last one size 0 ("to the end of the file").
fn largesize(data: &[u8], last_size_zero: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut mdats = Vec::new();
    while pos < data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        if &data[pos + 4..pos + 8] == b"mdat" {
            mdats.push(out.len());
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(b"mdat");
            out.extend_from_slice(&((size + 8) as u64).to_be_bytes());
            out.extend_from_slice(&data[pos + 8..pos + size]);
        } else {
            out.extend_from_slice(&data[pos..pos + size]);
        }
        pos += size;
    }
    if last_size_zero {
        let at = *mdats.last().unwrap();
        let body = out.split_off(at + 16);
        out.truncate(at);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(&body);
    }
    out
}

#[test]
fn largesize_and_size_zero_boxes() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("3"),
        H264,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let plain = whole(&data, Boundary::NextKeyframe);

    let big = largesize(&data, false);
    let ix = index_in_steps(&big, Boundary::NextKeyframe, 11, 5_000);
    assert_eq!(ix.segments().len(), plain.segments().len());
    for (a, b) in ix.segments().iter().zip(plain.segments()) {
        assert_eq!((a.start, a.duration), (b.start, b.duration));
    }
    // Each mdat header grew by 8 bytes; the mfra after the last is not included.
    let (a, b) = (
        ix.segments().last().unwrap(),
        plain.segments().last().unwrap(),
    );
    let trailing = data.len() as u64 - (b.offset + b.len);
    assert_eq!(a.offset + a.len, big.len() as u64 - trailing);

    // Size 0: the last mdat only ends at finish.
    let zero = largesize(&data, true);
    let mut src = Cursor::new(&zero[..]);
    let mut ix = Indexer::new(Boundary::EveryMoof);
    let n = ix.advance(&mut src, zero.len() as u64).unwrap();
    assert_eq!(n, plain.segments().len() - 1);
    ix.finish(&mut src, zero.len() as u64).unwrap();
    assert_eq!(ix.segments().len(), plain.segments().len());
    let last = ix.segments().last().unwrap();
    assert_eq!(last.offset + last.len, zero.len() as u64);
}

#[test]
fn trailing_boxes_are_not_part_of_the_last_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("3"),
        H264,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let mut data = std::fs::read(&path).unwrap();
    // ffmpeg wrote an mfra at the end; add a free box too.
    data.extend_from_slice(&[0, 0, 0, 12, b'f', b'r', b'e', b'e', 1, 2, 3, 4]);
    let ix = whole(&data, Boundary::NextKeyframe);
    check_layout(&data, &ix);
    let last = ix.segments().last().unwrap();
    assert!(last.offset + last.len < data.len() as u64 - 12);
}

#[test]
fn hevc_and_av1_codec_strings() {
    let dir = tempfile::tempdir().unwrap();
    let flags = "frag_keyframe+empty_moov+default_base_moof";
    let hevc = fragmented(
        dir.path(),
        "h.mp4",
        &testsrc("2"),
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=30:min-keyint=30:scenecut=0:log-level=error",
            "-tag:v",
            "hvc1",
        ],
        flags,
    );
    let data = std::fs::read(&hevc).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    // Main profile (compatibility flags 1 and 2, reversed: 6), Main tier,
    // level 2.1 (63), then the constraint bytes without trailing zeros (x265:
    // progressive_source + frame_only = 0x90).
    let codecs = &ix.init().unwrap().codecs;
    assert_eq!(codecs, "hvc1.1.6.L63.90");
    assert_eq!(ix.segments().len(), 2);
    check_layout(&data, &ix);
    check_keyframes(&hevc, &ix);

    let av1 = fragmented(
        dir.path(),
        "a.mp4",
        &testsrc("2"),
        &["-c:v", "libsvtav1", "-preset", "12", "-g", "30"],
        flags,
    );
    let data = std::fs::read(&av1).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    let codecs = &ix.init().unwrap().codecs;
    assert!(codecs.starts_with("av01.0."), "{codecs}");
    assert!(codecs.ends_with("M.08"), "{codecs}");
    check_layout(&data, &ix);
    check_keyframes(&av1, &ix);
}

#[test]
fn keyframes_inside_a_moof_do_not_split() {
    // frag_duration alone cuts fragments by time, not at keyframes: the
    // keyframes inside a moof cannot start a segment.
    let dir = tempfile::tempdir().unwrap();
    let mut args = testsrc("3");
    args.extend(H264);
    args.extend([
        "-frag_duration",
        "400000",
        "-movflags",
        "empty_moov+default_base_moof",
    ]);
    let path = ffmpeg(dir.path(), "d.mp4", &args);
    let data = std::fs::read(&path).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    check_layout(&data, &ix);
    let pk = packets(&path);
    assert!(ix.segments().len() < pk.iter().filter(|p| p.1).count() + 1);
    check_duration(&path, &ix, 30.0);
}

#[test]
fn printed_codecs() {
    // The strings ffmpeg's own HLS muxer would write for the same streams.
    let dir = tempfile::tempdir().unwrap();
    let codec = [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-c:a",
        "aac",
    ];
    let path = fragmented(
        dir.path(),
        "a.mp4",
        &with_audio("1"),
        &codec,
        "frag_keyframe+empty_moov+default_base_moof",
    );
    let data = std::fs::read(&path).unwrap();
    let ix = whole(&data, Boundary::NextKeyframe);
    assert_eq!(ix.init().unwrap().codecs, "avc1.64001e,mp4a.40.2");
}
