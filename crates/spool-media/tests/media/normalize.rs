//! normalize: every plan, checked with ffprobe; cancel, rotation, and the
//! throughput figures.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use spool_media::MediaError;
use spool_media::normalize::{Plan, normalize};
use spool_media::poster::poster_from_file;
use spool_media::probe::probe;

use crate::support::{check_output, ffmpeg, ffprobe, make, run_normalize};

#[test]
fn normalize_remuxes_faststart_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.mp4",
        "320x240",
        4,
        &[
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            "-shortest",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::Remux);
    check_output(&input, &out, "h264", "aac");
}

#[test]
fn normalize_transcodes_mp3_in_mkv() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.mkv",
        "320x240",
        4,
        &[
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-c:a",
            "libmp3lame",
            "-shortest",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::TranscodeAudio);
    check_output(&input, &out, "h264", "aac");
    let rate = ffprobe(
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate,channels",
            "-of",
            "csv=p=0",
        ],
        &out,
    );
    assert_eq!(rate.trim(), "48000,2");
}

#[test]
fn normalize_remuxes_vp9_opus_webm() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.webm",
        "320x240",
        3,
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
            "-c:a",
            "libopus",
            "-shortest",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::Remux);
    check_output(&input, &out, "vp9", "opus");
}

#[test]
fn normalize_transcodes_mpeg4_avi() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.avi",
        "322x242",
        4,
        &[
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
            // Anamorphic: non-square pixels.
            "-aspect",
            "16:9",
            "-c:a",
            "libmp3lame",
            "-shortest",
        ],
    );
    let p = probe(&input).unwrap();
    assert_eq!(p.video.codec, "mpeg4");
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::TranscodeVideo);
    check_output(&input, &out, "h264", "aac");
    let dar = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=display_aspect_ratio",
            "-of",
            "csv=p=0",
        ],
        &out,
    );
    // MPEG-4 Part 2 stores the pixel shape in 8-bit terms: about 16:9.
    let (w, h) = dar.trim().split_once(':').unwrap();
    let dar = w.parse::<f64>().unwrap() / h.parse::<f64>().unwrap();
    assert!((dar - 16.0 / 9.0).abs() < 0.01, "{dar}");
}

#[test]
fn normalize_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.avi",
        "320x240",
        4,
        &["-c:v", "mpeg4", "-c:a", "libmp3lame", "-shortest"],
    );
    let p = probe(&input).unwrap();
    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let r = normalize(
        &input,
        &dir.path().join("out.mp4"),
        &p,
        &mut |_| {
            calls += 1;
            cancel.store(true, Ordering::Relaxed);
        },
        &cancel,
    );
    assert!(matches!(r, Err(MediaError::Cancelled)), "{r:?}");
    assert_eq!(calls, 1);
}

/// Figures for the README: poster latency, remux and transcode speed on a
/// 10 s 1080p H.264 input.
#[test]
fn throughput_1080p() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.mp4",
        "1920x1080",
        10,
        &[
            "-c:v",
            "libx264",
            // Fast to make, and large enough (tens of MB) to time a remux;
            // keyframes every 2 s, as in the recorder's output.
            "-preset",
            "ultrafast",
            "-crf",
            "14",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-shortest",
        ],
    );
    let mb = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;

    let start = Instant::now();
    let p = poster_from_file(&input, &[1000, 4000, 8000], 640).unwrap();
    let poster_ms = start.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "poster: 3 candidates, 1080p H.264 (keyframe every 2 s) → {}x{} in {poster_ms:.0} ms",
        p.width, p.height
    );
    // One keyframe in 10 s, and B-frames (veryfast).
    let sparse = make(
        dir.path(),
        "sparse.mp4",
        "1920x1080",
        10,
        &["-c:v", "libx264", "-preset", "veryfast", "-an"],
    );
    let start = Instant::now();
    poster_from_file(&sparse, &[1000, 4000, 8000], 640).unwrap();
    let poster_ms = start.elapsed().as_secs_f64() * 1000.0;
    eprintln!("poster: 3 candidates, 1080p H.264 (one keyframe in 10 s) in {poster_ms:.0} ms");

    let out = dir.path().join("remux.mp4");
    let (plan, secs) = run_normalize(&input, &out);
    assert_eq!(plan, Plan::Remux);
    check_output(&input, &out, "h264", "aac");
    eprintln!("remux: {mb:.1} MB in {secs:.2} s = {:.0} MB/s", mb / secs);

    // The same picture as MPEG-4 Part 2, so the video is transcoded.
    let m4v = make(
        dir.path(),
        "in.mkv",
        "1920x1080",
        10,
        &["-c:v", "mpeg4", "-q:v", "4", "-c:a", "aac", "-shortest"],
    );
    let out = dir.path().join("transcode.mp4");
    let (plan, secs) = run_normalize(&m4v, &out);
    assert_eq!(plan, Plan::TranscodeVideo);
    check_output(&m4v, &out, "h264", "aac");
    let mb = std::fs::metadata(&m4v).unwrap().len() as f64 / 1e6;
    eprintln!(
        "transcode: 250 frames 1080p in {secs:.2} s = {:.1} fps ({:.1} MB/s of input)",
        250.0 / secs,
        mb / secs
    );
}

#[test]
fn normalize_reencodes_adts_aac_from_mpegts() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.ts",
        "320x240",
        4,
        &["-c:v", "libx264", "-g", "25", "-c:a", "aac", "-shortest"],
    );
    let out = dir.path().join("out.mp4");
    // ADTS cannot be copied into MP4 as it is: the audio is re-encoded.
    assert_eq!(run_normalize(&input, &out).0, Plan::TranscodeAudio);
    check_output(&input, &out, "h264", "aac");
}

#[test]
fn normalize_transcodes_vp8_vorbis_and_pcm() {
    let dir = tempfile::tempdir().unwrap();
    let input = make(
        dir.path(),
        "in.webm",
        "320x240",
        3,
        &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-c:a",
            "libvorbis",
            "-shortest",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::TranscodeVideo);
    check_output(&input, &out, "h264", "aac");
    let input = make(
        dir.path(),
        "in.mov",
        "320x240",
        3,
        &[
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-c:a",
            "pcm_s16le",
            "-shortest",
        ],
    );
    let out = dir.path().join("out2.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::TranscodeAudio);
    check_output(&input, &out, "h264", "aac");
}

/// A phone's portrait video: the rotation survives remuxing and
/// transcoding.
#[test]
fn rotation_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let plain = make(
        dir.path(),
        "plain.mp4",
        "320x240",
        2,
        &["-c:v", "libx264", "-c:a", "aac", "-shortest"],
    );
    let rotated = dir.path().join("rot.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        rotated.to_str().unwrap(),
    ]);
    let rotation = |f: &std::path::Path| {
        ffprobe(
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream_side_data=rotation",
                "-of",
                "csv=p=0",
            ],
            f,
        )
        .trim()
        .to_string()
    };
    assert_eq!(rotation(&rotated), "90");
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&rotated, &out).0, Plan::Remux);
    assert_eq!(rotation(&out), "90");
    let mpeg4 = dir.path().join("rot.mov");
    ffmpeg(&[
        "-noautorotate",
        "-i",
        rotated.to_str().unwrap(),
        "-c:v",
        "mpeg4",
        "-c:a",
        "copy",
        mpeg4.to_str().unwrap(),
    ]);
    let out = dir.path().join("out2.mp4");
    assert_eq!(rotation(&mpeg4), "90");
    assert_eq!(run_normalize(&mpeg4, &out).0, Plan::TranscodeVideo);
    assert_eq!(rotation(&out), "90");

    // The poster stands upright, as FFmpeg's CLI (autorotate) shows it.
    let poster = poster_from_file(&rotated, &[0], 640).unwrap();
    assert_eq!((poster.width, poster.height), (240, 320));
    let jpg = dir.path().join("p.jpg");
    std::fs::write(&jpg, &poster.jpeg).unwrap();
    let gray = |args: &[&str]| {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin"])
            .args(args)
            .args([
                "-frames:v",
                "1",
                "-s",
                "240x320",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let ours = gray(&["-i", jpg.to_str().unwrap()]);
    let cli = gray(&["-i", rotated.to_str().unwrap()]);
    assert_eq!(ours.len(), cli.len());
    let diff: f64 = ours
        .iter()
        .zip(&cli)
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / ours.len() as f64;
    assert!(diff < 12.0, "mean luma difference {diff}");
}

/// A phone's HEVC (10-bit here) is transcoded to 8-bit H.264; subtitles
/// are dropped.
#[test]
fn normalize_transcodes_10bit_hevc_and_drops_subtitles() {
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("s.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,000\nhello\n").unwrap();
    let input = dir.path().join("in.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=3",
        "-i",
        srt.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p10le",
        "-x265-params",
        "log-level=error",
        "-c:a",
        "aac",
        "-c:s",
        "srt",
        input.to_str().unwrap(),
    ]);
    let p = probe(&input).unwrap();
    assert_eq!(p.video.codec, "hevc");
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::TranscodeVideo);
    check_output(&input, &out, "h264", "aac");
    let streams = ffprobe(
        &[
            "-show_entries",
            "stream=codec_type,pix_fmt",
            "-of",
            "csv=p=0",
        ],
        &out,
    );
    assert_eq!(streams.trim(), "video,yuv420p\naudio", "{streams}");
}
