//! poster_from_file: not the black opening, fragmented and growing files,
//! clocks that do not start at zero.

use spool_media::poster::poster_from_file;

use crate::support::{black_then_pattern, codec_of, ffmpeg, moof_offsets};

#[test]
fn poster_skips_black_opening() {
    let dir = tempfile::tempdir().unwrap();
    let input = black_then_pattern(dir.path(), &[]);
    let p = poster_from_file(&input, &[0, 1000, 3000, 99_000], 320).unwrap();
    assert!(p.at_ms >= 2000, "chose the black frame at {}", p.at_ms);
    assert_eq!((p.width, p.height), (320, 180));
    assert_eq!(&p.jpeg[..2], &[0xff, 0xd8]);
    let jpg = dir.path().join("p.jpg");
    std::fs::write(&jpg, &p.jpeg).unwrap();
    assert_eq!(codec_of(&jpg, "v:0"), "mjpeg");
    // Only black to choose from: still a poster.
    let p = poster_from_file(&input, &[0, 500], 320).unwrap();
    assert!(p.at_ms < 2000);
    // Never upscaled.
    assert_eq!(poster_from_file(&input, &[3000], 4000).unwrap().width, 640);
}

#[test]
fn poster_from_fragmented_and_growing_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let input = black_then_pattern(
        dir.path(),
        &["-movflags", "frag_keyframe+empty_moov+default_base_moof"],
    );
    let p = poster_from_file(&input, &[500, 3000, 5000], 320).unwrap();
    assert!(p.at_ms >= 2000, "{}", p.at_ms);
    // An upload in progress: the last fragment is cut in the middle.
    let bytes = std::fs::read(&input).unwrap();
    let moofs = moof_offsets(&input);
    let cut = moofs[moofs.len() - 1] as usize + 3000;
    let growing = dir.path().join("growing.mp4");
    std::fs::write(&growing, &bytes[..cut.min(bytes.len() - 1)]).unwrap();
    let p = poster_from_file(&growing, &[500, 3000, 99_000], 320).unwrap();
    assert!(p.at_ms >= 2000, "{}", p.at_ms);
    // Only the init segment and the first fragments' start.
    let early = dir.path().join("early.mp4");
    std::fs::write(&early, &bytes[..moofs[2] as usize + 100]).unwrap();
    poster_from_file(&early, &[3000], 320).unwrap();
}

/// MPEG-TS starts its clock above zero: candidates and `at_ms` count from
/// the first frame all the same.
#[test]
fn poster_times_count_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("black.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=black:size=320x180:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25:duration=2",
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-output_ts_offset",
        "10",
        input.to_str().unwrap(),
    ]);
    let p = poster_from_file(&input, &[500, 3000], 160).unwrap();
    assert!((2000..4000).contains(&p.at_ms), "{}", p.at_ms);
}
