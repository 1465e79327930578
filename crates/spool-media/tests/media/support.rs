//! Fixtures and checks shared by the tests: inputs made with the ffmpeg
//! CLI, outputs inspected with ffprobe and a top-level box walk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use spool_media::normalize::{Plan, normalize};
use spool_media::probe::probe;

/// Runs the ffmpeg CLI, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn ffprobe(args: &[&str], file: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `size` video of `secs` seconds with a 440 Hz tone; `extra` are the
/// encoding arguments, `name` the output file in `dir`.
pub fn make(dir: &Path, name: &str, size: &str, secs: u32, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let v = format!("testsrc2=size={size}:rate=25:duration={secs}");
    let a = format!("sine=frequency=440:sample_rate=44100:duration={secs}");
    let mut args = vec!["-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

pub fn format_duration(file: &Path) -> f64 {
    ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        file,
    )
    .trim()
    .parse()
    .unwrap()
}

pub fn codec_of(file: &Path, stream: &str) -> String {
    ffprobe(
        &[
            "-select_streams",
            stream,
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ],
        file,
    )
    .trim()
    .to_string()
}

/// Offsets of the top-level `moof` boxes.
pub fn moof_offsets(file: &Path) -> Vec<u64> {
    let bytes = std::fs::read(file).unwrap();
    let mut at = 0usize;
    let mut moofs = Vec::new();
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let size = if size == 1 {
            u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize
        } else {
            size
        };
        if &bytes[at + 4..at + 8] == b"moof" {
            moofs.push(at as u64);
        }
        if size < 8 {
            break;
        }
        at += size;
    }
    moofs
}

/// Everything the player relies on: fragmented, planned codecs, duration
/// kept, keyframe-led fragments, clean decode, both streams present.
pub fn check_output(input: &Path, out: &Path, vcodec: &str, acodec: &str) {
    let moofs = moof_offsets(out);
    assert!(moofs.len() >= 2, "not fragmented: {moofs:?}");
    let start: f64 = ffprobe(
        &["-show_entries", "format=start_time", "-of", "csv=p=0"],
        out,
    )
    .trim()
    .parse()
    .unwrap();
    assert!(start.abs() < 0.05, "output starts at {start} s");
    assert_eq!(codec_of(out, "v:0"), vcodec);
    assert_eq!(codec_of(out, "a:0"), acodec);
    let (din, dout) = (format_duration(input), format_duration(out));
    assert!((din - dout).abs() <= 0.1, "duration {din} → {dout}");
    // pos,flags of every video packet, in file order.
    let packets: Vec<(u64, bool)> = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pos,flags",
            "-of",
            "csv=p=0",
        ],
        out,
    )
    .lines()
    .filter_map(|l| {
        let mut it = l.split(',');
        let pos = it.next()?.parse().ok()?;
        Some((pos, it.next()?.contains('K')))
    })
    .collect();
    assert!(!packets.is_empty());
    for m in &moofs {
        let first = packets.iter().find(|(pos, _)| pos > m);
        if let Some((pos, key)) = first {
            assert!(key, "fragment at {m} starts with a non-key packet at {pos}");
        }
    }
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(out)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        dec.status.success() && dec.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
}

/// Normalizes `input`, checking progress is monotonic and reaches 0.9.
pub fn run_normalize(input: &Path, out: &Path) -> (Plan, f64) {
    let p = probe(input).unwrap();
    let mut seen = Vec::new();
    let start = Instant::now();
    let plan = normalize(
        input,
        out,
        &p,
        &mut |x| seen.push(x),
        &AtomicBool::new(false),
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().any(|x| *x >= 0.9), "{seen:?}");
    assert!(seen.iter().all(|x| (0.0..=1.0).contains(x)));
    (plan, secs)
}

/// 2 s of black, then the test pattern.
pub fn black_then_pattern(dir: &Path, extra: &[&str]) -> PathBuf {
    let path = dir.join("black.mp4");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "color=black:size=640x360:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=4",
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-g",
        "25",
    ];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}
