//! The bitrate cap a recording's uplink watcher sets and the encoding thread
//! applies. It is a VBV cap (`maxrate` + a one-second `bufsize`) on top of
//! the quality setting (CRF): below the cap the encoder spends what the
//! picture needs, above it the cap wins. x264 can change VBV limits between
//! frames only if VBV was on from the start, so a capped recording opens
//! with the cap at its [`RateCap::ceiling_kbps`], a limit no screen content
//! reaches at the default quality, and the watcher lowers it from there.

use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest cap: below this a screen recording stops being legible.
pub const FLOOR_KBPS: u32 = 300;

/// A bitrate cap shared between threads.
#[derive(Debug)]
pub struct RateCap {
    kbps: AtomicU32,
    ceiling: u32,
}

impl RateCap {
    /// A cap that starts at (and never rises above) `ceiling_kbps`.
    pub fn new(ceiling_kbps: u32) -> RateCap {
        let ceiling = ceiling_kbps.max(FLOOR_KBPS);
        RateCap {
            kbps: AtomicU32::new(ceiling),
            ceiling,
        }
    }

    /// A ceiling for a recording of this size and rate: half a bit per
    /// pixel per frame, about 4× what high-motion content needs at the
    /// default CRF (testsrc2 at 720p30 is 5.4 Mbit/s, the ceiling 13.8).
    pub fn ceiling_for(width: u32, height: u32, fps: u32) -> u32 {
        let bits = u64::from(width) * u64::from(height) * u64::from(fps) / 2;
        ((bits / 1000) as u32).max(2000)
    }

    /// Sets the cap (clamped to the floor and the ceiling); returns the value set.
    pub fn set(&self, kbps: u32) -> u32 {
        let v = kbps.clamp(FLOOR_KBPS, self.ceiling);
        self.kbps.store(v, Ordering::Relaxed);
        v
    }

    /// The cap now, in kbit/s.
    pub fn get(&self) -> u32 {
        self.kbps.load(Ordering::Relaxed)
    }

    pub fn ceiling_kbps(&self) -> u32 {
        self.ceiling
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_to_floor_and_ceiling() {
        let cap = RateCap::new(5000);
        assert_eq!(cap.get(), 5000);
        assert_eq!(cap.set(100), FLOOR_KBPS);
        assert_eq!(cap.set(9000), 5000);
        assert_eq!(cap.set(1200), 1200);
        assert_eq!(cap.get(), 1200);
    }

    #[test]
    fn ceiling_scales_with_pixels() {
        assert_eq!(RateCap::ceiling_for(1280, 720, 30), 13_824);
        assert_eq!(RateCap::ceiling_for(1920, 1080, 30), 31_104);
        assert_eq!(RateCap::ceiling_for(64, 48, 10), 2000);
    }
}
