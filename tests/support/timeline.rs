//! A recording's timeline as a viewer sees it: every decoded frame's
//! presentation time and mean colour (from FFmpeg), grouped into runs of
//! one painted colour, so tests can check what was captured when — a pause
//! leaves no frames of what was shown meanwhile, no hole in the timestamps
//! and no frozen stretch.

use std::path::Path;
use std::process::Command;

/// One decoded frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub pts: f64,
    pub rgb: [u8; 3],
}

/// The colours tests paint with xsetroot.
const PALETTE: [(&str, [u8; 3]); 8] = [
    ("red", [255, 0, 0]),
    ("green", [0, 255, 0]),
    ("blue", [0, 0, 255]),
    ("yellow", [255, 255, 0]),
    ("white", [255, 255, 255]),
    ("black", [0, 0, 0]),
    ("magenta", [255, 0, 255]),
    ("cyan", [0, 255, 255]),
];

impl Frame {
    /// The nearest painted colour's name.
    pub fn colour(&self) -> &'static str {
        let d = |c: &[u8; 3]| -> i32 {
            (0..3)
                .map(|k| (i32::from(self.rgb[k]) - i32::from(c[k])).pow(2))
                .sum()
        };
        PALETTE
            .iter()
            .min_by_key(|(_, c)| d(c))
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Every frame of `path`'s video, in order (timestamps as stored, no
/// frame-rate conversion).
pub fn frames(path: &Path) -> Vec<Frame> {
    frames_in(path, None)
}

/// Like [`frames`], the colour taken only inside `crop` (x, y, width,
/// height in pixels): e.g. the part of the screen no window covers.
pub fn frames_in(path: &Path, crop: Option<(u32, u32, u32, u32)>) -> Vec<Frame> {
    let filter = match crop {
        Some((x, y, w, h)) => format!("crop={w}:{h}:{x}:{y},scale=4:4"),
        None => "scale=4:4".to_owned(),
    };
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(probe.status.success(), "ffprobe failed");
    let times: Vec<f64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let raw = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "passthrough", "-vf", &filter, "-f", "rawvideo"])
        .args(["-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let colours: Vec<[u8; 3]> = raw
        .stdout
        .chunks_exact(48)
        .map(|px| {
            let mut s = [0u32; 3];
            for p in px.chunks_exact(3) {
                for k in 0..3 {
                    s[k] += u32::from(p[k]);
                }
            }
            [(s[0] / 16) as u8, (s[1] / 16) as u8, (s[2] / 16) as u8]
        })
        .collect();
    assert_eq!(times.len(), colours.len(), "timestamps and decoded frames");
    times
        .into_iter()
        .zip(colours)
        .map(|(pts, rgb)| Frame { pts, rgb })
        .collect()
}

/// A run of frames of one colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub colour: &'static str,
    pub first: f64,
    pub last: f64,
    pub frames: usize,
}

/// The frames grouped into runs of one colour.
pub fn runs(frames: &[Frame]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for f in frames {
        match out.last_mut() {
            Some(r) if r.colour == f.colour() => {
                r.last = f.pts;
                r.frames += 1;
            }
            _ => out.push(Run {
                colour: f.colour(),
                first: f.pts,
                last: f.pts,
                frames: 1,
            }),
        }
    }
    out
}

/// The longest step between consecutive frames, in seconds.
pub fn longest_step(frames: &[Frame]) -> f64 {
    frames
        .windows(2)
        .map(|w| w[1].pts - w[0].pts)
        .fold(0.0, f64::max)
}
