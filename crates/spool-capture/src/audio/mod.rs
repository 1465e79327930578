//! Sound sources: the microphone and the computer's own sound (the monitor
//! of an output), each read on its own thread in 10 ms chunks of 48 kHz
//! stereo float and placed on the recording's timeline by the same
//! [`Clock`] the screen uses, so a pause silences and freezes both at one
//! instant. A chunk's place comes from its capture instant (read time minus
//! the stream's reported latency); the [`Placer`] keeps the device's own
//! clock from drifting away from it. The [`Mixer`] sums the sources, with
//! per-source gain and a mute, for the encoder. A device that goes away
//! leaves silence (the mixer stops waiting for it), is reported as
//! [`AudioState::Lost`], and is reopened every half second until it is back
//! ([`AudioState::Restored`]). On Linux the sources speak the PulseAudio
//! protocol (PulseAudio, or pipewire-pulse on PipeWire desktops) through
//! libpulse; a synthetic tone source serves tests and benchmarks.

mod mixer;
#[cfg(any(target_os = "macos", target_os = "windows"))]
mod platform;
#[cfg(target_os = "linux")]
mod pulse;
mod source;
mod synthetic;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

pub use mixer::{Mixer, Placer, TrackId, frames_in, peak};
pub use synthetic::Tone;

use crate::Clock;

/// The track's sample rate: AAC-LC at 48 kHz plays everywhere.
pub const SAMPLE_RATE: u32 = 48_000;
/// Stereo, interleaved.
pub const CHANNELS: usize = 2;
/// Frames per chunk a source reads (10 ms).
pub const CHUNK_FRAMES: usize = 480;

/// Which of a recording's sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioKind {
    /// The microphone: the creator's voice.
    Mic,
    /// The computer's own sound: the monitor of an output.
    System,
}

impl AudioKind {
    /// The word events carry (`"source":"mic"`).
    pub fn as_str(self) -> &'static str {
        match self {
            AudioKind::Mic => "mic",
            AudioKind::System => "system",
        }
    }
}

/// What happened to a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioState {
    /// Delivering since the start.
    Active,
    /// Gone (unplugged, the audio server restarted): silence in its place.
    Lost,
    /// Back after a loss.
    Restored,
}

impl AudioState {
    pub fn as_str(self) -> &'static str {
        match self {
            AudioState::Active => "active",
            AudioState::Lost => "lost",
            AudioState::Restored => "restored",
        }
    }
}

/// A source's change of state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioEvent {
    pub kind: AudioKind,
    pub state: AudioState,
    /// Why it was lost.
    pub detail: Option<String>,
}

/// What to record. Device names are the audio server's own (stable across
/// restarts); `default` picks the default input (a microphone, never a
/// monitor) or the default output; `synthetic:HZ[@PPM]` is a test tone from
/// a device clock skewed by PPM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioRequest {
    pub mic: Option<String>,
    pub system: Option<String>,
    pub mic_gain_db: f32,
    pub system_gain_db: f32,
}

impl AudioRequest {
    pub fn is_empty(&self) -> bool {
        self.mic.is_none() && self.system.is_none()
    }

    /// Checks the gains (−60 to +30 dB).
    pub fn validate(&self) -> Result<(), AudioError> {
        for (what, g) in [
            ("--mic-gain", self.mic_gain_db),
            ("--system-gain", self.system_gain_db),
        ] {
            if !g.is_finite() || !(-60.0..=30.0).contains(&g) {
                return Err(AudioError::Invalid(format!(
                    "{what} must be between -60 and 30 dB"
                )));
            }
        }
        Ok(())
    }
}

/// Why sound cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// No audio server, or not the device asked for.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

/// An input or output the audio server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDevice {
    /// The stable name to pass to `--mic` (inputs) or `--system-audio`
    /// (outputs).
    pub name: String,
    pub description: String,
    /// The server's default input (or output).
    pub default: bool,
    /// For outputs: the source that carries what it plays.
    pub monitor: Option<String>,
}

/// The audio server's inputs (microphones; monitors left out) and outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioDevices {
    pub inputs: Vec<AudioDevice>,
    pub outputs: Vec<AudioDevice>,
}

/// Lists the devices; [`AudioError::Unavailable`] without an audio server.
pub fn devices() -> Result<AudioDevices, AudioError> {
    #[cfg(target_os = "linux")]
    return pulse::devices();
    #[cfg(any(target_os = "macos", target_os = "windows"))]
    return platform::devices();
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    Err(AudioError::Unavailable(
        "this platform has no sound capture in this version".into(),
    ))
}

/// A source that reads one chunk at a time.
pub(crate) trait Input {
    /// Fills `buf` (interleaved stereo, [`CHUNK_FRAMES`] frames); returns
    /// the monotonic instant it arrived ([`DeviceClock`] tells when it was
    /// heard).
    fn read(&mut self, buf: &mut [f32]) -> Result<std::time::Instant, String>;
}

/// When a device's samples were heard, from when they arrived: a sample
/// cannot arrive before it was heard, so the earliest of (arrival − the
/// samples' duration so far), over a sliding window, is when the device's
/// first sample was heard (plus the smallest delivery latency). This holds
/// whether the server delivers steadily, in bursts (virtual devices render
/// in blocks) or a backlog at once — provided a chunk is stamped a little
/// after it arrived ([`HOLD`]), once the rest of its burst is in — and needs
/// no latency report (the server's are unreliable for virtual devices). A
/// device clock that drifts shows as a slow slope, which the [`Placer`]
/// corrects.
#[derive(Debug)]
pub struct DeviceClock {
    frames: u64,
    /// (arrival, start estimate) of the window's candidates, increasing
    /// estimates (a monotonic deque: the front is the window's minimum).
    window: std::collections::VecDeque<(std::time::Instant, std::time::Instant)>,
}

/// The window [`DeviceClock`] takes its minimum over.
const STAMP_WINDOW: Duration = Duration::from_secs(3);
/// How long a chunk is held after it arrived before it is stamped and
/// placed: the rest of a burst or backlog arrives within it.
pub const HOLD: Duration = Duration::from_millis(50);

impl Default for DeviceClock {
    fn default() -> Self {
        DeviceClock::new()
    }
}

impl DeviceClock {
    pub fn new() -> DeviceClock {
        DeviceClock {
            frames: 0,
            window: Default::default(),
        }
    }

    /// A chunk of `frames` arrived at `now`; returns the frames before it
    /// (its index for [`DeviceClock::heard`]).
    pub fn arrive(&mut self, now: std::time::Instant, frames: usize) -> u64 {
        let before = self.frames;
        self.frames += frames as u64;
        let total = Duration::from_nanos(self.frames * 1_000_000_000 / SAMPLE_RATE as u64);
        let start = now.checked_sub(total).unwrap_or(now);
        while self.window.back().is_some_and(|(_, s)| *s >= start) {
            self.window.pop_back();
        }
        self.window.push_back((now, start));
        while self.window.len() > 1
            && self
                .window
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > STAMP_WINDOW)
        {
            self.window.pop_front();
        }
        before
    }

    /// When the frame after the first `before` ones was heard, as far as
    /// the arrivals so far tell.
    pub fn heard(&self, before: u64) -> std::time::Instant {
        let first = self
            .window
            .front()
            .map(|(_, s)| *s)
            .unwrap_or_else(std::time::Instant::now);
        first + Duration::from_nanos(before * 1_000_000_000 / SAMPLE_RATE as u64)
    }

    /// A chunk of `frames` arrived at `now`: the instant its first frame
    /// was heard, as far as the arrivals so far tell.
    #[cfg(test)]
    pub(crate) fn stamp(&mut self, now: std::time::Instant, frames: usize) -> std::time::Instant {
        let before = self.arrive(now, frames);
        self.heard(before)
    }
}

/// How to (re)open one source.
#[derive(Debug, Clone)]
pub(crate) enum Opener {
    #[cfg(target_os = "linux")]
    Pulse {
        device: String,
        stream: &'static str,
    },
    #[cfg(any(target_os = "macos", target_os = "windows"))]
    Cpal {
        device: String,
        loopback: bool,
    },
    Tone(Tone),
}

impl Opener {
    fn open(&self) -> Result<Box<dyn Input>, String> {
        match self {
            #[cfg(target_os = "linux")]
            Opener::Pulse { device, stream } => {
                pulse::open(device, stream).map(|i| Box::new(i) as Box<dyn Input>)
            }
            #[cfg(any(target_os = "macos", target_os = "windows"))]
            Opener::Cpal { device, loopback } => {
                platform::open(device, *loopback).map(|i| Box::new(i) as Box<dyn Input>)
            }
            Opener::Tone(t) => Ok(Box::new(t.start())),
        }
    }

    /// What the events and logs call it.
    pub(crate) fn describe(&self) -> String {
        match self {
            #[cfg(target_os = "linux")]
            Opener::Pulse { device, .. } => device.clone(),
            #[cfg(any(target_os = "macos", target_os = "windows"))]
            Opener::Cpal { device, .. } => device.clone(),
            Opener::Tone(t) => t.describe(),
        }
    }
}

fn resolve(kind: AudioKind, name: &str) -> Result<Opener, AudioError> {
    if let Some(spec) = name.strip_prefix("synthetic:") {
        return Ok(Opener::Tone(Tone::parse(spec)?));
    }
    #[cfg(target_os = "linux")]
    return pulse::resolve(kind, name);
    #[cfg(any(target_os = "macos", target_os = "windows"))]
    return platform::resolve(kind, name);
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    {
        let _ = kind;
        Err(AudioError::Unavailable(
            "this platform has no sound capture in this version".into(),
        ))
    }
}

/// Sources resolved and checked (each opened once), not yet reading.
pub struct Prepared {
    sources: Vec<(AudioKind, f32, Opener)>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sources.iter().map(|(k, _, o)| (k, o.describe())))
            .finish()
    }
}

fn gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Resolves and opens what `request` asks for, so that a missing audio
/// server or device fails before anything is recorded.
pub fn prepare(request: &AudioRequest) -> Result<Prepared, AudioError> {
    request.validate()?;
    let mut sources = Vec::new();
    for (kind, name, db) in [
        (AudioKind::Mic, &request.mic, request.mic_gain_db),
        (AudioKind::System, &request.system, request.system_gain_db),
    ] {
        let Some(name) = name else { continue };
        let opener = resolve(kind, name)?;
        // Opened and closed again: the source's thread opens it for good,
        // so nothing piles up in the server's buffer before the recording.
        opener.open().map_err(|e| {
            AudioError::Unavailable(format!(
                "cannot record the {} ({}): {e}",
                kind.as_str(),
                opener.describe()
            ))
        })?;
        sources.push((kind, gain(db), opener));
    }
    Ok(Prepared { sources })
}

/// What a recording's sound came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioReport {
    /// Sources recorded (mixed into one track).
    pub sources: usize,
    /// The offset between the sound's place and its timestamps at the end,
    /// the largest of the sources (ms, positive: sound later).
    pub offset_ms: f64,
    /// The largest smoothed offset seen during the recording (ms).
    pub max_offset_ms: f64,
    /// Frames taken out (negative) or added by drift correction.
    pub corrected_frames: i64,
}

/// Running sound sources.
pub struct AudioCapture {
    mixer: Arc<Mixer>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<source::Report>>,
}

impl Prepared {
    /// Starts reading every source on its own thread, placing the sound on
    /// `clock`'s timeline; changes of state go to `events`.
    pub fn start(
        self,
        clock: Arc<Clock>,
        events: Sender<AudioEvent>,
    ) -> std::io::Result<AudioCapture> {
        let mixer = Arc::new(Mixer::new());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (kind, gain, opener) in self.sources {
            let track = mixer.add_track(kind, gain);
            let run = source::Run {
                kind,
                track,
                gain,
                opener,
                mixer: mixer.clone(),
                clock: clock.clone(),
                stop: stop.clone(),
                events: events.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("spool-audio-{}", kind.as_str()))
                .spawn(move || run.run());
            match handle {
                Ok(h) => threads.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(AudioCapture {
            mixer,
            stop,
            threads,
        })
    }
}

impl AudioCapture {
    /// The mix, for the encoder.
    pub fn mixer(&self) -> Arc<Mixer> {
        self.mixer.clone()
    }

    /// Stops the sources (they end after their current chunk) and reports.
    pub fn finish(mut self) -> AudioReport {
        self.stop.store(true, Ordering::Relaxed);
        self.mixer.close();
        let mut report = AudioReport {
            sources: self.threads.len(),
            ..Default::default()
        };
        for t in self.threads.drain(..) {
            if let Ok(r) = t.join() {
                if r.offset_ms.abs() > report.offset_ms.abs() {
                    report.offset_ms = r.offset_ms;
                }
                report.max_offset_ms = report.max_offset_ms.max(r.max_offset_ms);
                report.corrected_frames += r.corrected;
            }
        }
        report
    }
}

impl Drop for AudioCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.mixer.close();
    }
}

/// How long a lost source waits between attempts to reopen it.
pub(crate) const REOPEN_EVERY: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn device_stamps_see_through_bursts_and_backlogs() {
        let t0 = Instant::now();
        let mut c = DeviceClock::new();
        // A backlog of 50 chunks (500 ms) arrives at once at t0 + 510 ms…
        let at = t0 + Duration::from_millis(510);
        let first = c.stamp(at, 480);
        for _ in 1..50 {
            c.stamp(at, 480);
        }
        // …then chunks in real time, a ms or so late: the start is found.
        let mut s = first;
        for k in 50..200u64 {
            let late = Duration::from_micros(1000 + (k % 7) * 300);
            s = c.stamp(t0 + Duration::from_millis(10 * (k + 1)) + late, 480);
        }
        let want = t0 + Duration::from_millis(10 * 199);
        assert!(
            s.max(want) - s.min(want) < Duration::from_millis(2),
            "{:?}",
            s.max(want) - s.min(want)
        );
        // Bursts of 100 ms: still on the device's timeline.
        for k in 200..400u64 {
            let burst_end = t0 + Duration::from_millis(((k + 10) / 10) * 100 + 1);
            s = c.stamp(burst_end, 480);
        }
        let want = t0 + Duration::from_millis(10 * 399);
        assert!(
            s.max(want) - s.min(want) < Duration::from_millis(3),
            "{:?}",
            s.max(want) - s.min(want)
        );
    }
}
