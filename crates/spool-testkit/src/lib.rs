//! Test support that Spool's crate tests and its end-to-end suites share,
//! depending on no Spool crate (so no crate's tests depend on the crates
//! they test through a detour): a virtual X display ([`Xvfb`]), ffprobe
//! queries on a recording ([`ffprobe`], [`keyframe_times`], [`frame_count`],
//! [`duration_s`]), the analysis of its decoded sound ([`audio`]), a
//! private S3-compatible store ([`garage`]), and for the scale-out suites
//! a private PostgreSQL cluster ([`postgres`]) and a load balancer in front
//! of several servers ([`nginx`]).
//! `spool-e2e` re-exports all of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod audio;
pub mod garage;
pub mod nginx;
pub mod postgres;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A virtual X display (Xvfb, `-noreset` so painted backgrounds stay).
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Xvfb {
    /// Starts Xvfb on a free display number (it reports the number it took
    /// on stdout once it is ready).
    pub fn start(width: u32, height: u32) -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-noreset",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                &format!("{width}x{height}x24"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed by scripts/setup.sh");
        let mut out = child.stdout.take().unwrap();
        let mut s = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.ends_with('\n') && Instant::now() < deadline {
            let mut b = [0u8; 16];
            let n = out.read(&mut b).unwrap();
            if n == 0 {
                break;
            }
            s.push_str(std::str::from_utf8(&b[..n]).unwrap());
        }
        assert!(!s.trim().is_empty(), "Xvfb did not report a display");
        Xvfb {
            child,
            display: format!(":{}", s.trim()),
        }
    }

    /// Paints the root window one solid colour.
    pub fn paint(&self, colour: &str) {
        let ok = Command::new("xsetroot")
            .args(["-display", &self.display, "-solid", colour])
            .status()
            .unwrap()
            .success();
        assert!(ok, "xsetroot failed");
    }
}

/// Runs ffprobe on `path` with `args`; its output, trimmed.
pub fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe is installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The presentation times of the video's keyframes, as ffprobe prints
/// them ("1.550000").
pub fn keyframe_times(path: &Path) -> Vec<String> {
    ffprobe(
        path,
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
    .filter_map(|l| l.split(',').next().map(str::to_owned))
    .collect()
}

/// The number of decoded video frames in `path`.
pub fn frame_count(path: &Path) -> u64 {
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
    .parse()
    .unwrap()
}

/// The container's duration in seconds.
pub fn duration_s(path: &Path) -> f64 {
    ffprobe(
        path,
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
    )
    .parse()
    .unwrap()
}
