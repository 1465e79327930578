//! The meeting point of the sound sources and the encoder: every source
//! writes its samples at their place on the recording's timeline (a frame
//! index at 48 kHz), and the encoder takes the mix of all of them up to a
//! timeline position. A source that has not delivered that far yet is
//! waited for, briefly (its samples are a few milliseconds behind real
//! time); a lost one is not waited for and is silence. Placing samples,
//! correcting the device's clock drift and cutting out paused spans is the
//! [`Placer`]'s work, one per source, independent of real time so it can be
//! driven by a simulated device in tests and benchmarks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{AudioKind, CHANNELS, SAMPLE_RATE};

/// At most this much audio waits in a track for the encoder (the encoder
/// takes at every fragment, ≤ 10 s): beyond it the oldest is dropped.
const MAX_BUFFERED_FRAMES: usize = 30 * SAMPLE_RATE as usize;

/// One source's samples on the timeline.
#[derive(Debug)]
struct Track {
    gain: f32,
    /// Timeline frame index of `buf`'s first frame.
    start: u64,
    /// Interleaved stereo.
    buf: VecDeque<f32>,
    /// Delivering: the mixer waits for it. A lost device is not waited for.
    live: bool,
}

impl Track {
    fn end(&self) -> u64 {
        self.start + (self.buf.len() / CHANNELS) as u64
    }
}

#[derive(Debug, Default)]
struct State {
    /// Frames handed to the encoder so far.
    read: u64,
    /// Muted spans of the timeline, `[from, to)` (`to` = `u64::MAX` while
    /// muted): silence exactly there, however the encoder takes.
    mutes: Vec<(u64, u64)>,
    tracks: Vec<Track>,
    closed: bool,
}

/// The mix of a recording's sound sources; share it with `Arc`.
#[derive(Debug, Default)]
pub struct Mixer {
    state: Mutex<State>,
    wrote: Condvar,
    muted: AtomicBool,
    /// The encoder is taking the last of the sound: sources hand over what
    /// they hold at once instead of waiting for its stamp to settle.
    draining: AtomicBool,
    /// Per track: the newest level (f32 bits), 0–1.
    levels: Mutex<Vec<(AudioKind, std::sync::Arc<AtomicU32>)>>,
}

/// A track's slot in the mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackId(usize);

impl Mixer {
    pub fn new() -> Mixer {
        Mixer::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a track with a linear gain; it starts not live (silence).
    pub fn add_track(&self, kind: AudioKind, gain: f32) -> TrackId {
        let mut s = self.lock();
        let start = s.read;
        s.tracks.push(Track {
            gain,
            start,
            buf: VecDeque::new(),
            live: false,
        });
        let id = TrackId(s.tracks.len() - 1);
        if let Ok(mut l) = self.levels.lock() {
            l.push((kind, Default::default()));
        }
        id
    }

    /// Whether the mixer waits for the track (it is delivering).
    pub fn set_live(&self, id: TrackId, live: bool) {
        let mut s = self.lock();
        if let Some(t) = s.tracks.get_mut(id.0) {
            t.live = live;
        }
        drop(s);
        if !live {
            self.set_level(id, 0.0);
        }
        self.wrote.notify_all();
    }

    /// Writes interleaved stereo frames starting at timeline frame `at`.
    /// Frames the encoder has already taken are dropped; a gap after what
    /// the track holds is silence; an overlap replaces the held frames.
    pub fn write(&self, id: TrackId, at: u64, samples: &[f32]) {
        let mut s = self.lock();
        let read = s.read;
        let Some(t) = s.tracks.get_mut(id.0) else {
            return;
        };
        let mut at = at;
        let mut samples = samples;
        if at < read {
            let skip = ((read - at) as usize * CHANNELS).min(samples.len());
            samples = &samples[skip..];
            at = read;
        }
        if t.buf.is_empty() {
            t.start = at.max(read);
        }
        let end = t.end();
        if at > end {
            let gap = (at - end) as usize * CHANNELS;
            t.buf.extend(std::iter::repeat_n(0.0, gap));
        } else if at < end {
            let keep = (at.saturating_sub(t.start)) as usize * CHANNELS;
            t.buf.truncate(keep);
        }
        t.buf.extend(samples.iter().copied());
        let over = t.buf.len().saturating_sub(MAX_BUFFERED_FRAMES * CHANNELS);
        if over > 0 {
            t.buf.drain(..over);
            t.start += (over / CHANNELS) as u64;
        }
        drop(s);
        self.wrote.notify_all();
    }

    /// Silences the mix from timeline frame `at` on (timing kept), or lets
    /// it through again from `at`.
    pub fn set_muted(&self, muted: bool, at: u64) {
        let mut s = self.lock();
        if self.muted.swap(muted, Ordering::Relaxed) == muted {
            return;
        }
        if muted {
            s.mutes.push((at, u64::MAX));
        } else if let Some(last) = s.mutes.last_mut() {
            last.1 = at.max(last.0);
        }
    }

    /// Asks the sources to hand over what they hold now (the end).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Relaxed)
    }

    pub(crate) fn set_level(&self, id: TrackId, level: f32) {
        if let Ok(l) = self.levels.lock()
            && let Some((_, a)) = l.get(id.0)
        {
            a.store(level.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        }
    }

    pub(crate) fn level_cell(&self, id: TrackId) -> Option<std::sync::Arc<AtomicU32>> {
        self.levels.lock().ok()?.get(id.0).map(|(_, a)| a.clone())
    }

    /// The newest level of each source's kind, 0–1 (the louder track when
    /// two share a kind).
    pub fn level(&self, kind: AudioKind) -> Option<f32> {
        let l = self.levels.lock().ok()?;
        l.iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, a)| f32::from_bits(a.load(Ordering::Relaxed)))
            .reduce(f32::max)
    }

    /// No more writes will come: waiting for tracks ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wrote.notify_all();
    }

    /// Frames handed out so far.
    pub fn taken(&self) -> u64 {
        self.lock().read
    }

    /// The mix from where the last take ended up to timeline frame `until`
    /// (interleaved stereo), after waiting until every live track has
    /// delivered that far or `deadline` passes (what is missing then is
    /// silence).
    pub fn take(&self, until: u64, deadline: Instant) -> Vec<f32> {
        let mut s = self.lock();
        loop {
            let waiting = !s.closed && s.tracks.iter().any(|t| t.live && t.end() < until);
            let now = Instant::now();
            if !waiting || now >= deadline {
                break;
            }
            s = self
                .wrote
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        let read = s.read;
        if until <= read {
            return Vec::new();
        }
        let n = (until - read) as usize * CHANNELS;
        let mut out = vec![0.0f32; n];
        for t in &mut s.tracks {
            // Frames before `read` were never wanted (written late).
            if t.start < read {
                let drop = ((read - t.start) as usize * CHANNELS).min(t.buf.len());
                t.buf.drain(..drop);
                t.start = read;
            }
            let off = (t.start - read) as usize * CHANNELS;
            let take = (n.saturating_sub(off)).min(t.buf.len());
            for (o, v) in out[off.min(n)..].iter_mut().zip(t.buf.iter().take(take)) {
                *o += *v * t.gain;
            }
            t.buf.drain(..take);
            t.start = t.start.max(read) + (take / CHANNELS) as u64;
            if t.buf.is_empty() {
                t.start = t.start.max(until);
            }
        }
        for o in &mut out {
            *o = o.clamp(-1.0, 1.0);
        }
        for &(from, to) in &s.mutes {
            let (a, b) = (from.max(read), to.min(until));
            if a < b {
                out[(a - read) as usize * CHANNELS..(b - read) as usize * CHANNELS].fill(0.0);
            }
        }
        s.mutes.retain(|&(_, to)| to > until);
        s.read = until;
        out
    }
}

/// Frames at 48 kHz in `d`.
pub fn frames_in(d: Duration) -> u64 {
    (d.as_nanos() * SAMPLE_RATE as u128 / 1_000_000_000) as u64
}

/// Beyond this distance between where a source's samples land and where its
/// timestamps say they belong, the source is re-anchored at once (a device
/// that came back, samples the server dropped) instead of corrected
/// gradually.
const REANCHOR_FRAMES: f64 = 0.100 * SAMPLE_RATE as f64;
/// Corrections start when the smoothed error passes this (1 ms).
const CORRECT_FRAMES: f64 = 0.001 * SAMPLE_RATE as f64;
/// At most this many frames are taken out of or added to one chunk (1.7 %
/// for 480: a brief, inaudible speed change while a large error closes).
const MAX_STEP: f64 = 8.0;
/// Smoothing of the error: timestamps jitter by a ms or two with
/// scheduling (a time constant of 20 chunks, 0.2 s).
const SMOOTHING: f64 = 0.05;
/// For this many chunks after an anchor the placer trusts the newest
/// timestamp over its own count: a stream's first latency reports can be
/// off by tens of ms, and a jump at the very start costs nothing audible.
const SETTLE_CHUNKS: u32 = 100;
/// While settling, a distance past this (5 ms) re-anchors.
const SETTLE_FRAMES: f64 = 0.005 * SAMPLE_RATE as f64;

/// Places one source's chunks on the timeline: each chunk comes with the
/// timeline span its timestamps say it covers; the placer writes it where
/// the previous chunk ended (so the sound is continuous) and watches the
/// distance to where it belongs. A device clock runs a little fast or slow
/// against the monotonic clock, and a stream's first latency report can be
/// off by tens of ms; when the smoothed distance passes 1 ms, each chunk is
/// resampled a few frames shorter or longer (one per 2 ms of distance, at
/// most 8) until it is back, which keeps the offset within a ms or two over
/// any length (drift up to 16 000 ppm).
#[derive(Debug, Default)]
pub struct Placer {
    cursor: Option<u64>,
    /// Chunks placed since the last anchor.
    since_anchor: u32,
    /// Smoothed (where written − where it belongs), in frames.
    error: f64,
    max_error: f64,
    /// Frames dropped or added by drift correction.
    pub corrected: i64,
}

impl Placer {
    pub fn new() -> Placer {
        Placer::default()
    }

    /// Forgets the position: the next chunk is placed where its timestamps
    /// say (after a device came back, or a pause).
    pub fn reanchor(&mut self) {
        self.cursor = None;
        self.error = 0.0;
    }

    /// The smoothed offset: positive when the sound lands later than it was
    /// heard.
    pub fn offset(&self) -> Duration {
        Duration::from_secs_f64(self.error.abs() / SAMPLE_RATE as f64)
    }

    /// The signed smoothed offset in milliseconds.
    pub fn offset_ms(&self) -> f64 {
        self.error * 1000.0 / SAMPLE_RATE as f64
    }

    /// The largest smoothed offset seen (ms, absolute).
    pub fn max_offset_ms(&self) -> f64 {
        self.max_error * 1000.0 / SAMPLE_RATE as f64
    }

    /// Places `samples` (interleaved stereo) whose first frame belongs at
    /// timeline position `at`; returns where they go and the frames to
    /// write there (resampled by a frame when correcting drift).
    pub fn place(&mut self, at: Duration, samples: &[f32]) -> (u64, Vec<f32>) {
        let ideal = at.as_nanos() as f64 * SAMPLE_RATE as f64 / 1e9;
        let limit = if self.since_anchor < SETTLE_CHUNKS {
            SETTLE_FRAMES
        } else {
            REANCHOR_FRAMES
        };
        self.since_anchor = self.since_anchor.saturating_add(1);
        let cursor = match self.cursor {
            Some(c) if (c as f64 - ideal).abs() <= limit => {
                let err = c as f64 - ideal;
                self.error += (err - self.error) * SMOOTHING;
                c
            }
            other => {
                if let Some(c) = other {
                    tracing::debug!(
                        off_ms = (c as f64 - ideal) * 1000.0 / SAMPLE_RATE as f64,
                        "sound re-anchored"
                    );
                }
                self.error = 0.0;
                self.since_anchor = 1;
                ideal.round().max(0.0) as u64
            }
        };
        self.max_error = self.max_error.max(self.error.abs());
        let n = samples.len() / CHANNELS;
        let step = if self.error.abs() > CORRECT_FRAMES {
            (self.error / (2.0 * CORRECT_FRAMES))
                .round()
                .clamp(-MAX_STEP, MAX_STEP)
                .abs()
                .max(1.0) as usize
        } else {
            0
        };
        let out_frames = if self.error > 0.0 {
            n.saturating_sub(step).max(1)
        } else {
            n + step
        };
        self.corrected += out_frames as i64 - n as i64;
        let out = if out_frames == n {
            samples.to_vec()
        } else {
            resample(samples, out_frames)
        };
        self.cursor = Some(cursor + out_frames as u64);
        (cursor, out)
    }
}

/// Linear resampling of interleaved stereo to `frames` frames.
fn resample(samples: &[f32], frames: usize) -> Vec<f32> {
    let n = samples.len() / CHANNELS;
    let mut out = Vec::with_capacity(frames * CHANNELS);
    if n == 0 || frames == 0 {
        return out;
    }
    let step = if frames > 1 {
        (n - 1) as f64 / (frames - 1) as f64
    } else {
        0.0
    };
    for i in 0..frames {
        let x = i as f64 * step;
        let j = (x as usize).min(n - 1);
        let k = (j + 1).min(n - 1);
        let f = (x - j as f64) as f32;
        for c in 0..CHANNELS {
            let a = samples[j * CHANNELS + c];
            let b = samples[k * CHANNELS + c];
            out.push(a + (b - a) * f);
        }
    }
    out
}

/// The peak of a chunk, 0–1.
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, v| m.max(v.abs())).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(frames: usize, v: f32) -> Vec<f32> {
        vec![v; frames * CHANNELS]
    }

    #[test]
    fn mixes_tracks_at_their_places_and_fills_gaps_with_silence() {
        let m = Mixer::new();
        let a = m.add_track(AudioKind::Mic, 1.0);
        let b = m.add_track(AudioKind::System, 0.5);
        m.set_live(a, true);
        m.set_live(b, true);
        m.write(a, 0, &chunk(100, 0.25));
        m.write(b, 50, &chunk(100, 0.5));
        let out = m.take(150, Instant::now() + Duration::from_millis(50));
        assert_eq!(out.len(), 300);
        assert_eq!(out[0], 0.25);
        assert_eq!(out[60 * 2], 0.5); // 0.25 + 0.5 × 0.5
        assert_eq!(out[120 * 2], 0.25); // a ended at 100, b still
        // Past what a delivered: a live track is waited for until the deadline.
        let t = Instant::now();
        let out = m.take(200, t + Duration::from_millis(40));
        assert!(t.elapsed() >= Duration::from_millis(35));
        assert!(out.iter().all(|v| *v == 0.0));
        // A lost track is not waited for.
        m.set_live(a, false);
        m.set_live(b, false);
        let t = Instant::now();
        m.take(300, t + Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn late_frames_are_dropped_and_muting_keeps_the_timing() {
        let m = Mixer::new();
        let a = m.add_track(AudioKind::Mic, 1.0);
        m.set_live(a, true);
        m.write(a, 0, &chunk(100, 0.1));
        assert_eq!(m.take(100, Instant::now()).len(), 200);
        // Written behind what the encoder took: only the new part counts.
        m.write(a, 80, &chunk(40, 0.2));
        // Muted from 110 to 125: silence exactly there, whatever the takes.
        m.set_muted(true, 110);
        let out = m.take(120, Instant::now());
        assert_eq!(out.len(), 40);
        assert_eq!((out[18], out[19], out[20]), (0.2, 0.2, 0.0));
        m.set_muted(false, 125);
        m.write(a, 120, &chunk(10, 0.3));
        let out = m.take(130, Instant::now());
        assert_eq!((out[9], out[10]), (0.0, 0.3));
        assert_eq!(m.taken(), 130);
    }

    /// A device whose clock runs fast by `ppm`, timestamped with a few ms of
    /// jitter: the placer keeps its sound within 2 ms of the timeline.
    fn drift_run(ppm: f64, secs: u64) -> Placer {
        let mut p = Placer::new();
        let chunk = 480usize;
        let samples = vec![0.0f32; chunk * CHANNELS];
        let rate = SAMPLE_RATE as f64 * (1.0 + ppm / 1e6);
        let mut produced = 0u64;
        let mut seed = 7u64;
        while (produced as f64) < rate * secs as f64 {
            // The true time of the chunk's first frame, seen with jitter.
            let t = produced as f64 / rate;
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let jitter = ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.006;
            let at = Duration::from_secs_f64((t + jitter).max(0.0));
            let (pos, out) = p.place(at, &samples);
            let true_pos = t * SAMPLE_RATE as f64;
            assert!(
                (pos as f64 - true_pos).abs() < 0.004 * SAMPLE_RATE as f64,
                "at {t:.1} s: placed {pos}, belongs {true_pos:.0}"
            );
            assert!(out.len() / CHANNELS + 1 >= chunk);
            produced += chunk as u64;
        }
        p
    }

    #[test]
    fn drift_is_corrected_either_way() {
        for ppm in [300.0, -300.0, 0.0] {
            let p = drift_run(ppm, 600);
            assert!(p.offset_ms().abs() < 2.0, "{ppm} ppm: {}", p.offset_ms());
            if ppm != 0.0 {
                // 300 ppm over 600 s is 180 ms of samples to take out or add.
                let expect = -(ppm * 600.0 * 48_000.0 / 1e6) as i64;
                assert!((p.corrected - expect).abs() < 200, "{ppm}: {}", p.corrected);
            }
        }
    }

    #[test]
    fn a_first_timestamp_30_ms_off_is_closed_within_a_second() {
        let mut p = Placer::new();
        let s = vec![0.0f32; 480 * CHANNELS];
        // The stream's first report put it 30 ms late.
        p.place(Duration::from_millis(30), &s);
        let mut last = 0;
        for k in 1..100u64 {
            let (pos, out) = p.place(Duration::from_millis(10 * k), &s);
            last = pos + (out.len() / CHANNELS) as u64;
        }
        let off = last as f64 / 48.0 - 1000.0;
        assert!(off.abs() < 2.0, "still {off:.1} ms off after 1 s");
    }

    #[test]
    fn a_jump_reanchors() {
        let mut p = Placer::new();
        let s = vec![0.0f32; 480 * CHANNELS];
        assert_eq!(p.place(Duration::ZERO, &s).0, 0);
        assert_eq!(p.place(Duration::from_millis(10), &s).0, 480);
        // The device was gone for a second: placed where it belongs.
        assert_eq!(p.place(Duration::from_millis(1010), &s).0, 48_480);
        // Settled, a 60 ms jump is closed gradually instead.
        for k in 2..200u64 {
            p.place(Duration::from_millis(1000 + 10 * k), &s);
        }
        let (pos, out) = p.place(Duration::from_millis(1000 + 2060), &s);
        assert_eq!(pos, 48 * 3000);
        assert!(
            (481..=488).contains(&(out.len() / CHANNELS)),
            "{}",
            out.len() / CHANNELS
        );
    }

    #[test]
    fn resampling_keeps_the_ends() {
        let s: Vec<f32> = (0..10).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let r = resample(&s, 9);
        assert_eq!(r.len(), 18);
        assert_eq!((r[0], r[16], r[17]), (0.0, 9.0, -9.0));
    }
}
