//! The analysis of a recording's sound: decoded to mono 48 kHz float with
//! ffmpeg, tone power by Goertzel, levels, windows and onsets.

use std::path::Path;
use std::process::Command;

/// The sound of a recording, decoded to mono 48 kHz float.
pub fn decode(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", "48000", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The power of `hz` in `samples` (Goertzel), normalised so a full-scale
/// sine scores about 0.25 × amplitude².
pub fn power(samples: &[f32], hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = x as f64 + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let p = s1 * s1 + s2 * s2 - c * s1 * s2;
    p / (samples.len() as f64 * samples.len() as f64)
}

/// The root-mean-square level of `samples`.
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The samples from `from` to `to` seconds.
pub fn window(samples: &[f32], from: f64, to: f64) -> &[f32] {
    let a = ((from * 48_000.0) as usize).min(samples.len());
    let b = ((to * 48_000.0) as usize).clamp(a, samples.len());
    &samples[a..b]
}

/// Where the sound turns loud (|x| above `threshold` after at least `gap`
/// seconds below it), in seconds: the onsets of clicks.
pub fn onsets(samples: &[f32], threshold: f32, gap: f64) -> Vec<f64> {
    let gap = (gap * 48_000.0) as usize;
    let mut out = Vec::new();
    let mut quiet = gap;
    for (i, v) in samples.iter().enumerate() {
        if v.abs() > threshold {
            if quiet >= gap {
                out.push(i as f64 / 48_000.0);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    out
}
