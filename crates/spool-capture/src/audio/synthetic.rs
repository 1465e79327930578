//! A synthetic sound device for tests and benchmarks (`synthetic:HZ[@PPM]`):
//! a sine tone at HZ with a short click at the start of every second of
//! real time, produced in real time by a device clock running PPM parts per
//! million fast (or slow), the way a real sound card's crystal drifts from
//! the computer's clock. The click marks where each second truly was, so a
//! decoded recording tells how far its sound drifted from its timeline.

use std::time::{Duration, Instant};

use super::{AudioError, CHANNELS, Input, SAMPLE_RATE};

/// The tone's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Tone {
    pub freq: f64,
    /// Device clock error, parts per million (positive: fast).
    pub ppm: f64,
}

impl Tone {
    /// Parses `HZ[@PPM]` (`440`, `1000@+500`).
    pub fn parse(spec: &str) -> Result<Tone, AudioError> {
        let bad = || {
            AudioError::Invalid(format!(
                "synthetic:{spec}: expected synthetic:HZ or synthetic:HZ@PPM (20–20000 Hz, ±5000 ppm)"
            ))
        };
        let (f, p) = spec.split_once('@').unwrap_or((spec, "0"));
        let freq: f64 = f.parse().map_err(|_| bad())?;
        let ppm: f64 = p.trim_start_matches('+').parse().map_err(|_| bad())?;
        if !(20.0..=20_000.0).contains(&freq) || !(-5000.0..=5000.0).contains(&ppm) {
            return Err(bad());
        }
        Ok(Tone { freq, ppm })
    }

    pub fn describe(&self) -> String {
        format!("synthetic {} Hz tone ({:+} ppm)", self.freq, self.ppm)
    }

    pub(crate) fn start(&self) -> ToneInput {
        ToneInput {
            tone: self.clone(),
            started: Instant::now(),
            produced: 0,
        }
    }
}

pub(crate) struct ToneInput {
    tone: Tone,
    started: Instant,
    /// Frames produced so far, at the device's (skewed) rate.
    produced: u64,
}

/// How long a click lasts.
const CLICK: Duration = Duration::from_millis(5);

impl Input for ToneInput {
    fn read(&mut self, buf: &mut [f32]) -> Result<Instant, String> {
        let rate = SAMPLE_RATE as f64 * (1.0 + self.tone.ppm / 1e6);
        let frames = buf.len() / CHANNELS;
        // The chunk arrives once its last frame has been "heard".
        let ready =
            self.started + Duration::from_secs_f64((self.produced + frames as u64) as f64 / rate);
        if let Some(wait) = ready.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for i in 0..frames {
            // The true (real) time of this frame.
            let t = (self.produced + i as u64) as f64 / rate;
            let in_click = t.fract() < CLICK.as_secs_f64();
            let v = if in_click {
                0.9
            } else {
                0.3 * (2.0 * std::f64::consts::PI * self.tone.freq * t).sin()
            } as f32;
            buf[i * CHANNELS] = v;
            buf[i * CHANNELS + 1] = v;
        }
        self.produced += frames as u64;
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            Tone::parse("440").unwrap(),
            Tone {
                freq: 440.0,
                ppm: 0.0
            }
        );
        assert_eq!(Tone::parse("1000@+500").unwrap().ppm, 500.0);
        assert_eq!(Tone::parse("1000@-20").unwrap().ppm, -20.0);
        assert!(Tone::parse("5").is_err());
        assert!(Tone::parse("440@9999").is_err());
        assert!(Tone::parse("x").is_err());
    }
}
