//! probe: what is and what is not a video.

use spool_media::MediaError;
use spool_media::normalize::{Plan, plan};
use spool_media::probe::probe;

use crate::support::{check_output, ffmpeg, ffprobe, make, run_normalize};

#[test]
fn probe_reads_mp4_and_rejects_non_video() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = make(
        dir.path(),
        "a.mp4",
        "320x240",
        3,
        &[
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
            "-shortest",
        ],
    );
    let p = probe(&mp4).unwrap();
    assert_eq!(p.video.codec, "h264");
    assert_eq!((p.video.width, p.video.height), (320, 240));
    let a = p.audio.as_ref().unwrap();
    assert_eq!(
        (a.codec.as_str(), a.sample_rate, a.channels),
        ("aac", 44100, 1)
    );
    assert!(p.format.contains("mp4"), "{}", p.format);
    assert!(
        (2900..=3100).contains(&p.duration_ms.unwrap()),
        "{:?}",
        p.duration_ms
    );
    assert_eq!(plan(&p), Plan::Remux);

    let text = dir.path().join("t.txt");
    std::fs::write(&text, "hello, this is not a video\n".repeat(100)).unwrap();
    // Deterministic noise (xorshift), so a failure reproduces.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let random = dir.path().join("r.bin");
    std::fs::write(&random, noise).unwrap();
    let png = dir.path().join("i.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64",
        "-frames:v",
        "1",
        png.to_str().unwrap(),
    ]);
    let jpg = dir.path().join("i.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64",
        "-frames:v",
        "1",
        jpg.to_str().unwrap(),
    ]);
    let audio_only = dir.path().join("s.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        audio_only.to_str().unwrap(),
    ]);
    for f in [&text, &random, &png, &jpg, &audio_only] {
        match probe(f) {
            Err(e @ MediaError::Unsupported(_)) => assert!(e.is_permanent()),
            other => panic!("{}: {other:?}", f.display()),
        }
    }
}

#[test]
fn cover_art_is_not_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let plain = make(
        dir.path(),
        "in.mp4",
        "320x240",
        3,
        &["-c:v", "libx264", "-g", "25", "-c:a", "aac", "-shortest"],
    );
    let cover = dir.path().join("cover.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=600x600",
        "-frames:v",
        "1",
        cover.to_str().unwrap(),
    ]);
    let input = dir.path().join("art.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-i",
        cover.to_str().unwrap(),
        "-map",
        "1",
        "-map",
        "0",
        "-c",
        "copy",
        "-c:v:0",
        "png",
        "-disposition:v:0",
        "attached_pic",
        input.to_str().unwrap(),
    ]);
    let p = probe(&input).unwrap();
    assert_eq!((p.video.codec.as_str(), p.video.width), ("h264", 320));
    let out = dir.path().join("out.mp4");
    assert_eq!(run_normalize(&input, &out).0, Plan::Remux);
    check_output(&plain, &out, "h264", "aac");
    let streams = ffprobe(&["-show_entries", "stream=index", "-of", "csv=p=0"], &out);
    assert_eq!(streams.lines().count(), 2, "{streams}");
}
